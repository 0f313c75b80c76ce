"""Where a shot is seen: the part of its frame that every film using it keeps. A crop to
9:16 keeps a third of a 16:9 clip; the preview draws its labels inside what all the
storyboard's formats keep, so that no film cuts them."""

from __future__ import annotations

from pipeline.spec.schema import FormatSpec, SequenceShot, SequenceSpec, Storyboard, focus_x

Area = tuple[float, float, float, float]  # x0, y0, x1, y1, as fractions of the frame
WHOLE: Area = (0.0, 0.0, 1.0, 1.0)


Framing = dict[str, list[tuple[float, str, float]]]  # shot id -> (aspect, fit, focus) each


def framing(storyboard: Storyboard) -> Framing:
    """For each shot, every format a film cuts it to: (aspect, fit, focus), made in one
    pass over the sequences (a plan of 10,000 shots asks it for each)."""
    found: Framing = {}
    for sequence in storyboard.sequences:
        for entry in sequence.shots:
            if isinstance(entry, str):
                shot_id, focus = entry, None
            elif isinstance(entry, SequenceShot):
                shot_id, focus = entry.shot, None if entry.focus is None else focus_x(entry.focus)
            else:
                continue  # a card: not a render
            found.setdefault(shot_id, []).extend(_formats(sequence, focus))
    return found


def kept_area(cuts: list[tuple[float, str, float]], width: int, height: int) -> Area:
    """The part of a `width`x`height` clip that every one of its `cuts` keeps (the whole
    frame when none crops it)."""
    x0, y0, x1, y1 = WHOLE
    for aspect, fit, where in cuts:
        if fit != "crop":
            continue
        a0, b0, a1, b1 = _window(width / height, aspect, where)
        x0, y0, x1, y1 = max(x0, a0), max(y0, b0), min(x1, a1), min(y1, b1)
    if x1 <= x0 or y1 <= y0:  # focus settings that keep no common part: the whole frame
        return WHOLE
    return (round(x0, 4), round(y0, 4), round(x1, 4), round(y1, 4))


def _formats(sequence: SequenceSpec, focus: float | None) -> list[tuple[float, str, float]]:
    """(aspect, fit, focus) of each format the sequence's films are cut to."""
    made: list[tuple[float, str, float]] = []
    for entry in sequence.formats or ():
        chosen = entry if isinstance(entry, FormatSpec) else FormatSpec(format=entry)
        fit = chosen.fit or sequence.fit or "crop"
        if focus is not None:
            where = focus
        elif chosen.focus is not None:
            where = focus_x(chosen.focus)
        else:
            where = focus_x(sequence.focus)
        made.append((_aspect(chosen.format), fit, where))
    return made


def _aspect(format_name: str) -> float:
    if ":" in format_name:
        across, down = format_name.split(":")
    else:
        across, down = format_name.lower().split("x")
    return int(across) / int(down)


def _window(clip: float, film: float, focus: float) -> Area:
    """What a crop of a clip (aspect `clip`) to a film (aspect `film`) keeps: a band of the
    width placed by `focus`, or of the height, centred."""
    if film < clip:
        kept = film / clip
        left = (1 - kept) * focus
        return (left, 0.0, left + kept, 1.0)
    kept = clip / film
    return (0.0, (1 - kept) / 2, 1.0, (1 + kept) / 2)
