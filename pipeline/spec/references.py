"""Checks across fields pydantic cannot see: unique ids, known shots and stills, frame
references without cycles, and files and templates inside the project."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import Problems, SpecError, did_you_mean, shown
from pipeline.project import (
    ROOT_HINT,
    FileMissing,
    OutsideProject,
    find_in,
    project_file,
    project_folder,
)
from pipeline.spec.schema import (
    ITEM_WORDS,
    CardSpec,
    FrameRef,
    MusicRef,
    SequenceSpec,
    ShotSpec,
    Storyboard,
    VoiceRef,
    is_font_file,
    is_templated,
)
from pipeline.spec.source import SourceMap


def find_template_dirs(
    source: SourceMap, storyboard: Storyboard, root: Path, problems: Problems
) -> tuple[Path, ...]:
    """The folders templates come from: the ones `templates:` names, inside the project; else
    templates/ beside the storyboard or above it. The storyboard's own folder is not one
    unless named: a `.env` or a key file beside a storyboard is no template. A folder
    refused fails every item: any prompt or text may include a template from it."""
    folder = source.path.parent
    named = storyboard.templates
    if named is None:
        found = []
        for name in ("templates", "../templates"):
            with contextlib.suppress(OutsideProject):
                found.append(project_folder(name, folder, root))
        return tuple(dict.fromkeys(found))
    names = [named] if isinstance(named, str) else named
    dirs = []
    users = {
        *(item.id for item in storyboard.shots),
        *(item.id for item in storyboard.stills),
        *(item.id for item in storyboard.sequences),
    }
    for index, name in enumerate(names):
        loc = ("templates",) if isinstance(named, str) else ("templates", index)
        try:
            dirs.append(project_folder(name, folder, root))
        except OutsideProject as exc:
            hint = ROOT_HINT.format(root=root)
            error = source.error(loc, f"templates: {exc}", hint, code="file")
            problems.add(error, users)
    return tuple(dict.fromkeys(dirs))


def check_references(
    storyboard: Storyboard,
    source: SourceMap,
    dirs: tuple[Path, ...],
    root: Path,
    dropped: frozenset[str],
    problems: Problems,
) -> dict[str, Path]:
    """Cross-field rules pydantic cannot see: unique ids, known shots, files that exist inside
    the project; each problem found is added, with the items it fails. Returns each file
    named, resolved. An id of an item that did not validate (`dropped`) is known: naming it
    is not a second mistake."""
    ids = _check_ids(storyboard, source, problems)
    found: set[str] = set()  # templates looked up once: many shots share one
    for loc, shot in _items(storyboard):
        if shot.template is None or shot.id in problems.failed or shot.template in found:
            continue
        try:
            _find_template(source, (*loc, "template"), shot.template, dirs, root)
            found.add(shot.template)
        except SpecError as exc:
            problems.add(exc, {shot.id})
    _check_frame_refs(storyboard, source, ids, dropped, problems)
    files = _check_files(storyboard, source, root, problems)
    for loc, message in _size_problems(storyboard):
        problems.add(source.error(loc, message, code="size"), owners(storyboard, loc))
    shot_ids = _ids_in(ids, "shots")
    for s_index, sequence in enumerate(storyboard.sequences):
        for e_index, entry in enumerate(sequence.shots):
            if isinstance(entry, CardSpec):
                continue
            shot_id = entry if isinstance(entry, str) else entry.shot
            if shot_id not in shot_ids and shot_id not in dropped:
                error = source.error(
                    ("sequences", s_index, "shots", e_index),
                    f"sequence '{sequence.id}' names unknown shot '{shot_id}'"
                    + did_you_mean(shot_id, shot_ids),
                    f"shots: {', '.join(shot_ids)}",
                    code="unknown-shot",
                )
                problems.add(error, {sequence.id})
    _check_sound_refs(storyboard, source, dropped, problems)
    return files


def _check_sound_refs(
    storyboard: Storyboard, source: SourceMap, dropped: frozenset[str], problems: Problems
) -> None:
    """Voices and music are named by id from shots (`lipsync`) and sequences (`voice`,
    `audio`): each name must be one of the storyboard's, and ids are unique in each list."""
    known: dict[str, list[str]] = {"voices": [], "music": []}
    for section in known:
        for index, item in enumerate(getattr(storyboard, section)):
            if item.id in known[section]:
                error = source.error(
                    (section, index, "id"),
                    f"duplicate {section.rstrip('s')} id '{item.id}'",
                    code="duplicate-id",
                )
                problems.add(error, {item.id})
            known[section].append(item.id)
    named: list[tuple[tuple[Any, ...], str, str, str]] = []  # where, section, id, owner
    for index, shot in enumerate(storyboard.shots):
        if shot.lipsync is not None:
            loc = ("shots", index, "lipsync", "voice")
            named.append((loc, "voices", shot.lipsync.voice, shot.id))
    for index, sequence in enumerate(storyboard.sequences):
        if isinstance(sequence.voice, VoiceRef):
            loc = ("sequences", index, "voice", "voice")
            named.append((loc, "voices", sequence.voice.voice, sequence.id))
        if isinstance(sequence.audio, MusicRef):
            loc = ("sequences", index, "audio", "music")
            named.append((loc, "music", sequence.audio.music, sequence.id))
    for loc, section, name, owner in named:
        if name in known[section] or name in dropped:
            continue
        listed = ", ".join(known[section]) or "(none)"
        error = source.error(
            loc,
            f"'{owner}' names unknown {section.rstrip('s')} '{name}'"
            + did_you_mean(name, known[section]),
            f"{section}: {listed}",
            code="unknown-shot",
        )
        problems.add(error, {owner})


