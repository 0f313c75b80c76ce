"""Storyboard -> shots and sequences: matrix, takes, templates, and the exact provider request."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline import hashing, media, models
from pipeline.errors import MediaError, Problems
from pipeline.nodes import (
    CARD,
    SAFE_MARGIN,
    ClipUse,
    Expansion,
    FrameOf,
    Logo,
    Sequence,
    Shot,
    TextLayer,
    box_padding,
    film_key,
    render_key,
)
from pipeline.project import (
    MAX_AUDIO_BYTES,
    MAX_IMAGE_BYTES,
    ROOT_HINT,
    OutsideProject,
    opened,
    project_file,
    read_bounded,
)
from pipeline.spec import Spec
from pipeline.spec.references import frame_refs
from pipeline.spec.schema import (
    RESOLUTIONS,
    CardSpec,
    FormatSpec,
    FrameRef,
    SequenceShot,
    SequenceSpec,
    ShotSettings,
    ShotSpec,
    SubtitleSpec,
    TextSpec,
    focus_x,
    is_font_file,
    is_templated,
)
from pipeline.subtitles import MAX_BYTES as SUBTITLE_BYTES
from pipeline.subtitles import SubtitleProblem, read_cues
from pipeline.templates import PromptSource, PromptTemplates
from pipeline.typeface import BUNDLED, FontProblem, Fonts, describe

DEFAULT_DURATION = 6
DEFAULT_FPS = 25
DEFAULT_RESOLUTION = "768p"
STILL_SIZE = (1024, 576)  # a still's size unless it gives one: 16:9, as most shots are
FRAME_POSITIONS = ("first", "last")
# The most shots a storyboard may expand to unless told otherwise (--max-shots): a matrix
# multiplies, and ten axes of ten values are ten billion shots.
MAX_SHOTS = 10_000
# Beyond this many combinations, a matrix over the limit is refused without counting what
# its `exclude:` entries remove.
MAX_COUNTED = 200_000

# The largest film joined: x264 encodes larger, but each frame of a film passes through
# several filters at once, and a 9998x9998 film of 6 s takes 10 GB. 4096x2304 (16:9 at 4K
# DCI width) and its portrait twin fit on a laptop.
MAX_FILM_SIDE = 4096
MAX_FILM_PIXELS = 4096 * 2304


@dataclass
class Context:
    """What expanding every shot shares: the renderer, the files read, the warnings said."""

    renderer: str
    inputs: Inputs
    warnings: dict[str, None]


def expand(
    spec: Spec,
    renderer: str,
    max_shots: int | None = None,
    fonts: Fonts | None = None,
) -> Expansion:
    """Every still, shot and sequence of every variant; errors point at the YAML or template
    line. A storyboard that would expand to more than `max_shots` (MAX_SHOTS) shots is refused
    first. A shot that starts from another render's frame has a pending key: the graph
    resolves it once the frame exists. `fonts` keeps the sanitized copies of project fonts
    (in the cache: `Fonts(cache.fonts)`)."""
    board = spec.storyboard
    check_size(spec, max_shots or MAX_SHOTS)
    templates = PromptTemplates(spec.template_dirs, spec.root)
    context = Context(renderer, Inputs(spec), {})
    fonts = fonts or Fonts()
    problems = Problems(list(spec.problems))
    # Items with a problem are not tried again; nor what starts from a frame of one, or
    # joins one, that was not made (it failed, or the storyboard does not have it).
    failed = set(spec.failed)
    shots: list[Shot] = []
    sequences: list[Sequence] = []
    variants = combinations(board.matrix or {}, spec, ("matrix",))
    order = render_order(spec)
    items = {loc: _item(board, loc) for loc in order}
    needs = _frame_sources(spec)
    sources = {}
    for loc, item in items.items():
        sources[loc] = problems.attempt(_prompt_source, spec, loc, item)
        if sources[loc] is None:
            failed.add(item.id)
    with templates.limits():
        for variant_name, variant_vars in variants:
            by_id: dict[str, list[Shot]] = {}
            for loc in order:
                item = items[loc]
                if problems.full:
                    break
                if item.id in failed or not needs.get(item.id, set()) <= by_id.keys():
                    failed.add(item.id)
                    continue
                prompting = (templates, sources[loc])
                variant = (variant_name, variant_vars)
                made = problems.attempt(
                    _expand_shot, spec, loc, item, variant, prompting, context, by_id
                )
                if made is None:
                    failed.add(item.id)
                    continue
                by_id[item.id] = made
            for item in (*board.stills, *board.shots):
                shots.extend(by_id.get(item.id, ()))
            for index, sequence_spec in enumerate(board.sequences):
                if problems.full:
                    break
                if sequence_spec.id in failed or not _named(sequence_spec) <= by_id.keys():
                    continue
                values = {**board.vars, **variant_vars}
                drawing = (context.inputs, templates, fonts, values)
                films = problems.attempt(
                    _films, spec, index, sequence_spec, variant_name, by_id, drawing
                )
                if films is None:
                    failed.add(sequence_spec.id)
                    continue
                sequences.extend(films)
    problems.raise_any()
    variant_names = tuple(n for n, _ in variants)
    warnings = tuple(context.warnings)
    return Expansion(renderer, tuple(shots), tuple(sequences), variant_names, warnings)


def _films(
    spec: Spec,
    index: int,
    sequence_spec: SequenceSpec,
    variant_name: str,
    by_id: dict[str, list[Shot]],
    drawing: tuple[Inputs, PromptTemplates, Fonts, dict[str, Any]],
) -> list[Sequence]:
    """The films of one sequence in one variant: one per format, with voice and text."""
    inputs, templates, fonts, values = drawing
    base = _expand_sequence(spec, index, sequence_spec, variant_name, by_id, drawing)
    if sequence_spec.voice is not None:
        base = _with_voice(spec, index, base, (templates, inputs), values)
    films = []
    for sequence in formatted(spec, index, base):
        if sequence_spec.text or sequence_spec.subtitles is not None:
            sequence = _with_text(spec, index, sequence, (templates, fonts), values)
        films.append(sequence)
    return films


def _frame_sources(spec: Spec) -> dict[str, set[str]]:
    """The shots and stills each shot starts from a frame of."""
    needs: dict[str, set[str]] = {}
    for _, shot_id, ref in frame_refs(spec.storyboard):
        needs.setdefault(shot_id, set()).add(ref.name)
    return needs


def _named(sequence: SequenceSpec) -> set[str]:
    """The shots a sequence names."""
    return {
        entry if isinstance(entry, str) else entry.shot
        for entry in sequence.shots
        if not isinstance(entry, CardSpec)
    }


def _item(board: Any, loc: tuple[str, int]) -> ShotSpec:
    return board.stills[loc[1]] if loc[0] == "stills" else board.shots[loc[1]]


def render_order(spec: Spec) -> list[tuple[str, int]]:
    """Stills and shots, each after the renders whose frames it starts from (the spec
    refused cycles), else in the order written."""
    board = spec.storyboard
    where: dict[str, tuple[str, int]] = {s.id: ("stills", i) for i, s in enumerate(board.stills)}
    where |= {s.id: ("shots", i) for i, s in enumerate(board.shots)}
    needs: dict[str, list[str]] = {}
    for _, shot_id, ref in frame_refs(board):
        needs.setdefault(shot_id, []).append(ref.name)
    order: list[tuple[str, int]] = []
    placed: set[str] = set()
    for name in where:
        # Depth first, without recursion: a chain may be thousands of shots long.
        stack = [(name, False)]
        while stack:
            node, upstream_placed = stack.pop()
            if upstream_placed:
                order.append(where[node])
                continue
            if node in placed:
                continue
            placed.add(node)
            stack.append((node, True))
            ups = reversed(needs.get(node, []))
            stack.extend((up, False) for up in ups if up not in placed and up in where)
    return order


def check_size(spec: Spec, max_shots: int) -> None:
    """Refuse, before anything is expanded, a storyboard of more than `max_shots` shots."""
    board = spec.storyboard
    default_takes = board.defaults.takes or 1
    per_variant = 0
    exact = True
    for shot in board.shots:
        count, counted = _combination_count(shot.matrix or {}, max_shots)
        per_variant += count * (shot.takes or default_takes)
        exact = exact and counted
    for still in board.stills:  # stills are renders too, and take no defaults
        count, counted = _combination_count(still.matrix or {}, max_shots)
        per_variant += count * (still.takes or 1)
        exact = exact and counted
    variants, counted = _combination_count(board.matrix or {}, max_shots)
    total = variants * per_variant
    if total <= max_shots:
        return
    axes = [len(v) for k, v in (board.matrix or {}).items() if k not in ("include", "exclude")]
    product = " x ".join(str(n) for n in axes) or "1"
    raise spec.source.error(
        ("matrix",) if board.matrix else ("shots",),
        f"the storyboard expands to {'' if exact and counted else 'up to '}{total:,} shots "
        f"({variants:,} variants of the matrix {product}, times {per_variant:,} shots and "
        f"takes each): over the limit of {max_shots:,}",
        "make the matrix smaller (fewer values, exclude:), or raise the limit with --max-shots",
    )


def _combination_count(matrix: dict[str, Any], max_shots: int) -> tuple[int, bool]:
    """How many combinations a matrix makes, and whether that is exact: its `exclude:`
    entries are counted out (without building the combinations) up to MAX_COUNTED; beyond,
    the product of its axes is an upper bound."""
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    product = math.prod(len(values) for values in axes.values())
    included = len(matrix.get("include", []))
    excludes = matrix.get("exclude", [])
    if not excludes:
        return product + included, True
    if product + included <= max_shots or product > MAX_COUNTED:
        return product + included, False
    kept = sum(
        1
        for values in itertools.product(*axes.values())
        if not any(_matches(dict(zip(axes, values, strict=True)), e) for e in excludes)
    )
    return kept + included, True


@dataclass
class Inputs:
    """The files a storyboard feeds in (first frames, audio beds), each read, checked and
    hashed once per expansion; a file that is not what it must be is a located error."""

    spec: Spec
    images: dict[Path, tuple[str, media.ImageInfo]] = field(default_factory=dict)
    sounds: dict[Path, str] = field(default_factory=dict)

    def image(self, name: str, loc: tuple[Any, ...]) -> tuple[Path, str, media.ImageInfo]:
        path = self._named(name, loc)
        hint = "re-save it as a PNG, JPEG or WebP"
        digest, info = self._checked(self.images, path, _read_image, (name, loc, hint))
        return path, digest, info

    def sound(self, name: str, loc: tuple[Any, ...], path: Path | None = None) -> tuple[Path, str]:
        """`path`: where a name said by a template was found (else the storyboard's)."""
        path = path or self._named(name, loc)
        hint = "give a sound file (m4a, mp3, wav...)"
        return path, self._checked(self.sounds, path, _read_sound, (name, loc, hint))

    def _named(self, name: str, loc: tuple[Any, ...]) -> Path:
        """The file the storyboard names; one it could not find is a problem said already,
        at this place."""
        if name not in self.spec.files:
            raise self.spec.source.error(loc, f"'{name}' cannot be used")
        return self.spec.files[name]

    def _checked(
        self,
        memo: dict[Path, Any],
        path: Path,
        check: Callable[[Path, str], Any],
        where: tuple[str, tuple[Any, ...], str],
    ) -> Any:
        """What `check` makes of a file, once; its failure located where the file is named."""
        if path not in memo:
            name, loc, hint = where
            try:
                memo[path] = check(path, name)
            except MediaError as exc:
                raise self.spec.source.error(loc, f"'{name}' {exc.message}", hint) from None
            except OutsideProject as exc:
                raise self.spec.source.error(loc, str(exc)) from None
            except OSError as exc:
                message = f"'{name}' cannot be read ({exc.strerror})"
                raise self.spec.source.error(loc, message) from None
        return memo[path]


def _read_image(path: Path, name: str) -> tuple[str, media.ImageInfo]:
    data = read_bounded(path, MAX_IMAGE_BYTES, name)
    return hashing.sha256_bytes(data), media.check_image(data)


def _read_sound(path: Path, name: str) -> str:
    with opened(path, MAX_AUDIO_BYTES, name) as handle:
        digest = hashing.sha256_handle(handle)
        handle.seek(0)
        media.check_audio(handle)
    return digest


def combinations(
    matrix: dict[str, Any], spec: Spec, loc: tuple[Any, ...]
) -> list[tuple[str, dict[str, Any]]]:
    """The cartesian product of a matrix, with `exclude` and `include` as in CI matrices."""
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    for entry in matrix.get("exclude", []):
        combos = [c for c in combos if not _matches(c, entry)]
    for entry in matrix.get("include", []):
        extended = False
        for combo in combos:
            matches = all(combo.get(k) == v for k, v in entry.items() if k in axes)
            if matches and any(k not in axes for k in entry):
                combo.update({k: v for k, v in entry.items() if k not in axes})
                extended = True
        if not extended:
            combos.append(dict(entry))
    if not combos:
        raise spec.source.error(loc, "the matrix leaves no combination (check 'exclude')")
    named: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for combo in combos:
        name = "-".join(slug(combo[a]) for a in axes if a in combo)
        if name in seen and axes:
            raise spec.source.error(loc, f"two matrix combinations are both named '{name}'")
        seen[name] = 1
        named.append((name, combo))
    return named


def _matches(combo: dict[str, Any], entry: dict[str, Any]) -> bool:
    return all(combo.get(k) == v for k, v in entry.items())


def slug(value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9]+", "-", str(value).strip().lower()).strip("-")
    return text or "x"


def _expand_shot(
    spec: Spec,
    loc: tuple[str, int],
    shot: ShotSpec,
    variant: tuple[str, dict[str, Any]],
    prompting: tuple[PromptTemplates, PromptSource],
    context: Context,
    by_id: dict[str, list[Shot]],
) -> list[Shot]:
    """Every render of one shot (or still) in one variant: its matrix and takes."""
    board = spec.storyboard
    still = loc[0] == "stills"
    defaults = ShotSettings() if still else board.defaults
    source = spec.source
    variant_name, variant_vars = variant
    width, height = _size(shot, defaults, STILL_SIZE if still else None)
    duration = 0 if still else shot.duration or defaults.duration or DEFAULT_DURATION
    takes = shot.takes or defaults.takes or 1
    pick = shot.pick or 1
    optimizer = _first_set(shot.prompt_optimizer, defaults.prompt_optimizer, None)
    seed = _first_set(shot.seed, defaults.seed, None)
    negative = _first_set(shot.negative_prompt, defaults.negative_prompt, None)
    audio_given = _first_set(shot.audio, defaults.audio, None)
    audio = bool(audio_given)
    frames: list[tuple[str, str | FrameRef]] = []  # (position, file or frame reference)
    for position in FRAME_POSITIONS:
        name = f"{position}_frame"
        given = _first_set(getattr(shot, name), getattr(defaults, name), None)
        if given is not None:
            frames.append((position, given))
    if optimizer:
        context.warnings[
            f"shot '{shot.id}': prompt_optimizer is on: the provider rewrites the prompt, "
            "so renders cannot be repeated"
        ] = None

    def where(field: str) -> tuple[Any, ...]:
        if still:
            return (*loc, field) if source.has((*loc, field)) else loc
        return source.first((*loc, field), ("defaults", field))

    made: list[Shot] = []
    shot_combos = combinations(shot.matrix, spec, (*loc, "matrix")) if shot.matrix else [("", {})]
    for shot_variant, shot_values in shot_combos:
        values = {**board.vars, **variant_vars, **shot.vars, **shot_values}
        model_id = _model(spec, loc, shot, {**variant_vars, **shot_values}, values, prompting)
        info = models.lookup(model_id)
        fps = _fps(shot, defaults, info)
        positions = tuple(position for position, _ in frames)
        _check_model(
            spec, loc, shot, (model_id, info), (width, height, duration, fps), positions, where
        )
        _check_fields(
            spec,
            shot,
            (model_id, info),
            (seed, negative, audio_given, optimizer),
            where,
            context.warnings,
        )
        images: list[Path] = []
        hashes: list[str] = []
        after: list[FrameOf] = []
        for slot, (position, given) in enumerate(frames):
            field = f"{position}_frame"
            if isinstance(given, str):
                image, digest, image_info = context.inputs.image(given, where(field))
                problem = info.frames.problem(*_image_facts(image_info)) if info else None
                if problem:
                    raise source.error(where(field), f"shot '{shot.id}': '{given}' {problem}")
                images.append(image)
                hashes.append(digest)
                continue
            upstream = _upstream(spec, shot.id, given, by_id, shot_values, where(field))
            frame: str | float = "" if upstream.still else given.frame
            if isinstance(frame, float) and frame >= upstream.duration:
                raise source.error(
                    (*where(field), "frame"),
                    f"shot '{shot.id}': frame {frame:g} s is not inside '{upstream.label}' "
                    f"({upstream.duration} s long): a time must be under its length",
                    "for its last frame, write frame: last",
                )
            after.append(FrameOf(slot, upstream.key, upstream.label, frame))
            images.append(Path())  # known once the upstream render is: graph.resolve
            hashes.append("")
        prompt = _prompt(shot, *prompting, values)
        if not prompt and not frames:
            raise source.error(loc, f"shot '{shot.id}': the prompt renders empty")
        if not prompt and info is not None and info.needs_prompt:
            raise source.error(loc, f"{_kind(loc)} '{shot.id}': {model_id} needs a prompt")
        _check_prompt_length(spec, loc, shot, prompt, (model_id, info), context.warnings)
        placeholders = [
            f"sha256:{digest}" if digest else f"after:{ahead.upstream}:{ahead.frame}"
            for digest, ahead in zip(hashes, _slots(after, len(hashes)), strict=True)
        ]
        asked = Asked(prompt, width, height, duration, fps, optimizer, negative, audio)
        request = _request(model_id, info, asked, list(zip(positions, placeholders, strict=True)))
        label = f"{shot.id}@{shot_variant}" if shot_variant else shot.id
        price = _price(shot, board, info, model_id, (width, height, duration), audio)
        for take in range(1, takes + 1):
            take_request = request
            if seed is not None:
                take_request = {**request, "seed": seed + take - 1}
            made.append(
                Shot(
                    key=render_key(take_request, hashes, context.renderer, take),
                    shot_id=shot.id,
                    label=label,
                    variant=variant_name,
                    shot_vars=tuple(shot_values.items()),
                    take=take,
                    takes=takes,
                    picked=take == pick,
                    model=model_id,
                    width=width,
                    height=height,
                    duration=duration,
                    fps=fps,
                    prompt=prompt,
                    request=take_request,
                    images=tuple(images),
                    image_hashes=tuple(hashes),
                    price=price,
                    index=loc[1],
                    still=still,
                    audio=audio or (info is not None and info.audio == "always"),
                    after=tuple(after),
                )
            )
    return made


def _slots(after: list[FrameOf], count: int) -> list[FrameOf | None]:
    """Each image slot's upstream render, None for a file."""
    by_slot: dict[int, FrameOf] = {ahead.slot: ahead for ahead in after}
    return [by_slot.get(slot) for slot in range(count)]


def _upstream(
    spec: Spec,
    shot_id: str,
    ref: FrameRef,
    by_id: dict[str, list[Shot]],
    values: dict[str, Any],
    loc: tuple[Any, ...],
) -> Shot:
    """The one render a frame reference names: the picked take (or `take:`), the variant its
    `vars:` name, else the one whose matrix values agree with the shot's own."""
    candidates = by_id[ref.name]
    chosen = _select(candidates, SequenceShot(shot=ref.name, take=ref.take, vars=ref.vars))
    if len(chosen) > 1:
        agreeing = [c for c in chosen if all(values.get(k, v) == v for k, v in c.shot_vars)]
        chosen = agreeing or chosen
    if len(chosen) == 1:
        return chosen[0]
    known = sorted({", ".join(f"{k}: {v}" for k, v in c.shot_vars) for c in candidates})
    takes = candidates[0].takes
    if not chosen and ref.take is not None and ref.take > takes:
        problem = f"'{ref.name}' has {takes} take(s), not {ref.take}"
    elif not chosen:
        problem = f"no render of '{ref.name}' matches {ref.vars or {}}"
    else:
        problem = f"'{ref.name}' has {len(chosen)} variants here: say which with 'vars:'"
    hint = f"its variants: {'; '.join(known)}" if known else None
    raise spec.source.error(loc, f"shot '{shot_id}': {problem}", hint)


def _kind(loc: tuple[Any, ...]) -> str:
    return "still" if loc[0] == "stills" else "shot"


def _fps(shot: ShotSpec, defaults: ShotSettings, info: models.ModelInfo | None) -> int:
    """The rate asked (a model with an `fps` field), else the rate the model delivers."""
    asked = shot.fps or defaults.fps
    if info is not None and info.is_image:
        return 0
    if info is not None and not info.takes_fps and info.fps:
        return info.fps[0]
    return asked or DEFAULT_FPS


def _model(
    spec: Spec,
    loc: tuple[str, int],
    shot: ShotSpec,
    matrix_values: dict[str, Any],
    values: dict[str, Any],
    prompting: tuple[PromptTemplates, PromptSource],
) -> str:
    """The shot's model in this variant: its own `model:` (a template over the variant's
    values), else a matrix variable `model`, else the defaults' (a template too). A still
    takes its own `model:` or the catalogue's default image model."""
    still = loc[0] == "stills"
    if shot.model is not None:
        written, where = shot.model, (*loc, "model")
    elif still:
        return models.default_model(still=True)
    elif "model" in matrix_values:
        return str(matrix_values["model"]).strip()
    elif spec.storyboard.defaults.model is not None:
        written, where = spec.storyboard.defaults.model, ("defaults", "model")
    else:
        return models.default_model()
    if "{" not in written:
        return written.strip()
    source = PromptSource(*spec.source.text_lines(where))
    model = prompting[0].render(template=None, inline=written, context=values, where=source)
    if not model:
        raise spec.source.error(where, f"{_kind(loc)} '{shot.id}': the model renders empty")
    return model


def _check_fields(
    spec: Spec,
    shot: ShotSpec,
    model: tuple[str, models.ModelInfo | None],
    settings: tuple[int | None, str | None, bool | None, bool | None],
    where: Callable[[str], tuple[Any, ...]],
    warnings: dict[str, None],
) -> None:
    """Fields the model does not take are errors naming what it takes; a model nobody knows
    is sent as it is."""
    model_id, info = model
    seed, negative, audio, optimizer = settings
    if info is None:
        warnings[f"shot '{shot.id}': unknown model '{model_id}': sent as is, with no price"] = None
        return
    refused = [
        ("seed", seed is not None and not info.accepts_seed, "seed"),
        (
            "negative_prompt",
            negative is not None and not info.accepts_negative_prompt,
            "negative prompt",
        ),
        ("audio", bool(audio) and info.audio == "none", "audio"),
        (
            "prompt_optimizer",
            optimizer is not None and not info.rewrite_setting,
            "prompt_optimizer",
        ),
    ]
    for name, wrong, what in refused:
        if wrong:
            raise spec.source.error(
                where(name),
                f"shot '{shot.id}': {model_id} ({info.name}) takes no {what}",
                f"it takes: {info.takes()}",
            )
    if audio is False and info.audio == "always":
        raise spec.source.error(
            where("audio"),
            f"shot '{shot.id}': {model_id} ({info.name}) makes its clips with sound, and no "
            "setting the API allows turns it off",
            "remove `audio: false`: its price is the price with sound",
        )


def _image_facts(image: media.ImageInfo) -> tuple[str, int, int, int]:
    return image.format, image.width, image.height, image.bytes


def _check_prompt_length(
    spec: Spec,
    loc: tuple[str, int],
    shot: ShotSpec,
    prompt: str,
    model: tuple[str, models.ModelInfo | None],
    warnings: dict[str, None],
) -> None:
    """A prompt the model would refuse is an error now, before anything is paid for."""
    model_id, info = model
    shortest, longest = info.prompt_range if info else (0, models.PROMPT_LIMIT)
    if not prompt or shortest <= len(prompt) <= longest:
        return
    message = (
        f"{_kind(loc)} '{shot.id}': the prompt is {len(prompt):,} characters; {model_id} takes "
        f"{shortest} to {longest:,}"
    )
    if info is None:
        warnings[message] = None
        return
    field = "prompt" if shot.prompt is not None else "template"
    raise spec.source.error((*loc, field), message, "shorten the prompt")


def _price(
    shot: ShotSpec,
    board: Any,
    info: models.ModelInfo | None,
    model_id: str,
    shape: tuple[int, int, int],
    audio: bool,
) -> float | None:
    """The storyboard's price (a shot's `price:`, the defaults', or `prices:` of the model),
    else the catalogue's."""
    given = _first_set(shot.price, board.defaults.price, board.prices.get(model_id), None)
    if given is not None:
        return float(given)
    return info.price(*shape, audio=audio) if info else None


def _first_set(*values: Any) -> Any:
    for value in values[:-1]:
        if value is not None:
            return value
    return values[-1]


def _size(item: Any, defaults: Any, fallback: tuple[int, int] | None = None) -> tuple[int, int]:
    for source in (item, defaults):
        if source is None:
            continue
        if source.resolution is not None:
            return RESOLUTIONS[source.resolution]
        if source.width is not None and source.height is not None:
            return source.width, source.height
    return fallback or RESOLUTIONS[DEFAULT_RESOLUTION]


def _check_model(
    spec: Spec,
    loc: tuple[str, int],
    shot: ShotSpec,
    model: tuple[str, models.ModelInfo | None],
    shape: tuple[int, int, int, int],
    positions: tuple[str, ...],
    where: Any,
) -> None:
    """A size, duration, fps or frame the model does not take is an error at plan time."""
    model_id, info = model
    if info is None:
        return
    width, height, duration, fps = shape
    source = spec.source
    kind = _kind(loc)
    if info.is_image != (kind == "still"):
        sort = "an image" if info.is_image else "a video"
        raise source.error(
            where("model"),
            f"{kind} '{shot.id}': {model_id} is {sort} model",
            "stills take image models, shots video models",
        )
    if not info.takes_size(width, height):
        field = "resolution" if source.has(where("resolution")) else "width"
        raise source.error(
            where(field),
            f"{kind} '{shot.id}': {width}x{height} is not a size {model_id} renders",
            f"allowed: {info.allowed_sizes()}",
        )
    if info.is_image:
        return
    if not info.renders(width, height, duration):
        raise source.error(
            where("duration"),
            f"shot '{shot.id}': {width}x{height} with duration {duration} s is not available "
            f"for {model_id}",
            f"allowed: {info.allowed_sizes()}",
        )
    asked_fps = shot.fps or spec.storyboard.defaults.fps
    if info.takes_fps and fps not in info.fps:
        allowed = ", ".join(str(f) for f in info.fps)
        raise source.error(
            where("fps"), f"shot '{shot.id}': {model_id} renders at {allowed} fps only, not {fps}"
        )
    if not info.takes_fps and asked_fps is not None and asked_fps not in info.fps:
        raise source.error(
            where("fps"),
            f"shot '{shot.id}': {model_id} ({info.name}) takes no fps",
            f"it takes: {info.takes()}",
        )
    if "first" not in positions and not info.text_to_video:
        raise source.error(
            loc, f"shot '{shot.id}': {model_id} is image-to-video only: it needs a 'first_frame'"
        )
    for position in positions:
        if position not in info.frame_positions:
            raise source.error(
                where(f"{position}_frame"),
                f"shot '{shot.id}': {model_id} ({info.name}) takes no {position} frame image",
                f"it takes: {info.takes()}",
            )


def _prompt(
    shot: ShotSpec, templates: PromptTemplates, where: PromptSource, values: dict[str, Any]
) -> str:
    if shot.template is None and shot.prompt is None:
        return ""
    return templates.render(template=shot.template, inline=shot.prompt, context=values, where=where)


def _prompt_source(spec: Spec, loc: tuple[str, int], shot: ShotSpec) -> PromptSource:
    """Where a shot's prompt is written (the same for each of its variants)."""
    at = (*loc, "prompt" if shot.prompt is not None else "template")
    return PromptSource(*spec.source.text_lines(at))


@dataclass(frozen=True, slots=True)
class Asked:
    """What a shot asks of its model, before the request is written in the model's fields."""

    prompt: str
    width: int
    height: int
    duration: int
    fps: int
    optimizer: bool | None
    negative: str | None
    audio: bool


# Fields sent to a model the catalogue does not know: the ones every video model lists.
UNKNOWN_MODEL_FIELDS = frozenset(
    {"positivePrompt", "negativePrompt", "width", "height", "duration", "inputs"}
)


def _request(
    model_id: str,
    info: models.ModelInfo | None,
    asked: Asked,
    frames: list[tuple[str, str]],
) -> dict[str, Any]:
    """The task exactly as it will be sent, in the model's own fields, minus taskUUID and
    image bytes (`frames`: each frame image's position and placeholder)."""
    still = info is not None and info.is_image
    fields = info.fields if info is not None else UNKNOWN_MODEL_FIELDS
    request: dict[str, Any] = {
        "taskType": models.IMAGE if still else models.VIDEO,
        "model": model_id,
        "outputFormat": "PNG" if still else "MP4",
        "deliveryMethod": "async",
        "includeCost": True,
    }
    # Some models take frame images or a size, never both: the frame sets the shape, and
    # `resolution`, where the model takes it with frames, how large it is rendered.
    if not (frames and info is not None and info.size_or_frames):
        request["width"], request["height"] = asked.width, asked.height
    elif info.resolution_with_frames:
        request["resolution"] = f"{min(asked.width, asked.height)}p"
    if not still:
        request["duration"] = asked.duration
    if "fps" in fields:
        request["fps"] = asked.fps
    if asked.prompt:
        request["positivePrompt"] = asked.prompt
    if asked.negative is not None:
        request["negativePrompt"] = asked.negative
    settings: dict[str, Any] = {}
    if info is not None and info.rewrite_setting:
        # Said either way: a provider that rewrites prompts by default makes renders that
        # cannot be repeated from their request.
        _, name, flag = info.rewrite_setting
        settings.setdefault(name, {})[flag] = bool(asked.optimizer)
    if info is not None and info.audio == "optional":
        # Said either way: a provider's default could be to charge for sound.
        _, name, flag = info.audio_setting
        settings.setdefault(name, {})[flag] = asked.audio
    if settings:
        request["providerSettings"] = settings
    if frames:
        request["inputs"] = {
            "frameImages": [{"image": image, "frame": position} for position, image in frames]
        }
    return request


def _expand_sequence(
    spec: Spec,
    index: int,
    sequence: SequenceSpec,
    variant: str,
    by_id: dict[str, list[Shot]],
    said: tuple[Inputs, PromptTemplates, Fonts, dict[str, Any]],
) -> Sequence:
    inputs = said[0]
    loc = ("sequences", index)
    uses: list[ClipUse | None] = []
    for e_index, entry in enumerate(sequence.shots):
        if isinstance(entry, CardSpec):
            uses.append(None)  # drawn once the film's size is known
            continue
        ref = entry if isinstance(entry, SequenceShot) else SequenceShot(shot=entry)
        entry_loc = (*loc, "shots", e_index)
        chosen = _select(by_id[ref.shot], ref)
        if not chosen:
            raise _no_match(spec, entry_loc, sequence.id, ref, by_id[ref.shot])
        for shot in chosen:
            uses.append(_trimmed(spec, entry_loc, sequence.id, ref, shot))
    shots = [use for use in uses if use is not None]
    width, height = _sequence_size(sequence, shots)
    size_loc = loc if sequence.width is None else (*loc, "width")
    _check_film_size(spec, size_loc, f"sequence '{sequence.id}'", (width, height))
    fps = sequence.fps or max((use.shot.fps for use in shots), default=25)
    cards = iter(
        _card(spec, (index, number), entry, (variant, width, height, fps), said[1:], inputs)
        for number, entry in enumerate(sequence.shots)
        if isinstance(entry, CardSpec)
    )
    uses = [use if use is not None else next(cards) for use in uses]
    transition = sequence.transition
    # A transition of no length is a cut, and is joined as one.
    kind = "cut" if transition.duration == 0 else transition.type
    overlap = 0.0 if kind == "cut" else transition.duration
    shortest = min(use.length for use in uses)
    if len(uses) > 1 and overlap >= shortest:
        raise spec.source.error(
            (*loc, "transition", "duration"),
            f"sequence '{sequence.id}': a {overlap} s transition is as long as its shortest "
            f"clip ({shortest:g} s)",
        )
    audio, audio_hash = (
        inputs.sound(sequence.audio, (*loc, "audio")) if sequence.audio else (None, None)
    )
    logo, logo_settings = _logo(sequence, inputs, loc)
    settings = {
        "transition": kind,
        "transition_duration": overlap,
        "fit": sequence.fit or "pad",
        "width": width,
        "height": height,
        "fps": fps,
        "audio": audio_hash,
        "quality": sequence.quality,
        "preset": sequence.preset,
    } | logo_settings
    return Sequence(
        settings=settings,
        id=sequence.id,
        variant=variant,
        uses=tuple(uses),
        transition=kind,
        transition_duration=overlap,
        fit=sequence.fit or "pad",
        width=width,
        height=height,
        fps=fps,
        audio=audio,
        quality=sequence.quality,
        preset=sequence.preset,
        key=film_key(uses, settings),
        index=index,
        logo=logo,
    )


def _logo(
    sequence: SequenceSpec, inputs: Inputs, loc: tuple[Any, ...]
) -> tuple[Logo | None, dict[str, Any]]:
    """The sequence's logo, and what the film's key counts of it (the image by its bytes)."""
    if sequence.logo is None:
        return None, {}
    given = sequence.logo
    path, digest, _ = inputs.image(given.image, (*loc, "logo", "image"))
    logo = Logo(path, given.position, given.size, given.opacity)
    return logo, {
        "logo": {
            "image": digest,
            "position": given.position,
            "size": given.size,
            "opacity": given.opacity,
        }
    }


def _said(
    spec: Spec,
    loc: tuple[Any, ...],
    name: str,
    templates: PromptTemplates,
    values: dict[str, Any],
) -> str:
    """A name as this variant says it: a template is rendered, anything else is as is."""
    if not is_templated(name):
        return name
    source = PromptSource(*spec.source.text_lines(loc))
    return templates.render(template=None, inline=name, context=values, where=source)


def _project_file(
    spec: Spec,
    loc: tuple[Any, ...],
    name: str,
    templates: PromptTemplates,
    values: dict[str, Any],
) -> tuple[str, Path]:
    """A file a sequence names, as this variant says it; a name said by a template is
    checked now, as the storyboard's own names were when it was read."""
    said = _said(spec, loc, name, templates, values)
    if said in spec.files:
        return said, spec.files[said]
    try:
        return said, project_file(said, spec.path.parent, spec.root)
    except OutsideProject as exc:
        raise spec.source.error(loc, str(exc), ROOT_HINT.format(root=spec.root)) from None


def _with_voice(
    spec: Spec,
    index: int,
    sequence: Sequence,
    reading: tuple[PromptTemplates, Inputs],
    values: dict[str, Any],
) -> Sequence:
    """The sequence with its voice-over as this variant names it, checked to be sound that
    starts inside the film."""
    templates, inputs = reading
    given = spec.storyboard.sequences[index]
    assert given.voice is not None
    loc = ("sequences", index, "voice")
    name, found = _project_file(spec, loc, given.voice, templates, values)
    if given.voice_start >= sequence.duration:
        raise spec.source.error(
            ("sequences", index, "voice_start"),
            f"sequence '{sequence.id}': the voice starts at {given.voice_start:g} s, after the "
            f"film's end ({sequence.duration:g} s)",
        )
    path, digest = inputs.sound(name, loc, found)
    settings = {**sequence.settings, "voice": digest, "voice_start": given.voice_start}
    return _keyed(sequence, settings, voice=path, voice_start=given.voice_start)


def _keyed(sequence: Sequence, settings: dict[str, Any], **changes: Any) -> Sequence:
    """The sequence changed, with the key its clips and `settings` now give it."""
    changed = replace(sequence, settings=settings, **changes)
    return replace(changed, key=film_key(changed.uses, settings))


def _with_text(
    spec: Spec,
    index: int,
    sequence: Sequence,
    drawing: tuple[PromptTemplates, Fonts],
    values: dict[str, Any],
) -> Sequence:
    """The sequence with its text layers as this variant says them, each checked: its span
    inside the film, and every character in its font."""
    board_sequence = spec.storyboard.sequences[index]
    drawn = (
        _text_layer(spec, (index, number), sequence, text, drawing, values)
        for number, text in enumerate(board_sequence.text)
    )
    layers = tuple(layer for layer in drawn if layer is not None)
    fonts = drawing[1]
    settings = {
        **sequence.settings,
        "text": [layer.settings(fonts.digest(layer.font)) for layer in layers],
    }
    if board_sequence.subtitles is not None:
        cues, settings["subtitles"] = _subtitled(spec, index, sequence, drawing, values)
        layers += cues
    return _keyed(sequence, settings, texts=layers)


def _text_layer(
    spec: Spec,
    where: tuple[int, int],
    sequence: Sequence,
    text: TextSpec,
    drawing: tuple[PromptTemplates, Fonts],
    values: dict[str, Any],
) -> TextLayer | None:
    templates, fonts = drawing
    loc = ("sequences", where[0], "text", where[1])
    name = f"sequence '{sequence.id}' text {where[1] + 1}"
    variant = f" [{sequence.variant}]" if sequence.variant else ""
    source = PromptSource(*spec.source.text_lines((*loc, "text")))
    said = templates.render(
        template=None, inline=text.text, context=values, where=source, lines=True
    )
    if not said:
        return None  # nothing to say in this variant: `{{ tagline if lang == 'ja' }}`
    span = _text_span(spec, loc, name, sequence, text)
    font = _font(spec, (*loc, "font"), text.font, drawing, values)
    return _layout(
        spec, ((*loc, "text"), f"{name}{variant}"), sequence, said, span, text, font, fonts
    )


def _layout(
    spec: Spec,
    where: tuple[tuple[Any, ...], str],
    sequence: Sequence,
    said: str,
    span: tuple[float, float],
    style: TextSpec | SubtitleSpec,
    font: Path,
    fonts: Fonts,
) -> TextLayer:
    """Words laid out for this film: every character in the font (else a located error),
    wrapped to the format's safe area, made smaller only when one word is too wide."""
    loc, name = where
    _check_glyphs(spec, loc, name, font, said, fonts)
    try:
        size = max(round(style.size * sequence.height), 8)
        room = sequence.width * (1 - 2 * SAFE_MARGIN) - 2 * box_padding(size, style.box)
        said, size = fonts.fit(font, said, size, room)
    except FontProblem as exc:
        raise spec.source.error(loc, f"{name}: {exc}") from None
    start, end = span
    fade = style.fade if isinstance(style, TextSpec) else 0.1
    return TextLayer(
        text=said,
        start=start,
        end=end,
        position=style.position,
        offset=style.offset if isinstance(style, TextSpec) else (0.0, 0.0),
        size=size / sequence.height,
        color=style.color,
        box=style.box,
        shadow=style.shadow if isinstance(style, TextSpec) else True,
        fade=min(fade, (end - start) / 2),
        font=font,
    )


def _check_glyphs(
    spec: Spec, loc: tuple[Any, ...], name: str, font: Path, said: str, fonts: Fonts
) -> None:
    """Every character of `said` in `font`, else a located error naming the ones missing."""
    try:
        missing = fonts.missing(font, said)
    except FontProblem as exc:
        raise spec.source.error(loc, f"{name}: {exc}") from None
    if missing:
        raise spec.source.error(
            loc,
            f"{name}: {describe(missing)} not in the font {fonts.name(font)}",
            "name a font that has them: font: fonts/YourFont.otf, or a family "
            f"(fc-list :charset={ord(missing[0]):x} lists the fonts that do)",
        )


def _subtitled(
    spec: Spec,
    index: int,
    sequence: Sequence,
    drawing: tuple[PromptTemplates, Fonts],
    values: dict[str, Any],
) -> tuple[tuple[TextLayer, ...], dict[str, Any]]:
    """A layer per cue of the sequence's subtitle file (as this variant names it), and what
    the film's key counts of them."""
    given = spec.storyboard.sequences[index].subtitles
    assert given is not None
    loc: tuple[Any, ...] = ("sequences", index, "subtitles")
    style = given if isinstance(given, SubtitleSpec) else SubtitleSpec(file=given)
    file_loc = (*loc, "file") if isinstance(given, SubtitleSpec) else loc
    templates, fonts = drawing
    name, path = _project_file(spec, file_loc, style.file, templates, values)
    try:
        data = read_bounded(path, SUBTITLE_BYTES, name)
        cues = read_cues(data)
    except OutsideProject as exc:
        raise spec.source.error(file_loc, str(exc), ROOT_HINT.format(root=spec.root)) from None
    except SubtitleProblem as exc:
        raise spec.source.error(file_loc, f"'{name}' {exc}") from None
    font = _font(spec, (*loc, "font"), style.font, drawing, values)
    layers = []
    for cue in cues:
        if cue.start >= sequence.duration:
            break  # past the film's end: a longer cut's subtitles fit a shorter one
        what = f"sequence '{sequence.id}' subtitle at {cue.start:g} s of '{name}'"
        span = (cue.start, min(cue.end, sequence.duration))
        layers.append(_layout(spec, (file_loc, what), sequence, cue.text, span, style, font, fonts))
    settings = style.model_dump(exclude={"file", "font"}) | {
        "file": hashing.sha256_bytes(data),
        "font": fonts.digest(font),
    }
    return tuple(layers), settings


def _text_span(
    spec: Spec, loc: tuple[Any, ...], name: str, sequence: Sequence, text: TextSpec
) -> tuple[float, float]:
    """Where a layer is drawn, in seconds of the film: a shot's time on screen, or the
    span given (the whole film by default)."""
    length = sequence.duration
    if text.shot is not None:
        spans = film_spans(sequence)
        found = [
            span
            for use, span in zip(sequence.uses, spans, strict=True)
            if use.shot.shot_id == text.shot
        ]
        if not found:
            shots = ", ".join(dict.fromkeys(u.shot.shot_id for u in sequence.uses))
            raise spec.source.error(
                (*loc, "shot"),
                f"{name}: shot '{text.shot}' is not in the sequence",
                f"its shots: {shots}",
            )
        return found[0]
    start = text.start or 0.0
    end = text.end if text.end is not None else length
    if end > length + 1e-6 or start >= length:
        field = "end" if text.end is not None and end > length else "start"
        raise spec.source.error(
            (*loc, field),
            f"{name}: {start:g} to {end:g} s is not inside the film ({length:g} s)",
        )
    return start, end


def film_spans(sequence: Sequence) -> list[tuple[float, float]]:
    """Where each use of a shot is on screen, in seconds of the film (a transition counts
    for the shot it leads into)."""
    spans = []
    at = 0.0
    for use in sequence.uses:
        spans.append((round(at, 6), round(at + use.length, 6)))
        at += use.length - sequence.overlap
    return spans


def _font(
    spec: Spec,
    loc: tuple[Any, ...],
    name: str | None,
    drawing: tuple[PromptTemplates, Fonts],
    values: dict[str, Any],
) -> Path:
    """A layer's font: the bundled one, a project file, or a family; a name may be a
    template (`fonts/{{ script }}.otf`), checked as a project file once it is said."""
    templates, fonts = drawing
    if name is None:
        return BUNDLED
    name = _said(spec, loc, name, templates, values)
    if is_font_file(name):
        found = _project_file(spec, loc, name, templates, values)[1]
        try:
            return fonts.project(found, name)
        except FontProblem as exc:
            raise spec.source.error(loc, str(exc)) from None
    try:
        return fonts.family(name)
    except FontProblem as exc:
        raise spec.source.error(
            loc, str(exc), "name a font file in the project instead: font: fonts/YourFont.otf"
        ) from None


def formatted(spec: Spec, index: int, sequence: Sequence) -> list[Sequence]:
    """The sequence's film in each of its `formats:`, each its own film and key; the one film
    when it has none."""
    board_sequence = spec.storyboard.sequences[index]
    focus = focus_x(board_sequence.focus)
    if focus != 0.5:
        sequence = _reframed(sequence, sequence.width, sequence.height, sequence.fit, focus)
    if not board_sequence.formats:
        return [sequence]
    films = []
    for number, entry in enumerate(board_sequence.formats):
        chosen = entry if isinstance(entry, FormatSpec) else FormatSpec(format=entry)
        width, height = _format_size(spec, (index, number), chosen.format, sequence)
        # Another shape is cropped unless the sequence or the format says how.
        fit = chosen.fit or board_sequence.fit or "crop"
        if (width, height) == (sequence.width, sequence.height) and chosen.fit is None:
            fit = sequence.fit  # the film's own shape: nothing to reframe
        where = focus_x(chosen.focus) if chosen.focus is not None else focus
        films.append(replace(_reframed(sequence, width, height, fit, where), format=chosen.format))
    names = [film.name for film in films]
    for number, name in enumerate(names):
        if names.index(name) != number:
            raise spec.source.error(
                ("sequences", index, "formats", number),
                f"sequence '{sequence.id}': format {films[number].format} is given twice",
            )
    return films


def _reframed(sequence: Sequence, width: int, height: int, fit: str, focus: float) -> Sequence:
    settings = {**sequence.settings, "width": width, "height": height, "fit": fit}
    if focus != 0.5:
        settings["focus"] = focus
    uses = tuple(_card_sized(use, width, height) for use in sequence.uses)
    return _keyed(sequence, settings, uses=uses, width=width, height=height, fit=fit, focus=focus)


def _format_size(
    spec: Spec, where: tuple[int, int], written: str, sequence: Sequence
) -> tuple[int, int]:
    """A format's size: `W:H` keeps the film's short side; `WxH` is exact (and even)."""
    loc = ("sequences", where[0], "formats", where[1])
    if "x" in written:
        width, height = (int(part) for part in written.split("x"))
        if width % 2 or height % 2 or min(width, height) < 64:
            raise spec.source.error(
                loc,
                f"sequence '{sequence.id}': format {written}: sides must be even and at least "
                "64 pixels (H.264 in yuv420p)",
            )
    else:
        across, down = (int(part) for part in written.split(":"))
        short = min(sequence.width, sequence.height)
        width, height = (
            (_even(short * across / down), short)
            if across >= down
            else (short, _even(short * down / across))
        )
    _check_film_size(spec, loc, f"sequence '{sequence.id}': format {written}", (width, height))
    return width, height


def _check_film_size(spec: Spec, loc: tuple[Any, ...], what: str, size: tuple[int, int]) -> None:
    """A film the encoder and this machine can make, else a located error saying the bound."""
    width, height = size
    if max(width, height) <= MAX_FILM_SIDE and width * height <= MAX_FILM_PIXELS:
        return
    raise spec.source.error(
        loc,
        f"{what} makes a film of {width}x{height}: over the {MAX_FILM_SIDE} pixels a side and "
        f"{MAX_FILM_PIXELS:,} pixels (4096x2304) a frame this tool joins",
        "choose a format closer to the clips' shape, or give its size: 1080x1920",
    )


def _even(value: float) -> int:
    return 2 * math.ceil(value / 2 - 1e-9)


def _trimmed(
    spec: Spec, loc: tuple[Any, ...], sequence_id: str, ref: SequenceShot, shot: Shot
) -> ClipUse:
    """A shot's clip as the entry trims it: inside the clip, and some of it."""
    end = ref.end if ref.end is not None else float(shot.duration)
    if end > shot.duration:
        raise spec.source.error(
            (*loc, "out"),
            f"sequence '{sequence_id}': 'out' {end:g} is past the end of '{shot.label}' "
            f"({shot.duration} s)",
        )
    if ref.start >= end:
        raise spec.source.error(
            (*loc, "in"),
            f"sequence '{sequence_id}': 'in' {ref.start:g} leaves nothing of '{shot.label}' "
            f"(it ends at {end:g} s)",
            f"'in' must be under {end:g}",
        )
    return ClipUse(shot, ref.start, end, None if ref.focus is None else focus_x(ref.focus))


def _no_match(
    spec: Spec, loc: tuple[Any, ...], sequence_id: str, ref: SequenceShot, shots: list[Shot]
) -> Exception:
    """Why no clip of a shot fits a sequence entry: the take or the vars it asks for."""
    takes = shots[0].takes if shots else 1
    if ref.take is not None and ref.take > takes:
        return spec.source.error(
            (*loc, "take"),
            f"sequence '{sequence_id}': '{ref.shot}' has {takes} take(s), not {ref.take}",
        )
    known = sorted({", ".join(f"{k}: {v}" for k, v in s.shot_vars) for s in shots if s.shot_vars})
    return spec.source.error(
        (*loc, "vars") if ref.vars else loc,
        f"sequence '{sequence_id}': no clip of '{ref.shot}' matches {ref.vars or {}}",
        f"its variants: {'; '.join(known)}" if known else None,
    )


def _select(shots: list[Shot], ref: SequenceShot) -> list[Shot]:
    selected = []
    for shot in shots:
        if ref.take is not None and shot.take != ref.take:
            continue
        if ref.take is None and not shot.picked:
            continue
        if ref.vars and any(dict(shot.shot_vars).get(k) != v for k, v in ref.vars.items()):
            continue
        selected.append(shot)
    return selected


def _sequence_size(sequence: SequenceSpec, uses: list[ClipUse]) -> tuple[int, int]:
    if sequence.resolution is not None:
        return RESOLUTIONS[sequence.resolution]
    if sequence.width is not None and sequence.height is not None:
        return sequence.width, sequence.height
    if not uses:  # cards only
        return RESOLUTIONS["1080p"]
    largest = max(uses, key=lambda u: u.shot.width * u.shot.height)
    return largest.shot.width, largest.shot.height


def _card(
    spec: Spec,
    where: tuple[int, int],
    card: CardSpec,
    shape: tuple[str, int, int, int],
    saying: tuple[PromptTemplates, Fonts, dict[str, Any]],
    inputs: Inputs,
) -> ClipUse:
    """A card of a sequence as a clip to draw: its words said for this variant, every
    character checked against its font; its key follows what it shows."""
    templates, fonts, values = saying
    variant, width, height, fps = shape
    loc = ("sequences", where[0], "shots", where[1])
    name = f"sequence '{spec.storyboard.sequences[where[0]].id}' card {where[1] + 1}"
    source = PromptSource(*spec.source.text_lines((*loc, "card")))
    said = templates.render(
        template=None, inline=card.card, context=values, where=source, lines=True
    )
    if not said:
        raise spec.source.error((*loc, "card"), f"{name}: the card says nothing")
    font = _font(spec, (*loc, "font"), card.font, (templates, fonts), values)
    _check_glyphs(spec, (*loc, "card"), name, font, said, fonts)
    images: tuple[Path, ...] = ()
    hashes: list[str] = []
    if card.image is not None:
        path, digest, _ = inputs.image(card.image, (*loc, "image"))
        images, hashes = (path,), [digest]
    duration = round(card.duration * fps) / fps  # whole frames
    request = {
        "card": said,
        "duration": duration,
        "background": card.background,
        "color": card.color,
        "size": card.size,
        "font": fonts.digest(font),
        "width": width,
        "height": height,
        "fps": fps,
    }
    shot = Shot(
        key=hashing.shot_key(request, hashes, CARD, 1),
        shot_id=f"card-{where[1] + 1}",
        label=f"card {where[1] + 1}",
        variant=variant,
        shot_vars=(),
        take=1,
        takes=1,
        picked=True,
        model=CARD,
        width=width,
        height=height,
        duration=duration,  # type: ignore[arg-type]  # a card lasts any whole number of frames
        fps=fps,
        prompt=said,
        request=request,
        images=images,
        image_hashes=tuple(hashes),
        price=0.0,
        index=-1,
        font=font,
    )
    return ClipUse(shot, 0.0, duration)


def _card_sized(use: ClipUse, width: int, height: int) -> ClipUse:
    """A card drawn at another format's size: its own clip, its own key."""
    if use.shot.model != CARD:
        return use
    request = {**use.shot.request, "width": width, "height": height}
    key = hashing.shot_key(request, list(use.shot.image_hashes), CARD, 1)
    shot = replace(use.shot, width=width, height=height, request=request, key=key)
    return replace(use, shot=shot)
