"""Text on films: text layers and subtitles, laid out in their fonts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.captions import sentences
from pipeline.errors import Problems
from pipeline.expand.context import Saying, said_as, sequence_file
from pipeline.nodes import (
    CaptionCue,
    Captions,
    Film,
    TextLayer,
    box_padding,
)
from pipeline.project import (
    ROOT_HINT,
    OutsideProject,
    read_bounded,
)
from pipeline.spec import Spec
from pipeline.spec.schema import (
    SubtitleSpec,
    TextSpec,
    is_font_file,
)
from pipeline.subtitles import MAX_BYTES as SUBTITLE_BYTES
from pipeline.subtitles import Cue, SubtitleProblem, read_cues
from pipeline.typeface import BUNDLED, FontProblem, Fonts, describe


def with_text(
    spec: Spec,
    index: int,
    sequence: Film,
    saying: Saying,
) -> Film:
    """The sequence with its text layers as this variant says them, each checked: its span
    inside the film, and every character in its font."""
    board_sequence = spec.storyboard.sequences[index]
    problems = Problems()  # each layer checked, whatever another's problem
    drawn = [
        problems.attempt(_text_layer, spec, (index, number), sequence, text, saying)
        for number, text in enumerate(board_sequence.text)
    ]
    laid = [layer for layer in drawn if layer is not None]
    if board_sequence.subtitles is not None:
        laid += problems.attempt(_subtitled, spec, index, sequence, saying) or []
    problems.raise_any()
    fonts = {layer.font: path for layer, path in laid}
    layers = tuple(layer for layer, _ in laid)
    return replace(sequence, texts=layers, files={**sequence.files, **fonts})


def _text_layer(
    spec: Spec,
    where: tuple[int, int],
    sequence: Film,
    text: TextSpec,
    saying: Saying,
) -> tuple[TextLayer, Path] | None:
    loc = ("sequences", where[0], "text", where[1])
    name = f"sequence '{sequence.id}' text {where[1] + 1}"
    variant = f" [{sequence.variant}]" if sequence.variant else ""
    said = saying.render(spec, (*loc, "text"), text.text, lines=True)
    if not said:
        return None  # nothing to say in this variant: `{{ tagline if lang == 'ja' }}`
    span = _text_span(spec, loc, name, sequence, text)
    font = find_font(spec, (*loc, "font"), text.font, saying)
    where_said = ((*loc, "text"), f"{name}{variant}")
    return _layout(spec, where_said, sequence, said, span, text, font, saying.fonts)


def _layout(
    spec: Spec,
    where: tuple[tuple[Any, ...], str],
    sequence: Film,
    said: str,
    span: tuple[float, float],
    style: TextSpec | SubtitleSpec,
    font: Path,
    fonts: Fonts,
) -> tuple[TextLayer, Path]:
    """Words laid out for this film: every character in the font (else a located error),
    wrapped to the format's safe area, made smaller only when one word is too wide; and the
    font's file (the layer names it by the digest of its bytes)."""
    loc, name = where
    check_glyphs(spec, loc, name, font, said, fonts)
    try:
        size = max(round(style.size * sequence.height), 8)
        left, _, right, _ = sequence.safe.inside(sequence.width, sequence.height)
        room = right - left - 2 * box_padding(size, style.box)
        said, size = fonts.fit(font, said, size, room)
    except FontProblem as exc:
        raise spec.source.error(loc, f"{name}: {exc}") from None
    start, end = span
    fade = style.fade if isinstance(style, TextSpec) else 0.1
    layer = TextLayer(
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
        font=fonts.digest(font),
    )
    return layer, font


def check_glyphs(
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
    sequence: Film,
    saying: Saying,
) -> list[tuple[TextLayer, Path]]:
    """A layer per cue of the sequence's subtitle file (as this variant names it), with its
    font's file."""
    style, (file_loc, name), cues = _subtitle_cues(spec, index, saying)
    font = find_font(spec, ("sequences", index, "subtitles", "font"), style.font, saying)
    fonts = saying.fonts
    layers = []
    for cue in cues:
        if cue.start >= sequence.duration:
            break  # past the film's end: a longer cut's subtitles fit a shorter one
        what = f"sequence '{sequence.id}' subtitle at {cue.start:g} s of '{name}'"
        span = (cue.start, min(cue.end, sequence.duration))
        layers.append(_layout(spec, (file_loc, what), sequence, cue.text, span, style, font, fonts))
    return layers


