"""Title and end cards: words on a colour or an image, drawn by ffmpeg into the clip cache
before the films that use them are joined. Free, and the same every time: a card's key is
what it shows, so it is drawn once.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import ffmpeg

from pipeline import hashing, media
from pipeline.cache import Cache
from pipeline.errors import MediaError
from pipeline.nodes import CARD, SAFE_MARGIN, Card, Film, SafeArea
from pipeline.typeface import BUNDLED, Fonts

TITLE_SAFE_EDGES = (SAFE_MARGIN,) * 4  # a card's margins when its request names none


def draw_missing(
    sequences: Iterable[Film], cache: Cache, note: Callable[[str], None]
) -> tuple[int, dict[str, str]]:
    """Draw every card of these films the cache lacks: how many were drawn, and why each card
    that could not be was not, by its key (its films then fail)."""
    cards: dict[str, Card] = {}
    films: dict[str, list[str]] = {}  # the films each card is in, by its key
    for sequence in sequences:
        for use in sequence.uses:
            if isinstance(use.shot, Card):
                cards.setdefault(use.shot.key, use.shot)
                films.setdefault(use.shot.key, []).append(sequence.name)
    drawn_before = cache.clips.present(list(cards))
    wanted = [shot for key, shot in cards.items() if key not in drawn_before]
    fonts = Fonts()
    problems: dict[str, str] = {}
    drawn = 0
    for shot in wanted:
        output = cache.tmp.path()
        try:
            info = draw(shot, output, fonts)
            cache.clips.put(
                shot.key,
                output,
                sha256=hashing.sha256_file(output),
                duration=info.duration,
                width=info.width,
                height=info.height,
                renderer=CARD,
                label=shot.label,
                cost=0.0,
            )
        except (MediaError, OSError) as exc:
            output.unlink(missing_ok=True)
            problems[shot.key] = f"{shot.label}: {getattr(exc, 'message', exc)}"
            continue
        drawn += 1
        in_films = _names(list(dict.fromkeys(films[shot.key])))
        size = f"{info.width}x{info.height}"
        note(
            f"drew     {shot.label} of {in_films} ({shot.prompt[:40]!r}, {size}, {info.duration:.2f} s)"
        )
    return drawn, problems


def _names(films: list[str], shown: int = 2) -> str:
    """`spot--en--16x9`, `a and b`, `a, b and 3 more`."""
    if len(films) <= shown:
        return " and ".join(films)
    return f"{', '.join(films[:shown])} and {len(films) - shown} more"


def draw(shot: Card, output: Path, fonts: Fonts) -> media.ClipInfo:
    """One card: its background, its words centred and wrapped inside the safe area (a
    platform's, when the film is delivered for one)."""
    request = shot.request
    width, height, fps = shot.width, shot.height, shot.fps
    duration = float(request["duration"])
    font = shot.font or BUNDLED
    size = max(round(float(request["size"]) * height), 8)
    left, top, right, bottom = SafeArea(*request.get("safe", TITLE_SAFE_EDGES)).inside(
        width, height
    )
    text, size = fonts.fit(font, str(request["card"]), size, right - left)
    lines = text.count("\n") + 1
    tall = lines * size + (lines - 1) * (size // 4)  # its lines and the spacing between
    if tall > bottom - top:  # a platform's safe area is short: the words are made smaller
        size = max(int(size * (bottom - top) / tall), 8)
        text, size = fonts.fit(font, str(request["card"]), size, right - left)
    with tempfile.TemporaryDirectory(prefix="storyboard-card-") as folder:
        words = Path(folder) / "card.txt"
        words.write_text(text, encoding="utf-8")
        if shot.images:
            video = (
                ffmpeg.input(str(shot.images[0]), loop=1, framerate=fps, t=duration)
                .filter("scale", width, height, force_original_aspect_ratio="increase")
                .filter("crop", width, height)
                .filter("setsar", 1)
            )
        else:
            colour = request["background"]
            source = f"color=c={colour}:s={width}x{height}:r={fps}:d={duration}"
            video = ffmpeg.input(source, f="lavfi")
        video = video.drawtext(
            fontfile=str(font),
            textfile=str(words),
            expansion="none",
            fontsize=size,
            fontcolor=request["color"],
            line_spacing=size // 4,
            x=f"{left}+({right - left}-text_w)/2",
            y=f"{top}+({bottom - top}-text_h)/2",
        ).filter("format", "yuv420p")
        args = ffmpeg.output(
            video,
            str(output),
            vcodec="libx264",
            preset="veryfast",
            crf=18,
            r=fps,
            t=duration,
            f="mp4",
            movflags="+faststart",
        ).get_args()
        media.run_ffmpeg(args, "draw a card")
    return media.validate(output, width, height, duration)
