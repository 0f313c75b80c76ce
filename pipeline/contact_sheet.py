"""The contact sheet: one PNG of every picture render of a storyboard, a grid of posters with
each take's label, variants, price and state under it; for a pull request, the renders a
change touches first, framed. Made for where a team reviews: an image a comment links to.

The grid is drawn in this process (each poster decoded by PyAV, scaled and set in place),
its words by one ffmpeg run (drawtext, with the bundled DejaVu Sans).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from pipeline import media
from pipeline.cache import Cache
from pipeline.cache.files import partial_name
from pipeline.compare import Comparison, ShotChange
from pipeline.errors import MediaError
from pipeline.nodes import Card
from pipeline.plan import Plan, PlanRow
from pipeline.thumbnails import fitted, frame_at
from pipeline.typeface import BUNDLED, Fonts

COLUMNS = 4
BOX_WIDTH, BOX_HEIGHT = 352, 198  # a poster's box (16:9; other shapes fit inside it)
GUTTER = 16
CAPTION = 58  # two lines of words under each poster
HEADER = 78
TITLE_SIZE, DETAIL_SIZE, HEAD_SIZE = 20, 16, 26
FRAME = 4  # the border of a render the change touches
MAX_CELLS = 120  # renders drawn; the rest are counted in the header
WIDTH = GUTTER + COLUMNS * (BOX_WIDTH + GUTTER)  # 1,488 pixels

Colour = tuple[int, int, int]
BACKGROUND: Colour = (28, 28, 30)
BOX: Colour = (0, 0, 0)
EMPTY: Colour = (58, 58, 60)
TOUCHED: Colour = (255, 159, 10)
WHITE, GREY, ORANGE = "white", "0xC7C7CC", "0xFF9F0A"


@dataclass(frozen=True)
class Cell:
    """One render on the sheet: its poster (the file in the cache, None when it is not
    rendered) and its two lines of words."""

    title: str  # `glove take 2/3`
    detail: str  # `changed · golden-dusk · $0.28 · cached`
    video: Path | None
    at: float  # the moment its poster shows
    touched: bool


@dataclass(frozen=True)
class Sheet:
    title: str
    subtitle: str
    cells: tuple[Cell, ...]

    @property
    def height(self) -> int:
        rows = max(-(-len(self.cells) // COLUMNS), 1)
        return HEADER + rows * (BOX_HEIGHT + CAPTION + GUTTER)


@dataclass(frozen=True)
class Words:
    """A line drawn on the sheet: where (its top left), how big, in what colour."""

    x: int | str  # a number, or an expression of drawtext's (centred: uses text_w)
    y: int
    text: str
    size: int
    colour: str


def sheet_of(
    storyboard: str,
    build: str,
    plan: Plan,
    cache: Cache,
    changes: Comparison | None = None,
) -> Sheet:
    """The sheet of a storyboard as planned for `build`: its picture renders, the ones
    `changes` touches first (in the plan's order otherwise)."""
    rows = [row for row in plan.rows if not row.shot.sound and not isinstance(row.shot, Card)]
    touched = {row.shot.key: kind for row in rows if (kind := _touched(row, changes))}
    rows.sort(key=lambda row: row.shot.key not in touched)  # stable: the plan's order kept
    held = cache.clips.present([row.shot.key for row in rows[:MAX_CELLS]])
    cells = tuple(
        _cell(row, plan.variants, cache.clips.path(row.shot.key) if row.shot.key in held else None,
              touched.get(row.shot.key, ""))
        for row in rows[:MAX_CELLS]
    )  # fmt: skip
    left_out = f"; {len(rows) - MAX_CELLS:,} more not shown" if len(rows) > MAX_CELLS else ""
    said = f"{len(rows):,} renders{left_out}"
    if changes is not None:
        said += f"; changed since {changes.old.name}: {len(touched)} (first, framed)"
    priced = [row.shot.price for row in rows]
    total = "unknown" if None in priced else _money(sum(p or 0.0 for p in priced))
    said += f"; every render at its price: {total}"
    if rows and not rows[0].paid:
        said += " (the paid renders' prices: these previews are free)"
    return Sheet(f"{storyboard}: {build}", said, cells)


def _touched(row: PlanRow, changes: Comparison | None) -> str:
    """How the change touches this render: `changed`, `added`, or not at all ("")."""
    if changes is None:
        return ""
    shot = row.shot
    for change in changes.shots:
        if change.kind != "removed" and _same_render(change, shot.label, shot.take, row.variants):
            return change.kind
    return ""


def _same_render(change: ShotChange, label: str, take: int, variants: Iterable[str]) -> bool:
    if (change.label, change.take) != (label, take):
        return False
    return not change.variants or bool(set(change.variants) & set(variants))


def _cell(row: PlanRow, every: tuple[str, ...], video: Path | None, touched: str) -> Cell:
    shot = row.shot
    take = f" take {shot.take}/{shot.takes}" if shot.takes > 1 else ""
    named = [v for v in row.variants if v]
    variants = "every variant" if len(every) > 1 and len(named) == len(every) else ", ".join(named)
    parts = [touched, variants, _money(shot.price), str(row.status)]
    return Cell(
        title=f"{shot.label}{take}",
        detail=" · ".join(part for part in parts if part),
        video=video,
        at=shot.duration / 2,
        touched=bool(touched),
    )


def _money(value: float | None) -> str:
    return "price unknown" if value is None else f"${value:,.2f}"


def draw(sheet: Sheet, output: Path) -> Path:
    """Draw `sheet` as a PNG at `output` (a new file renamed over it), and return it."""
    canvas = bytearray(bytes(BACKGROUND) * (WIDTH * sheet.height))
    words = [
        Words(GUTTER, 16, sheet.title, HEAD_SIZE, WHITE),
        Words(GUTTER, 50, sheet.subtitle, DETAIL_SIZE, GREY),
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        posters = list(pool.map(_poster, sheet.cells))
    fonts = Fonts()
    for index, (cell, poster) in enumerate(zip(sheet.cells, posters, strict=True)):
        words += _place(canvas, index, cell, poster, fonts)
    output.parent.mkdir(parents=True, exist_ok=True)
    temp = partial_name(output.with_suffix(".png"))
    try:
        _write_words(canvas, sheet.height, words, temp)
        os.replace(temp, output)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    return output


def _poster(cell: Cell) -> Any:
    """A render's poster fitted to its box, as RGB; None when there is no picture."""
    if cell.video is None:
        return None
    try:
        return fitted(frame_at(cell.video, cell.at), BOX_WIDTH, BOX_HEIGHT)
    except MediaError:
        return None


def _place(canvas: bytearray, index: int, cell: Cell, poster: Any, fonts: Fonts) -> list[Words]:
    """Set a cell's box and poster on the canvas; its words, to be drawn."""
    row, column = divmod(index, COLUMNS)
    left = GUTTER + column * (BOX_WIDTH + GUTTER)
    top = HEADER + row * (BOX_HEIGHT + CAPTION + GUTTER)
    if cell.touched:
        _fill(canvas, left - FRAME, top - FRAME, BOX_WIDTH + 2 * FRAME, BOX_HEIGHT + 2 * FRAME,
              TOUCHED)  # fmt: skip
    _fill(canvas, left, top, BOX_WIDTH, BOX_HEIGHT, BOX if poster is not None else EMPTY)
    below = top + BOX_HEIGHT + FRAME + 6
    said = [
        Words(left, below, _fitting(cell.title, TITLE_SIZE, fonts), TITLE_SIZE, WHITE),
        Words(left, below + 27, _fitting(cell.detail, DETAIL_SIZE, fonts), DETAIL_SIZE,
              ORANGE if cell.touched else GREY),
    ]  # fmt: skip
    if poster is None:
        middle = f"{left}+({BOX_WIDTH}-text_w)/2"
        said.append(Words(middle, top + BOX_HEIGHT // 2 - 9, "not rendered", DETAIL_SIZE, GREY))
    else:
        _paste(canvas, poster, left + (BOX_WIDTH - poster.width) // 2,
               top + (BOX_HEIGHT - poster.height) // 2)  # fmt: skip
    return said


def _fitting(line: str, size: int, fonts: Fonts) -> str:
    """`line`, cut short with an ellipsis to fit under a poster."""
    if fonts.width(BUNDLED, line, size) <= BOX_WIDTH:
        return line
    while line and fonts.width(BUNDLED, line + "…", size) > BOX_WIDTH:
        line = line[:-1]
    return line.rstrip() + "…"


def _fill(canvas: bytearray, left: int, top: int, width: int, height: int, colour: Colour) -> None:
    run = bytes(colour) * width
    for y in range(top, top + height):
        start = (y * WIDTH + left) * 3
        canvas[start : start + width * 3] = run


def _paste(canvas: bytearray, picture: Any, left: int, top: int) -> None:
    """An RGB frame's rows into the canvas (each row of the frame may be padded)."""
    plane = picture.planes[0]
    data = memoryview(plane)
    used = picture.width * 3
    for y in range(picture.height):
        start = ((top + y) * WIDTH + left) * 3
        canvas[start : start + used] = data[y * plane.line_size : y * plane.line_size + used]


def _write_words(canvas: bytearray, height: int, words: list[Words], output: Path) -> None:
    """The canvas with its words drawn on, as a PNG: one ffmpeg run. Each line is read by
    drawtext from a file of its own, so that nothing in it is read as drawtext's syntax."""
    with tempfile.TemporaryDirectory(prefix="storyboard-sheet-") as folder:
        picture = Path(folder) / "canvas.ppm"
        picture.write_bytes(b"P6\n%d %d\n255\n" % (WIDTH, height) + canvas)
        video = ffmpeg.input(str(picture))
        for number, line in enumerate(words):
            said = Path(folder) / f"{number}.txt"
            said.write_text(line.text, encoding="utf-8")
            video = video.drawtext(
                fontfile=str(BUNDLED),
                textfile=str(said),
                expansion="none",
                fontsize=line.size,
                fontcolor=line.colour,
                x=line.x,
                y=line.y,
            )
        args = ffmpeg.output(
            video, str(output), vframes=1, f="image2", update=1, vcodec="png"
        ).get_args()
        media.run_ffmpeg(args, "draw the contact sheet")
