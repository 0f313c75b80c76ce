"""Subtitle files (SRT and WebVTT) read into cues: when, and what is said.

Only what a burned-in subtitle needs is kept: the times and the words. Cue settings
(`line:`, `align:`) and styling tags (`<i>`, `{\\an8}`) are dropped: the storyboard says how
subtitles look.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_BYTES = 2 * 1024 * 1024
MAX_CUES = 5000  # what one film's join is measured to take (tests/test_text.py)
TIME = re.compile(r"^(?:(\d{1,3}):)?(\d{1,2}):(\d{2})[,.](\d{1,3})$")
TAGS = re.compile(r"<[^>]*>|\{\\[^}]*\}")


class SubtitleProblem(ValueError):
    """A subtitle file that cannot be read; the message names the line."""


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def read_cues(data: bytes) -> list[Cue]:
    """The cues of an SRT or WebVTT file's bytes (read bounded: MAX_BYTES), in order of
    time."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubtitleProblem(f"is not UTF-8 text (byte {exc.start})") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cues: list[Cue] = []
    number = 0
    while number < len(lines):
        line = lines[number].strip()
        number += 1
        if "-->" not in line:
            continue  # a cue number, a WEBVTT header, a NOTE, a blank line
        start, end = _times(line, number)
        words = []
        while number < len(lines) and lines[number].strip():
            words.append(TAGS.sub("", lines[number]).strip())
            number += 1
        said = "\n".join(w for w in words if w)
        if said:
            cues.append(Cue(start, end, said))
        if len(cues) > MAX_CUES:
            raise SubtitleProblem(f"has more than {MAX_CUES} cues")
    if not cues:
        raise SubtitleProblem("has no cues (SRT or WebVTT: `00:00:01,000 --> 00:00:03,000`)")
    return sorted(cues, key=lambda cue: cue.start)


def _times(line: str, number: int) -> tuple[float, float]:
    parts = line.split("-->")
    start = _seconds(parts[0].strip(), number)
    end = _seconds(parts[1].strip().split(" ")[0], number)  # WebVTT settings follow the time
    if end <= start:
        raise SubtitleProblem(f"line {number}: the cue ends before it starts")
    return start, end


def _seconds(text: str, number: int) -> float:
    found = TIME.match(text)
    if found is None:
        raise SubtitleProblem(f"line {number}: '{text}' is not a time like 00:01:02,500")
    hours, minutes, seconds, fraction = found.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        raise SubtitleProblem(
            f"line {number}: '{text}' is not a time: minutes and seconds go from 00 to 59"
        )
    return (
        int(hours or 0) * 3600
        + int(minutes) * 60
        + int(seconds)
        + int(fraction.ljust(3, "0")) / 1000
    )
