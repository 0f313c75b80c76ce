"""The preview renderer: a local animatic per shot, made by ffmpeg. No key, no cost."""

from __future__ import annotations

import asyncio
import colorsys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from pipeline import media
from pipeline.errors import MediaError, RenderError
from pipeline.render import KINDS, RenderJob, RenderResult
from pipeline.typeface import BUNDLED, Fonts, covering

PUSH_IN = 0.12  # how far the first frame zooms over the clip


@dataclass(frozen=True)
class Card:
    """What an animatic shows: the size and timing asked for, and words to read."""

    width: int
    height: int
    duration: float
    fps: int
    title: str
    prompt: str
    colour_seed: str
    image: Path | None = None
    font: Path = BUNDLED  # of the title (and the labels)
    prompt_font: Path = BUNDLED
    still: bool = False  # one PNG frame, the placeholder of a keyframe image


def card_for(job: RenderJob, fonts: Fonts | None = None) -> Card:
    """The card of a shot, its words in a font that draws them (a Japanese prompt needs a
    font with Japanese glyphs: fontconfig finds one on this machine when there is one)."""
    shot = job.shot
    parts = [shot.label]
    if shot.variant:
        parts.append(shot.variant)
    parts.append(f"take {shot.take}/{shot.takes}")
    title = "  ·  ".join(parts)
    fonts = fonts or Fonts()
    return Card(
        width=shot.width,
        height=shot.height,
        duration=shot.duration,
        fps=shot.fps,
        title=title,
        prompt=shot.prompt,
        colour_seed=shot.key,
        image=shot.images[0] if shot.images else None,
        font=covering(title, fonts)[0],
        prompt_font=covering(shot.prompt, fonts)[0],
        still=shot.still,
    )


def colour(seed: str) -> str:
    """A dark, distinct background colour derived from a key."""
    hue = int(seed[:6], 16) / 0xFFFFFF if seed else 0.5
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.55, 0.42)
    return f"0x{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"


def command(card: Card, output: Path, workdir: Path) -> list[str]:
    """The ffmpeg arguments that draw `card` into `output`."""
    width, height, fps = card.width, card.height, card.fps or 25
    frames = 1 if card.still else round(card.duration * fps)
    if card.still:
        source = f"color=c={colour(card.colour_seed)}:s={width}x{height}:r={fps}:d=1"
        video = ffmpeg.input(source, f="lavfi")
    elif card.image is not None:
        video = ffmpeg.input(str(card.image), loop=1, framerate=fps, t=card.duration)
        video = (
            video.filter("scale", width, height, force_original_aspect_ratio="increase")
            .filter("crop", width, height)
            .filter(
                "zoompan",
                z=f"1+{PUSH_IN}*on/{max(frames - 1, 1)}",
                x="iw/2-(iw/zoom/2)",
                y="ih/2-(ih/zoom/2)",
                d=1,
                s=f"{width}x{height}",
                fps=fps,
            )
            # JPEG frames decode as full-range yuvj420p: convert so every clip joins by copy.
            .filter("scale", out_range="tv")
            .filter("format", "yuv420p")
        )
    else:
        source = f"color=c={colour(card.colour_seed)}:s={width}x{height}:r={fps}:d={card.duration}"
        video = ffmpeg.input(source, f="lavfi")
    title_file = workdir / "title.txt"
    prompt_file = workdir / "prompt.txt"
    title_file.write_text(card.title, encoding="utf-8")
    prompt_file.write_text(_excerpt(card.prompt, width), encoding="utf-8")
    font = str(card.font)
    big, small = max(height // 18, 10), max(height // 34, 8)
    margin = width // 28
    video = (
        video.filter("drawbox", x=0, y="ih*0.64", w="iw", h="ih*0.36", color="black@0.5", t="fill")
        .drawtext(
            fontfile=font,
            textfile=str(title_file),
            expansion="none",
            fontcolor="white",
            fontsize=big,
            x=margin,
            y="h*0.67",
        )
        .drawtext(
            fontfile=str(card.prompt_font),
            textfile=str(prompt_file),
            expansion="none",
            fontcolor="white@0.9",
            fontsize=small,
            line_spacing=small // 3,
            x=margin,
            y=f"h*0.67+{big * 3 // 2}",
        )
        .drawtext(
            fontfile=font,
            text="PREVIEW",
            expansion="none",
            fontcolor="white@0.8",
            fontsize=small,
            x=margin,
            y=margin // 2,
            box=1,
            boxcolor="black@0.4",
            boxborderw=small // 3,
        )
    )
    if card.still:
        return ffmpeg.output(  # type: ignore[no-any-return]
            video, str(output), vcodec="png", frames=1, f="image2", update=1
        ).get_args(overwrite_output=True)
    video = video.drawtext(
        fontfile=font,
        timecode="00:00:00:00",
        rate=fps,
        fontcolor="white",
        fontsize=big,
        x=f"w-tw-{margin}",
        y=margin // 2,
        box=1,
        boxcolor="black@0.4",
        boxborderw=small // 3,
    )
    stream = ffmpeg.output(
        video,
        str(output),
        vcodec="libx264",
        preset="ultrafast",
        crf=30,
        pix_fmt="yuv420p",
        r=fps,
        g=fps * 2,
        movflags="+faststart",
        video_track_timescale=fps * 512,
        frames=frames,
        an=None,
        f="mp4",
    )
    return stream.get_args(overwrite_output=True)  # type: ignore[no-any-return]


def _excerpt(prompt: str, width: int) -> str:
    columns = max(int(width / 13), 30)
    lines = textwrap.wrap(prompt or "(no prompt: image only)", columns)
    if len(lines) > 4:
        lines = [*lines[:3], lines[3][: columns - 1] + "…"]
    return "\n".join(lines)


def time_limit(card: Card) -> float:
    """Seconds an animatic may take to draw: far more than the second it takes, so that only
    an ffmpeg that hangs is stopped."""
    return 60.0 + 10.0 * card.duration


def draw(card: Card, output: Path) -> media.ClipInfo:
    """Draw a card synchronously (benchmarks use this) and validate it."""
    with tempfile.TemporaryDirectory(prefix="storyboard-card-") as workdir:
        media.run_ffmpeg(command(card, output, Path(workdir)), "draw a preview", time_limit(card))
    return media.validate(output, card.width, card.height, card.duration)


class PreviewRenderer:
    """Animatics: exact size, duration and fps, the shot's words, a timecode. About a second."""

    name = KINDS["preview"].name
    paid = KINDS["preview"].paid

    @classmethod
    def check_options(cls, options: Any) -> None:
        return None

    def __init__(self) -> None:
        self.fonts = Fonts()  # each font's character map read once per build

    @classmethod
    def from_options(cls, cache: Any, options: Any, note: Callable[[str], None]) -> PreviewRenderer:
        return cls()

    async def render(self, job: RenderJob) -> RenderResult:
        card = await asyncio.to_thread(card_for, job, self.fonts)
        with tempfile.TemporaryDirectory(prefix="storyboard-card-") as workdir:
            args = command(card, job.output, Path(workdir))
            try:
                await media.run_ffmpeg_async(args, "draw the preview", time_limit(card))
            except MediaError as exc:
                raise RenderError(f"shot '{job.shot.label}': {exc.message}") from None
        asked = (card.width, card.height, card.duration)
        info, frames = await asyncio.to_thread(
            media.check_render, job.output, card.still, job.frames, asked
        )
        return RenderResult(path=job.output, info=info, seed=None, cost=0.0, frames=frames)

    async def aclose(self) -> None:
        return None
