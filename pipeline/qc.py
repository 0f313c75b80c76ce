"""The quality check of every paid take and film: free, automatic, and data.

What a take or film shows is measured while it is decoded anyway (measure.py); the rules
here turn the figures into findings, each a code with the seconds it covers:

- `black`: frames at least 98% black (luma at or under 10% of its range: ffmpeg's
  blackdetect defaults) for a second or more;
- `frozen`: a picture that does not change (mean absolute difference under 0.001 of full
  scale: ffmpeg freezedetect's -60 dB) for a second or more;
- `flashes`: more than three general flashes in any one second, per WCAG 2.3.1 ("Three
  Flashes or Below Threshold") and its definition of the general flash threshold: a flash
  is a pair of opposing changes in relative luminance of 10% or more, the darker image
  below 0.80, over at least a quarter of the screen (the area ITU-R BT.1702 and EA's IRIS
  measure against);
- `silence`: where a voice should be (a voice render, a lip-synced clip, a film's
  voice-over) the sound stays under -50 dBFS for two seconds or more, or there is none;
- `length`: a take or film that does not last what was asked (by more than half a frame
  for a take, a frame for a film).

A finding never fails a render: the take was paid for and is kept. It is said in the
build, kept with the clip's record and in `status --json`, badged in the review app, and
a take with one is never picked by default (`build --qc strict` makes it fail the build).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from itertools import accumulate
from typing import TYPE_CHECKING, assert_never

from pydantic import BaseModel, ConfigDict

from pipeline.measure import Heard, Picture, Signals, Watch
from pipeline.nodes import Card, Clip, LipSync, Music, Node, Still, Upscale, Voice

if TYPE_CHECKING:
    from pipeline.media import ClipInfo
    from pipeline.nodes import Film

BLACK_SHARE = 0.98  # of a frame's samples (ffmpeg blackdetect's picture_black_ratio_th)
BLACK_SECONDS = 1.0
FROZEN_CHANGE = 0.001  # of full scale: -60 dB, ffmpeg freezedetect's noise
FROZEN_SECONDS = 1.0
FLASH_STEP = 0.10  # relative luminance: WCAG's "10% or more of the maximum"
FLASH_DARK = 0.80  # the darker image of a flash is below this
FLASH_AREA = 0.25  # of the screen that changes together
MOST_TRANSITIONS = 6  # in any one second: three flashes, each two opposing transitions
SILENT_DB = -50.0
SILENT_SECONDS = 2.0
AUDIBLE_SECONDS = 0.25  # a lip-synced clip with less sound than this says nothing


class Code(StrEnum):
    BLACK = "black"
    FROZEN = "frozen"
    FLASHES = "flashes"
    SILENCE = "silence"
    LENGTH = "length"


class Finding(BaseModel):
    """One thing the check found, over [start, end) seconds of the take or film."""

    model_config = ConfigDict(frozen=True)

    code: Code
    start: float
    end: float
    detail: str = ""

    def said(self) -> str:
        """The finding in words: `black from 0.00 to 6.00 s`."""
        if self.code == Code.LENGTH:
            return self.detail
        what = {
            Code.BLACK: "black",
            Code.FROZEN: "frozen picture",
            Code.FLASHES: "flashes",
            Code.SILENCE: "silent",
        }[self.code]
        detail = f" ({self.detail})" if self.detail else ""
        return f"{what} from {self.start:.2f} to {self.end:.2f} s{detail}"


Findings = tuple[Finding, ...]


def said(findings: Iterable[Finding]) -> str:
    return "; ".join(finding.said() for finding in findings)


def named(render: Node) -> str:
    """A take as a finding names it: its shot, variant and take (`hero [dusk] take 2`)."""
    variant = f" [{render.variant}]" if render.variant else ""
    return f"{render.label}{variant}" + (f" take {render.take}" if render.takes > 1 else "")


def warning(render: Node, findings: Findings) -> str:
    """What a build says of a take it delivered with findings."""
    passed = "; never picked by default" if render.takes > 1 else ""
    return f"qc: {named(render)}: {said(findings)}{passed}"


# -- what is measured, by kind ---------------------------------------------------------------


def watch_for(render: Node) -> Watch:
    """What the check measures of a render's output: the picture of a clip, the sound of a
    voice, and of a clip that speaks one (lip-synced, or an upscale of one)."""
    match render:
        case Clip() | Upscale() | LipSync():
            return Watch(picture=True, sound=bool(render.speaks))
        case Voice():
            return Watch(sound=True)
        case Still() | Music() | Card():
            return Watch()
        case _:
            assert_never(render)


def of_render(render: Node, info: ClipInfo) -> Findings:
    """What the check finds in a paid render, from what its decoding measured."""
    signals = info.signals or Signals()
    found = list(picture_findings(signals.picture))
    if signals.sound is not None:
        # A voice is all words; a lip-synced clip may speak in part of it only.
        whole = isinstance(render, Voice)
        found += silence(signals.sound, ((0.0, info.duration),), runs=whole)
    found += _length(render, info)
    return tuple(found)


def _length(render: Node, info: ClipInfo) -> list[Finding]:
    """A clip that does not last what was asked. A sound lasts what its words take and a
    still has no length: neither is checked."""
    if render.sound or isinstance(render, Still) or not info.fps:
        return []
    if abs(info.duration - render.duration) <= 0.5 / info.fps:
        return []
    detail = f"{info.duration:.2f} s long, {render.duration:g} s was asked"
    return [Finding(code=Code.LENGTH, start=0.0, end=round(info.duration, 3), detail=detail)]


def of_film(
    film: Film,
    length: float,
    takes: Sequence[Findings | None],
    sound: Heard | None,
    voice_length: float,
) -> Findings:
    """What the check finds in a joined film, at no new decode of its picture: what its
    takes show (`takes`: the findings of each piece's take, as checked when it was
    delivered), where the film shows it; its sound (measured on the film) where a voice
    speaks (`voice_length`: the voice-over's seconds); its `length` against its recipe's.
    A card is drawn, not paid for: it is not checked."""
    recipe = film.recipe
    spans = piece_spans(film)
    found = in_film(film, spans, takes)
    if sound is not None:
        clips, voice = spoken_spans(film, spans, voice_length)
        found += silence(sound, clips, runs=False) + silence(sound, voice)
    if abs(length - recipe.duration) > 1.0 / recipe.fps + 1e-3:
        detail = f"{length:.2f} s long, {recipe.duration:.2f} s was asked"
        found.append(Finding(code=Code.LENGTH, start=0.0, end=round(length, 3), detail=detail))
    return tuple(found)


PICTURE = (Code.BLACK, Code.FROZEN, Code.FLASHES)
SHORTEST = {Code.BLACK: BLACK_SECONDS, Code.FROZEN: FROZEN_SECONDS, Code.FLASHES: 0.0}


def in_film(
    film: Film, spans: list[tuple[float, float]], takes: Sequence[Findings | None]
) -> list[Finding]:
    """Each take's picture findings within the part of it the film uses, in film seconds
    (what a cut leaves of a black or frozen span under its shortest is not said)."""
    found = []
    for (at, _), piece, use, findings in zip(
        spans, film.recipe.pieces, film.uses, takes, strict=True
    ):
        for finding in findings or ():
            end = finding.end if piece.to_end else min(finding.end, piece.end)
            start = max(finding.start, piece.start)
            if finding.code not in PICTURE or end - start < max(SHORTEST[finding.code], 1e-3):
                continue
            shift = at - piece.start
            found.append(
                Finding(
                    code=finding.code,
                    start=round(start + shift, 3),
                    end=round(end + shift, 3),
                    detail=f"{named(use.shot)}" + (f": {finding.detail}" if finding.detail else ""),
                )
            )
    return found


def piece_spans(film: Film) -> list[tuple[float, float]]:
    """Where each piece of a film plays, in film seconds (a transition overlaps two)."""
    recipe = film.recipe
    spans = []
    at = 0.0
    for piece in recipe.pieces:
        length = piece.end - piece.start
        spans.append((at, at + length))
        at += length - recipe.overlap
    return spans


def spoken_spans(
    film: Film, spans: list[tuple[float, float]], voice_length: float
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Where a voice should be heard in a film: its lip-synced clips (which may speak in
    part of their length), and its voice-over (all words, `voice_length` seconds)."""
    recipe = film.recipe
    clips = [span for span, piece in zip(spans, recipe.pieces, strict=True) if piece.speaks]
    voice = []
    if recipe.voice is not None and voice_length > 0:
        voice.append((recipe.voice.at, min(recipe.voice.at + voice_length, recipe.duration)))
    return clips, voice


def needs_listening(film: Film) -> bool:
    return film.recipe.voice is not None or any(p.speaks for p in film.recipe.pieces)


# -- the rules -----------------------------------------------------------------------------


def picture_findings(picture: Picture | None) -> list[Finding]:
    """Black and frozen spans, and flashes, of a measured picture."""
    if picture is None or not picture.times:
        return []
    frame = 1.0 / (picture.fps or 25.0)
    black = [share >= BLACK_SHARE for share in picture.black]
    still = [
        not dark and change < FROZEN_CHANGE
        for dark, change in zip(black, picture.change, strict=True)
    ]
    # A frame that does not change from the one before: that one was frozen too.
    held = [b or a for a, b in zip(still, [*still[1:], False], strict=True)]
    found = [
        Finding(code=Code.BLACK, start=start, end=end)
        for start, end in _runs(picture.times, black, frame, BLACK_SECONDS)
    ]
    found += [
        Finding(code=Code.FROZEN, start=start, end=end)
        for start, end in _runs(picture.times, held, frame, FROZEN_SECONDS)
    ]
    return found + flashes(picture)


def _runs(
    times: Sequence[float], flags: Sequence[bool], frame: float, shortest: float
) -> list[tuple[float, float]]:
    """The spans of consecutive flagged frames lasting `shortest` or more (or the whole
    clip, when it is shorter)."""
    whole = len(times) * frame
    ends = [*times[1:], times[-1] + frame]  # a frame lasts until the next one starts
    spans = []
    start = 0.0
    for index, flag in enumerate(flags):
        if flag and (index == 0 or not flags[index - 1]):
            start = times[index]
        last = index + 1 == len(flags) or not flags[index + 1]
        if flag and last and ends[index] - start >= min(shortest, whole) - 1e-6:
            spans.append((round(start, 3), round(ends[index], 3)))
    return spans


def transitions(picture: Picture) -> list[float]:
    """When each general-flash transition of the picture completes: a run of same-direction
    changes of its mean relative luminance (each counted only while at least FLASH_AREA of
    the picture changes) that reaches FLASH_STEP within one second, the darker end below
    FLASH_DARK. A transition is counted once, however far past the step its run goes."""
    light, times = picture.luminance, picture.times
    steps = [0.0] + [
        (light[i] - light[i - 1]) if picture.area[i] >= FLASH_AREA else 0.0
        for i in range(1, len(light))
    ]
    total = list(accumulate(steps))
    found: list[float] = []
    start, direction, counted = 0, 0, False
    for i in range(1, len(light)):
        step = steps[i]
        turn = (step > 0) - (step < 0)
        if turn and direction and turn != direction:
            start, counted = i - 1, False  # it reversed: a new transition starts
        direction = turn or direction
        while times[i] - times[start] > 1.0:
            start += 1
        swing = total[i] - total[start]
        if not counted and abs(swing) >= FLASH_STEP and min(light[start], light[i]) < FLASH_DARK:
            found.append(times[i])
            counted = True
    return found


def flashes(picture: Picture) -> list[Finding]:
    """The spans with more than three flashes in one second."""
    moments = transitions(picture)
    hazards: list[tuple[float, float, int]] = []
    for index, first in enumerate(moments):
        inside = [t for t in moments[index:] if t < first + 1.0]
        if len(inside) > MOST_TRANSITIONS:
            hazards.append((first, inside[-1], len(inside) // 2))
    merged: list[list[float]] = []
    most = 0
    for start, end, count in hazards:
        most = max(most, count)
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    frame = 1.0 / (picture.fps or 25.0)
    detail = f"up to {most} in one second; WCAG 2.3.1 allows three"
    return [
        Finding(code=Code.FLASHES, start=round(a, 3), end=round(b + frame, 3), detail=detail)
        for a, b in merged
    ]


def silence(sound: Heard, spans: Iterable[tuple[float, float]], runs: bool = True) -> list[Finding]:
    """Where a voice should be heard (`spans`): a span with nothing audible in it at all
    (or no sound); with `runs`, also each silence of SILENT_SECONDS or more inside one (a
    voice is all words; a lip-synced clip may speak in part of it only)."""
    found = []
    quiet = _quiet_runs(sound) if runs else []
    for span_start, span_end in spans:
        if span_end <= span_start:
            continue
        if not sound.found or _audible(sound, span_start, span_end) < AUDIBLE_SECONDS:
            detail = "no sound" if not sound.found else "nothing audible"
            found.append(
                Finding(
                    code=Code.SILENCE,
                    start=round(span_start, 3),
                    end=round(span_end, 3),
                    detail=detail,
                )
            )
            continue
        for start, end in quiet:
            start, end = max(start, span_start), min(end, span_end)
            if end - start >= SILENT_SECONDS:
                found.append(Finding(code=Code.SILENCE, start=round(start, 3), end=round(end, 3)))
    return found


def _audible(sound: Heard, start: float, end: float) -> float:
    return sum(
        length
        for time, length, level in zip(sound.times, sound.lengths, sound.levels, strict=True)
        if level >= SILENT_DB and start <= time < end
    )


def _quiet_runs(sound: Heard) -> list[tuple[float, float]]:
    """The spans of consecutive blocks under SILENT_DB."""
    runs: list[tuple[float, float]] = []
    for time, length, level in zip(sound.times, sound.lengths, sound.levels, strict=True):
        if level >= SILENT_DB:
            continue
        if runs and abs(runs[-1][1] - time) < 1e-3:
            runs[-1] = (runs[-1][0], time + length)
        else:
            runs.append((time, time + length))
    return runs


def qc_json(findings: Findings | None) -> list[dict[str, object]] | None:
    """Findings as `--json` says them: a list (empty: checked, nothing found), or None
    when never checked."""
    return None if findings is None else [f.model_dump(mode="json") for f in findings]