def _subtitle_cues(
    spec: Spec, index: int, saying: Saying
) -> tuple[SubtitleSpec, tuple[tuple[Any, ...], str], list[Cue]]:
    """The sequence's subtitle file as this variant names it: how it is drawn, where it is
    named and its name, and its cues."""
    given = spec.storyboard.sequences[index].subtitles
    assert given is not None
    loc: tuple[Any, ...] = ("sequences", index, "subtitles")
    style = given if isinstance(given, SubtitleSpec) else SubtitleSpec(file=given)
    file_loc = (*loc, "file") if isinstance(given, SubtitleSpec) else loc
    name, path = sequence_file(spec, file_loc, style.file, saying)
    try:
        data = read_bounded(path, SUBTITLE_BYTES, name)
        cues = read_cues(data)
    except OutsideProject as exc:
        raise spec.source.error(file_loc, str(exc), ROOT_HINT.format(root=spec.root)) from None
    except SubtitleProblem as exc:
        raise spec.source.error(file_loc, f"'{name}' {exc}") from None
    return style, (file_loc, name), cues


def with_captions(spec: Spec, index: int, sequence: Film, saying: Saying) -> Film:
    """The sequence with what its caption files say: its generated voice-over's words in
    sentences (timed once the voice is spoken), and its subtitle file's cues inside the
    film. A sequence with neither has nothing to caption: a located error."""
    board_sequence = spec.storyboard.sequences[index]
    voice = sequence.voice.render if sequence.voice is not None else None
    cues: list[CaptionCue] = []
    if board_sequence.subtitles is not None:
        found = _subtitle_cues(spec, index, saying)[2]
        length = sequence.duration
        cues = [
            CaptionCue(cue.start, min(cue.end, length), cue.text)
            for cue in found
            if cue.start < length
        ]
    if voice is None and not cues:
        raise spec.source.error(
            ("sequences", index, "captions"),
            f"sequence '{sequence.id}': captions: true, and nothing to caption: no voice "
            "render to take the words of (a voice-over file has none to read), no subtitles",
            "caption a generated voice (voice: {voice: id}), or give the words as "
            "subtitles: (an SRT or WebVTT file)",
        )
    captions = Captions(
        said=sentences(voice.prompt) if voice is not None else (),
        voice=voice.key if voice is not None else "",
        at=sequence.voice.at if sequence.voice is not None else 0.0,
        cues=tuple(cues),
    )
    return replace(sequence, captions=captions)


def _text_span(
    spec: Spec, loc: tuple[Any, ...], name: str, sequence: Film, text: TextSpec
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


def film_spans(sequence: Film) -> list[tuple[float, float]]:
    """Where each use of a shot is on screen, in seconds of the film (a transition counts
    for the shot it leads into)."""
    spans = []
    at = 0.0
    for use in sequence.uses:
        spans.append((round(at, 6), round(at + use.length, 6)))
        at += use.length - sequence.overlap
    return spans


def find_font(
    spec: Spec,
    loc: tuple[Any, ...],
    name: str | None,
    saying: Saying,
) -> Path:
    """A layer's font: the bundled one, a project file, or a family; a name may be a
    template (`fonts/{{ script }}.otf`), checked as a project file once it is said."""
    if name is None:
        return BUNDLED
    name = said_as(spec, loc, name, saying)
    if is_font_file(name):
        found = sequence_file(spec, loc, name, saying)[1]
        try:
            return saying.fonts.project(found, name)
        except FontProblem as exc:
            raise spec.source.error(loc, str(exc)) from None
    try:
        return saying.fonts.family(name)
    except FontProblem as exc:
        raise spec.source.error(
            loc, str(exc), "name a font file in the project instead: font: fonts/YourFont.otf"
        ) from None