def _items(storyboard: Storyboard) -> Iterator[tuple[tuple[str, int], ShotSpec]]:
    """Each shot and still, where it is written."""
    for section, items in (("shots", storyboard.shots), ("stills", storyboard.stills)):
        for index, item in enumerate(items):
            yield (section, index), item


def _check_ids(
    storyboard: Storyboard, source: SourceMap, problems: Problems
) -> dict[str, tuple[str, int]]:
    """Where each shot and still id is first written (they share one name space), and
    sequence ids unique too: a second use fails both items."""
    ids: dict[str, tuple[str, int]] = {}
    for (section, index), shot in _items(storyboard):
        if shot.id in ids:
            first, line, _ = source.where((*ids[shot.id], "id"))
            error = source.error(
                (section, index, "id"),
                f"duplicate {section[:-1]} id '{shot.id}'",
                f"first defined at {first}:{line}",
                code="duplicate-id",
            )
            problems.add(error, {shot.id})
            continue
        ids[shot.id] = (section, index)
    sequence_ids: dict[str, int] = {}
    for index, sequence in enumerate(storyboard.sequences):
        if sequence.id in sequence_ids:
            first, line, _ = source.where(("sequences", sequence_ids[sequence.id], "id"))
            error = source.error(
                ("sequences", index, "id"),
                f"duplicate sequence id '{sequence.id}'",
                f"first defined at {first}:{line}",
                code="duplicate-id",
            )
            problems.add(error, {sequence.id})
        sequence_ids.setdefault(sequence.id, index)
    return ids


def _check_files(
    storyboard: Storyboard, source: SourceMap, root: Path, problems: Problems
) -> dict[str, Path]:
    """Each file the storyboard names, resolved inside the project; a URL only for a frame."""
    folder = source.path.parent
    files: dict[str, Path] = {}
    for loc, name in file_fields(storyboard):
        failing = owners(storyboard, loc)
        if is_url(name):
            if not name.startswith("https://") or loc[-1] not in ("first_frame", "last_frame"):
                message = f"'{name}': only a frame image may be a URL, and only https://"
                problems.add(source.error(loc, message, code="url"), failing)
            continue  # downloaded when the storyboard is planned (cache/inputs.py)
        try:
            files[name] = project_file(name, folder, root)
        except FileMissing as exc:
            hint = (
                f"paths are relative to the storyboard's folder: looked for {shown(folder / name)}"
            )
            problems.add(source.error(loc, str(exc), hint, code="file"), failing)
        except OutsideProject as exc:
            hint = ROOT_HINT.format(root=root)
            problems.add(source.error(loc, str(exc), hint, code="file"), failing)
    return files


