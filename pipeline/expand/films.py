"""Films: each sequence in each variant and format, its clips, cards, logo and voice."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline import hashing
from pipeline.errors import Problems, shown
from pipeline.expand.context import (
    MAX_FILM_PIXELS,
    MAX_FILM_SIDE,
    Inputs,
    Saying,
    select,
    sequence_file,
)
from pipeline.expand.sound import Made
from pipeline.expand.text import check_glyphs, find_font
from pipeline.nodes import (
    CARD,
    LOUDNESS,
    TITLE_SAFE,
    Card,
    ClipUse,
    Film,
    Logo,
    Node,
    SafeArea,
    SoundUse,
)
from pipeline.platforms import PLATFORMS
from pipeline.spec import Spec
from pipeline.spec.schema import (
    LOUDNESS_STANDARDS,
    RESOLUTIONS,
    CardSpec,
    FormatSpec,
    MusicRef,
    PlatformName,
    PlatformSpec,
    SequenceShot,
    SequenceSpec,
    VoiceRef,
    focus_x,
)


def expand_sequence(
    spec: Spec,
    index: int,
    sequence: SequenceSpec,
    variant: str,
    by_id: dict[str, list[Node]],
    saying: Saying,
    made: Made,
    problems: Problems,
) -> Film:
    """The film of a sequence in one variant (its first format). Each entry and card is
    checked whatever another's problem, its problems added to `problems`; the film is made
    of what has none (it is only checked further then: nothing is built)."""
    loc = ("sequences", index)
    uses: list[ClipUse | None] = []
    for e_index, entry in enumerate(sequence.shots):
        if isinstance(entry, CardSpec):
            uses.append(None)  # drawn once the film's size is known
            continue
        ref = entry if isinstance(entry, SequenceShot) else SequenceShot(shot=entry)
        if ref.shot in by_id:  # else it failed, and said why: checked without it
            entry_loc = (*loc, "shots", e_index)
            used = problems.attempt(_entry, spec, entry_loc, (sequence.id, ref), by_id, made)
            uses.extend(used or ())
    shots = [use for use in uses if use is not None]
    width, height = _sequence_size(sequence, shots)
    size_loc = loc if sequence.width is None else (*loc, "width")
    _check_film_size(spec, size_loc, f"sequence '{sequence.id}'", (width, height))
    fps = sequence.fps or max((use.shot.fps for use in shots), default=25)
    cards = [
        problems.attempt(_card, spec, (index, number), entry, (variant, width, height, fps), saying)
        for number, entry in enumerate(sequence.shots)
        if isinstance(entry, CardSpec)
    ]
    drawn = iter(cards)
    made_of = [use if use is not None else next(drawn) for use in uses]
    joined = [use for use in made_of if use is not None]
    if not joined:
        raise EmptyFilm()
    transition = sequence.transition
    # A transition of no length is a cut, and is joined as one.
    kind = "cut" if transition.duration == 0 else transition.type
    overlap = 0.0 if kind == "cut" else transition.duration
    shortest = min(use.length for use in joined)
    if len(joined) > 1 and overlap >= shortest:
        raise spec.source.error(
            (*loc, "transition", "duration"),
            f"sequence '{sequence.id}': a {overlap} s transition is as long as its shortest "
            f"clip ({shortest:g} s)",
        )
    bed, files = _bed(spec, (*loc, "audio"), sequence, (saying, made))
    logo, logo_file = _logo(sequence, saying.inputs, loc)
    return Film(
        id=sequence.id,
        variant=variant,
        index=index,
        uses=tuple(joined),
        transition=kind,
        overlap=overlap,
        width=width,
        height=height,
        fps=fps,
        fit=sequence.fit or "pad",
        quality=sequence.quality,
        preset=sequence.preset,
        bed=bed,
        logo=logo,
        files=files | logo_file,
        loudness=loudness_target(sequence.loudness, LOUDNESS),
        loudness_at=located(spec, (*loc, "loudness")),
    )


def located(spec: Spec, loc: tuple[Any, ...]) -> str:
    """`file:line` of the value at `loc` (or of its nearest parent), as a build's failures
    name where a film's setting is said."""
    file, line, _ = spec.source.where(loc)
    return f"{shown(file)}:{line}"


def loudness_target(given: float | str | None, otherwise: float) -> float:
    """Integrated LUFS: as given, a standard's by its name, else `otherwise`."""
    if given is None:
        return otherwise
    return LOUDNESS_STANDARDS[given] if isinstance(given, str) else float(given)


class EmptyFilm(Exception):
    """A film of which nothing is left to check: each of its shots failed, and said why."""


