"""Caption files beside a film (`<film>.srt`, `<film>.vtt`): the voice-over's words in
sentences, timed over the voice render's measured length, and the cues of the film's
subtitle file.

A cue's time is the voice's length shared out by characters, from where the voice starts:
close enough for sentences read at an even pace, not a word's exact moment (that needs a
speech model's alignment, out of scope). Written here rather than with pysubs2 or
webvtt-py: both formats are a few lines of text, and these are cues this tool made itself.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from pipeline.hashing import sha256_text
from pipeline.nodes import CaptionCue, Captions

LINE = 42  # characters a caption line holds (the common broadcast and streaming rule)
LINES = 2  # lines a cue holds
SUFFIXES = (".srt", ".vtt")
# A sentence ends at . ! ? or … followed by a space, or at a full-width 。！？ (no space).
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])")


def sentences(text: str) -> tuple[str, ...]:
    """A voice-over's words as cues: a sentence each, a long sentence in parts of at most
    LINES lines of LINE characters, lines broken at spaces."""
    flat = " ".join(text.split())
    cues: list[str] = []
    for sentence in _SENTENCE_END.split(flat):
        lines = textwrap.wrap(sentence.strip(), LINE, break_on_hyphens=False)
        cues += ["\n".join(lines[at : at + LINES]) for at in range(0, len(lines), LINES)]
    return tuple(cues)


def timed(captions: Captions, voice_length: float, film_length: float) -> list[CaptionCue]:
    """Every cue of a film's captions in order of time: the voice's words shared out over
    its length by characters, from where it starts, and the subtitle file's cues; none
    past the film's end."""
    spoken = [len(said.replace("\n", " ")) for said in captions.said]
    total = sum(spoken) or 1
    cues = list(captions.cues)
    at = captions.at
    for said, characters in zip(captions.said, spoken, strict=True):
        end = at + voice_length * characters / total
        if at < film_length:
            cues.append(CaptionCue(round(at, 3), round(min(end, film_length), 3), said))
        at = end
    return sorted(cues, key=lambda cue: (cue.start, cue.end))


def srt(cues: list[CaptionCue]) -> str:
    """The cues as SubRip: numbered, `00:00:01,500 --> 00:00:03,000`."""
    blocks = [
        f"{number}\n{_time(cue.start, ',')} --> {_time(cue.end, ',')}\n"
        f"{cue.text.replace('-->', '->')}\n"
        for number, cue in enumerate(cues, 1)
    ]
    return "\n".join(blocks)


def vtt(cues: list[CaptionCue]) -> str:
    """The cues as WebVTT, `&`, `<` and `>` escaped as the format asks."""
    blocks = [
        f"{_time(cue.start, '.')} --> {_time(cue.end, '.')}\n{_escaped(cue.text)}\n" for cue in cues
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def texts(cues: list[CaptionCue]) -> dict[str, str]:
    """Each caption file's text, by suffix."""
    return {".srt": srt(cues), ".vtt": vtt(cues)}


def paths(film: Path) -> dict[str, Path]:
    """Where a film's caption files go: beside it, its name with their suffix."""
    return {suffix: film.with_suffix(suffix) for suffix in SUFFIXES}


def checksums(made: dict[str, str], film: Path) -> dict[str, str]:
    """The sha256 of each caption file's text, by its file name (as the lock keeps them)."""
    return {paths(film)[suffix].name: sha256_text(text) for suffix, text in made.items()}


def _time(seconds: float, mark: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{mark}{millis:03d}"


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