def owners(storyboard: Storyboard, loc: tuple[Any, ...]) -> set[str]:
    """The ids of the items a value at `loc` belongs to: `defaults` belong to every shot."""
    if loc[0] == "defaults":
        return {shot.id for shot in storyboard.shots}
    items = getattr(storyboard, str(loc[0])) if loc[0] in ITEM_WORDS else None
    ids = [item.id for item in items] if items is not None else None
    if ids is None or len(loc) < 2 or not isinstance(loc[1], int):
        return set()
    return {ids[loc[1]]}


def frame_refs(storyboard: Storyboard) -> Iterator[tuple[tuple[Any, ...], str, FrameRef]]:
    """Where a shot starts or ends on another render's frame: (where, shot id, reference)."""
    for index, shot in enumerate(storyboard.shots):
        for name in ("first_frame", "last_frame"):
            given = getattr(shot, name) or getattr(storyboard.defaults, name)
            if isinstance(given, FrameRef):
                field = ("shots", index, name) if getattr(shot, name) else ("defaults", name)
                yield field, shot.id, given


def _check_frame_refs(
    storyboard: Storyboard,
    source: SourceMap,
    ids: dict[str, tuple[str, int]],
    dropped: frozenset[str],
    problems: Problems,
) -> None:
    """Every frame named comes from a shot or still that exists, and no shot waits, through
    others, on itself."""
    edges: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    for loc, shot_id, ref in frame_refs(storyboard):
        wanted = "shots" if ref.shot is not None else "stills"
        if ref.name in dropped:
            problems.failed.add(shot_id)  # what it starts from has its own problem
            continue
        if ids.get(ref.name, ("",))[0] != wanted:
            known = _ids_in(ids, wanted)
            error = source.error(
                loc,
                f"shot '{shot_id}' starts from unknown {wanted[:-1]} '{ref.name}'"
                + did_you_mean(ref.name, known),
                f"{wanted}: {', '.join(known) or '(none)'}",
                code=f"unknown-{wanted[:-1]}",
            )
            problems.add(error, {shot_id})
            continue
        if ref.still is not None and isinstance(ref.frame, float):
            message = f"shot '{shot_id}': a still has no time: remove 'frame'"
            problems.add(source.error(loc, message), {shot_id})
        edges.setdefault(shot_id, []).append((ref.name, loc))
    cycle = _cycle(edges)
    if cycle:
        names, loc = cycle
        error = source.error(
            loc,
            f"shots wait on each other's frames: {' -> '.join(names)}",
            "a shot can start from a frame of a shot that does not depend on it",
            code="cycle",
        )
        problems.add(error, set(names))


def _ids_in(ids: dict[str, tuple[str, int]], section: str) -> list[str]:
    """The ids of one section ("shots" or "stills"), in the order written."""
    return [name for name, (where, _) in ids.items() if where == section]


def _cycle(
    edges: dict[str, list[tuple[str, tuple[Any, ...]]]],
) -> tuple[list[str], tuple[Any, ...]] | None:
    """A cycle of the graph, as the ids around it and where its last edge is written."""
    done: set[str] = set()
    for start in edges:
        path: list[str] = []
        on_path: dict[str, int] = {}
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, turn = stack.pop()
            if turn == 0:
                if node in done:
                    continue
                on_path[node] = len(path)
                path.append(node)
            targets = edges.get(node, [])
            if turn < len(targets):
                stack.append((node, turn + 1))
                target, loc = targets[turn]
                if target in on_path:
                    return [*path[on_path[target] :], target], loc
                if target not in done:
                    stack.append((target, 0))
                continue
            done.add(node)
            on_path.pop(node, None)
            path.pop()
    return None