def _entry(
    spec: Spec,
    loc: tuple[Any, ...],
    named: tuple[str, SequenceShot],
    by_id: dict[str, list[Node]],
    made: Made,
) -> list[ClipUse]:
    """The clips a sequence's entry names (its take, its vars), as the film uses them."""
    sequence_id, ref = named
    chosen = select(by_id[ref.shot], ref)
    if not chosen:
        raise _no_match(spec, loc, sequence_id, ref, by_id[ref.shot])
    return [_trimmed(spec, loc, sequence_id, ref, made.finish(ref.shot, shot)) for shot in chosen]


def _bed(
    spec: Spec, loc: tuple[Any, ...], sequence: SequenceSpec, having: tuple[Saying, Made]
) -> tuple[SoundUse | None, dict[str, Path]]:
    """The film's music bed: a file of the storyboard (by the digest of its bytes) or a
    generated one, and how much of it the film keeps; the file it names by digest."""
    saying, made = having
    if isinstance(sequence.audio, str):
        path, digest = saying.inputs.sound(sequence.audio, loc)
        return SoundUse(None, digest), {digest: path}
    if isinstance(sequence.audio, MusicRef) and sequence.audio.music in made.music:
        kept = next(m for m in spec.storyboard.music if m.id == sequence.audio.music).duration
        return SoundUse(made.music[sequence.audio.music], length=kept), {}
    return None, {}


def _logo(
    sequence: SequenceSpec, inputs: Inputs, loc: tuple[Any, ...]
) -> tuple[Logo | None, dict[str, Path]]:
    """The sequence's logo (its image by the digest of its bytes), and that file."""
    if sequence.logo is None:
        return None, {}
    given = sequence.logo
    path, digest, _ = inputs.image(given.image, (*loc, "logo", "image"))
    return Logo(digest, given.position, given.size, given.opacity), {digest: path}


def with_voice(
    spec: Spec,
    index: int,
    sequence: Film,
    saying: Saying,
    made: Made,
) -> Film:
    """The sequence with its voice-over as this variant names it, checked to be sound that
    starts inside the film."""
    given = spec.storyboard.sequences[index]
    assert given.voice is not None
    loc = ("sequences", index, "voice")
    if given.voice_start >= sequence.duration:
        raise spec.source.error(
            ("sequences", index, "voice_start"),
            f"sequence '{sequence.id}': the voice starts at {given.voice_start:g} s, after the "
            f"film's end ({sequence.duration:g} s)",
        )
    if isinstance(given.voice, VoiceRef):
        rendered = made.voices.get(given.voice.voice)
        if rendered is None:  # it failed, and said why: the film is checked without it
            return sequence
        return _with_voice_render(spec, index, sequence, rendered, made)
    name, found = sequence_file(spec, loc, given.voice, saying)
    path, digest = saying.inputs.sound(name, loc, found)
    read = SoundUse(None, digest, at=given.voice_start)
    return replace(sequence, voice=read, files={**sequence.files, digest: path})


def _with_voice_render(spec: Spec, index: int, sequence: Film, voice: Node, made: Made) -> Film:
    """The sequence with a generated voice-over. Its length is known once it is rendered
    (a voice longer than the film is an error then); until then it is estimated from the
    text at the model's speaking rate, and a voice that looks too long is a warning now."""
    given = spec.storyboard.sequences[index]
    start = given.voice_start
    file, line, column = spec.source.where(("sequences", index, "voice"))
    room = sequence.duration - start
    if voice.duration > room:
        made.warn(
            f"{file}:{line}:{column}: sequence '{sequence.id}'"
            + (f" [{sequence.variant}]" if sequence.variant else "")
            + f": voice '{voice.label}' runs about {voice.duration:.1f} s at the model's "
            f"estimated speaking rate, longer than the {room:g} s of film from {start:g} s"
        )
    voice_at = located(spec, ("sequences", index, "voice"))
    return replace(sequence, voice=SoundUse(voice, at=start), voice_at=voice_at)


def formatted(spec: Spec, index: int, sequence: Film) -> list[Film]:
    """The sequence's film in each of its `formats:` and `platforms:`, each its own film and
    key; the one film when it has neither."""
    board_sequence = spec.storyboard.sequences[index]
    focus = focus_x(board_sequence.focus)
    if focus != 0.5:
        sequence = _reframed(sequence, (sequence.width, sequence.height), sequence.fit, focus)
    if not board_sequence.formats and not board_sequence.platforms:
        return [sequence]
    films = []
    for number, entry in enumerate(board_sequence.formats or []):
        chosen = entry if isinstance(entry, FormatSpec) else FormatSpec(format=entry)
        width, height = _format_size(spec, (index, number), chosen.format, sequence)
        # Another shape is cropped unless the sequence or the format says how.
        fit: str = chosen.fit or board_sequence.fit or "crop"
        if (width, height) == (sequence.width, sequence.height) and chosen.fit is None:
            fit = sequence.fit  # the film's own shape: nothing to reframe
        where = focus_x(chosen.focus) if chosen.focus is not None else focus
        reframed = _reframed(sequence, (width, height), fit, where)
        films.append(replace(reframed, format=chosen.format))
    for number, given in enumerate(board_sequence.platforms or []):
        films.append(_for_platform(spec, (index, number), sequence, given))
    names = [film.name for film in films]
    for number, name in enumerate(names):
        if names.index(name) != number:
            formats = len(board_sequence.formats or [])
            loc = ("formats", number) if number < formats else ("platforms", number - formats)
            raise spec.source.error(
                ("sequences", index, *loc),
                f"sequence '{sequence.id}': {loc[0][:-1]} {films[number].format} is given twice",
            )
    return films


def _for_platform(
    spec: Spec, where: tuple[int, int], sequence: Film, given: PlatformName | PlatformSpec
) -> Film:
    """The film delivered for a platform: its size, its interface's safe area for text and
    cards, its encoder settings and loudness (the sequence's own, when it gives one); a film
    longer than the platform takes is refused, located."""
    chosen = given if isinstance(given, PlatformSpec) else PlatformSpec(platform=given)
    platform = PLATFORMS[chosen.platform]
    board_sequence = spec.storyboard.sequences[where[0]]
    loc = ("sequences", where[0], "platforms", where[1])
    if sequence.duration > platform.longest + 1e-6:
        raise spec.source.error(
            loc,
            f"sequence '{sequence.id}' is {sequence.duration:g} s long: {platform.title} takes "
            f"films of at most {platform.longest:g} s",
            "shorten the sequence (trim its shots with in/out), or deliver it for another platform",
        )
    size = (platform.width, platform.height)
    fit = chosen.fit or board_sequence.fit or "crop"
    focus = focus_x(chosen.focus if chosen.focus is not None else board_sequence.focus)
    film = _reframed(sequence, size, fit, focus, platform.safe)
    return replace(
        film,
        format=platform.name,
        encoding=platform.encoding(film.fps),
        loudness=loudness_target(board_sequence.loudness, platform.loudness),
        loudness_at=(
            sequence.loudness_at if board_sequence.loudness is not None else located(spec, loc)
        ),
    )


def _reframed(
    film: Film, size: tuple[int, int], fit: str, focus: float, safe: SafeArea = TITLE_SAFE
) -> Film:
    width, height = size
    uses = tuple(_card_sized(use, width, height, safe) for use in film.uses)
    return replace(film, uses=uses, width=width, height=height, fit=fit, focus=focus, safe=safe)


def _format_size(
    spec: Spec, where: tuple[int, int], written: str, sequence: Film
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
    spec: Spec, loc: tuple[Any, ...], sequence_id: str, ref: SequenceShot, shot: Node
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
    spec: Spec, loc: tuple[Any, ...], sequence_id: str, ref: SequenceShot, shots: list[Node]
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
    saying: Saying,
) -> ClipUse:
    """A card of a sequence as a clip to draw: its words said for this variant, every
    character checked against its font; its key follows what it shows."""
    fonts = saying.fonts
    variant, width, height, fps = shape
    loc = ("sequences", where[0], "shots", where[1])
    name = f"sequence '{spec.storyboard.sequences[where[0]].id}' card {where[1] + 1}"
    said = saying.render(spec, (*loc, "card"), card.card, lines=True)
    if not said:
        raise spec.source.error((*loc, "card"), f"{name}: the card says nothing")
    font = find_font(spec, (*loc, "font"), card.font, saying)
    check_glyphs(spec, (*loc, "card"), name, font, said, fonts)
    images: tuple[Path, ...] = ()
    hashes: list[str] = []
    if card.image is not None:
        path, digest, _ = saying.inputs.image(card.image, (*loc, "image"))
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
    shot = Card(
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
        duration=duration,
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


def _card_sized(use: ClipUse, width: int, height: int, safe: SafeArea) -> ClipUse:
    """A card drawn at another format's size (its words kept inside a platform's safe area):
    its own clip, its own key."""
    if not isinstance(use.shot, Card):
        return use
    request = {**use.shot.request, "width": width, "height": height}
    if safe != TITLE_SAFE:
        request["safe"] = [safe.left, safe.top, safe.right, safe.bottom]
    key = hashing.shot_key(request, list(use.shot.image_hashes), CARD, 1)
    shot = replace(use.shot, width=width, height=height, request=request, key=key)
    return replace(use, shot=shot)