def _find_template(
    source: SourceMap, loc: tuple[Any, ...], name: str, dirs: tuple[Path, ...], root: Path
) -> None:
    try:
        found = find_in(dirs, name, root)
    except OutsideProject as exc:
        hint = ROOT_HINT.format(root=root)
        raise source.error(loc, f"template {exc}", hint, code="template") from None
    if found is None:
        looked = ", ".join(str(d) for d in dirs) or "(no templates folder found)"
        hint = f"looked in: {looked}"
        above = (source.path.parent / ".." / "templates").resolve()
        if not above.is_relative_to(root) and (above / name).is_file():
            hint = (
                f"{above} is outside the project {root}: make the folder that holds both "
                "the project (`git init`, or `mkdir .storyboard` there)"
            )
        known = [str(p.relative_to(d)) for d in dirs for p in d.rglob("*.j2") if p.is_file()]
        message = f"template '{name}' not found" + did_you_mean(name, known)
        raise source.error(loc, message, hint, code="template")


def is_url(name: str) -> bool:
    return name.startswith(("https://", "http://"))


def file_fields(storyboard: Storyboard) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Where the storyboard names a file (first frames, audio beds), and the name."""
    for name in ("first_frame", "last_frame"):
        given = getattr(storyboard.defaults, name)
        if isinstance(given, str):
            yield ("defaults", name), given
        for index, shot in enumerate(storyboard.shots):
            given = getattr(shot, name)
            if isinstance(given, str):
                yield ("shots", index, name), given
    for index, sequence in enumerate(storyboard.sequences):
        yield from _sequence_files(index, sequence)


def _sequence_files(index: int, sequence: SequenceSpec) -> list[tuple[tuple[Any, ...], str]]:
    """The files a sequence names, but for names that are templates (checked per variant)."""
    at: tuple[Any, ...] = ("sequences", index)
    named: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(sequence.audio, str):
        named.append(((*at, "audio"), sequence.audio))
    if isinstance(sequence.voice, str):
        named.append(((*at, "voice"), sequence.voice))
    if sequence.logo is not None:
        named.append(((*at, "logo", "image"), sequence.logo.image))
    subtitles = sequence.subtitles
    if isinstance(subtitles, str):
        named.append(((*at, "subtitles"), subtitles))
    elif subtitles is not None:
        named.append(((*at, "subtitles", "file"), subtitles.file))
        if subtitles.font is not None and is_font_file(subtitles.font):
            named.append(((*at, "subtitles", "font"), subtitles.font))
    for layer, text in enumerate(sequence.text):
        if text.font is not None and is_font_file(text.font):
            named.append(((*at, "text", layer, "font"), text.font))
    for number, entry in enumerate(sequence.shots):
        if isinstance(entry, CardSpec):
            if entry.image is not None:
                named.append(((*at, "shots", number, "image"), entry.image))
            if entry.font is not None and is_font_file(entry.font):
                named.append(((*at, "shots", number, "font"), entry.font))
    return [(loc, name) for loc, name in named if not is_templated(name)]


def _size_problems(storyboard: Storyboard) -> Iterator[tuple[tuple[Any, ...], str]]:
    """`resolution` and `width`/`height` are two spellings of one thing: one at a time, in pairs."""
    groups: list[tuple[tuple[Any, ...], Any]] = [(("defaults",), storyboard.defaults)]
    groups += [(("shots", i), shot) for i, shot in enumerate(storyboard.shots)]
    groups += [(("stills", i), still) for i, still in enumerate(storyboard.stills)]
    groups += [(("sequences", i), seq) for i, seq in enumerate(storyboard.sequences)]
    for loc, item in groups:
        if item.resolution is not None and (item.width is not None or item.height is not None):
            yield (*loc, "resolution"), "give either 'resolution' or 'width'/'height', not both"
        if (item.width is None) != (item.height is None):
            missing = "height" if item.height is None else "width"
            yield loc, f"'width' and 'height' go together: '{missing}' is missing"
