"""The preview renderer: a local animatic per shot, made by ffmpeg. No key, no cost."""

from __future__ import annotations

import asyncio
import colorsys
import tempfile
import textwrap
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, assert_never

import ffmpeg

from pipeline import media
from pipeline.errors import MediaError, RenderError
from pipeline.expand.framing import WHOLE
from pipeline.nodes import Card, Clip, LipSync, Music, Node, Output, Still, Upscale, Voice
from pipeline.render import CHECKING, KINDS, RenderJob, RenderResult
from pipeline.typeface import BUNDLED, Fonts, covering

PUSH_IN = 0.12  # how far the first frame zooms over the clip


@dataclass(frozen=True)
class Animatic:
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
    # Where the labels go (x0, y0, x1, y1 of the frame): what every format of its films keeps.
    area: tuple[float, float, float, float] = WHOLE
    # Frames drawn without labels: the ones other shots start from, so that a shot that
    # starts from this one starts from a clean picture.
    clean: tuple[int, ...] = ()

    @property
    def output(self) -> Output:
        return Output.IMAGE if self.still else Output.VIDEO

    @property
    def frames(self) -> int:
        return 1 if self.still else round(self.duration * (self.fps or 25))


def card_for(job: RenderJob, fonts: Fonts | None = None) -> Animatic:
    """The card of a shot, its words in a font that draws them (a Japanese prompt needs a
    font with Japanese glyphs: fontconfig finds one on this machine when there is one)."""
    shot = job.shot
    title = "  ·  ".join(
        [shot.label, *_serves(shot, job.variants), f"take {shot.take}/{shot.takes}"]
    )
    fonts = fonts or Fonts()
    x0, y0, x1, y1 = shot.request.get("previewLabelArea") or WHOLE
    card = Animatic(
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
        still=isinstance(shot, Still),
        area=(float(x0), float(y0), float(x1), float(y1)),
    )
    return replace(card, clean=clean_frames(job.frames, card.frames, card.fps or 25))


def _serves(shot: Node, variants: tuple[str, ...]) -> list[str]:
    """The variant a render is of, or how many share it (not the first one's name)."""
    named = [v for v in variants if v]
    if len(named) > 1:
        return [f"shared by {len(named)} variants"]
    if named:
        return named
    return [shot.variant] if shot.variant else []


def clean_frames(wanted: tuple[str | float, ...], frames: int, fps: int) -> tuple[int, ...]:
    """The frames another shot may start from: the first, the last, and the one on screen
    at each time asked for (as media.FrameTaker picks it)."""
    chosen = {0, frames - 1}
    for at in wanted:
        if isinstance(at, int | float):
            chosen.add(min(int(at * fps + 1e-6), frames - 1))
    return tuple(sorted(chosen))


def colour(seed: str) -> str:
    """A dark, distinct background colour derived from a key."""
    hue = int(seed[:6], 16) / 0xFFFFFF if seed else 0.5
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.55, 0.42)
    return f"0x{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"


def command(card: Animatic, output: Path, workdir: Path) -> list[str]:
    """The ffmpeg arguments that draw `card` into `output`."""
    width, height, fps = card.width, card.height, card.fps or 25
    frames = card.frames
    if card.still:
        source = f"color=c={colour(card.colour_seed)}:s={width}x{height}:r={fps}:d=1"
        # A keyframe is a picture shots start from: shaded, and never labelled.
        video = ffmpeg.input(source, f="lavfi").filter("vignette", angle=0.9)
        return ffmpeg.output(
            video, str(output), vcodec="png", frames=1, f="image2", update=1
        ).get_args(overwrite_output=True)
    if card.image is not None:
        # The image decoded, scaled and cropped once; zoompan makes every frame of it (`d`),
        # the same pixels as a looped input scaled again for each frame, at a fifth less CPU.
        video = ffmpeg.input(str(card.image))
        video = (
            video.filter("scale", width, height, force_original_aspect_ratio="increase")
            .filter("crop", width, height)
            .filter(
                "zoompan",
                z=f"1+{PUSH_IN}*on/{max(frames - 1, 1)}",
                x="iw/2-(iw/zoom/2)",
                y="ih/2-(ih/zoom/2)",
                d=frames,
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
    video = _labels(video, card, workdir)
    stream = ffmpeg.output(video, str(output), **_encoding(fps), frames=frames, an=None)
    return stream.get_args(overwrite_output=True)


def _labels(video: Any, card: Animatic, workdir: Path) -> Any:
    """The title, the prompt, PREVIEW and the clip's timecode, inside the card's area and
    sized to it; none of them on the clean frames."""
    x0, y0, x1, y1 = card.area
    left, top = round(x0 * card.width), round(y0 * card.height)
    wide, high = round((x1 - x0) * card.width), round((y1 - y0) * card.height)
    margin = max(wide // 28, 6)
    room = wide - 2 * margin
    big = max(min(high // 18, int(room / (_advance(card.title) * max(len(card.title), 1)))), 10)
    small = max(min(high // 34, big), 8)
    band = round(high * 0.36)
    lines = max((band - big * 2) // (small + small // 3), 1)
    title_file, prompt_file = workdir / "title.txt", workdir / "prompt.txt"
    title_file.write_text(card.title, encoding="utf-8")
    prompt_file.write_text(wrap(card.prompt, room, small, lines), encoding="utf-8")
    hidden = "+".join(f"eq(n,{n})" for n in card.clean)
    shown = {"enable": f"not({hidden})"} if hidden else {}
    label = {"fontfile": str(card.font), "expansion": "none", "fontsize": small, **shown}
    boxed = {"box": 1, "boxcolor": "black@0.4", "boxborderw": small // 3}
    band_top = top + high - band
    # The band is a translucent colour overlaid, not drawbox: drawbox blends pixel by pixel in
    # C (half of an animatic's CPU time, and it darkens the chroma of yuv420p four times
    # over), overlay blends a row at a time.
    shade = ffmpeg.input(f"color=c=black@0.5:s={wide}x{band}:r={card.fps or 25}", f="lavfi")
    shade = shade.filter("format", "yuva420p")
    return (
        video.overlay(shade, x=left, y=band_top, eof_action="pass", **shown)
        .drawtext(
            **{**label, "fontsize": big},
            textfile=str(title_file),
            fontcolor="white",
            x=left + margin,
            y=band_top + big // 2,
        )
        .drawtext(
            **{**label, "fontfile": str(card.prompt_font)},
            textfile=str(prompt_file),
            fontcolor="white@0.9",
            line_spacing=small // 3,
            x=left + margin,
            y=band_top + big * 2,
        )
        .drawtext(
            **label,
            **boxed,
            text="PREVIEW",
            fontcolor="white@0.8",
            x=left + margin,
            y=top + margin // 2,
        )
        .drawtext(
            **label,
            **boxed,
            timecode="00:00:00:00",
            rate=card.fps or 25,
            fontcolor="white",
            x=f"{left + wide - margin}-tw",
            y=top + margin // 2,
        )
    )


def _advance(text: str) -> float:
    """About how wide a character of `text` is, in font sizes: CJK characters are square."""
    wide = sum(1 for c in text if unicodedata.east_asian_width(c) in "WF")
    return 0.58 + 0.42 * wide / max(len(text), 1)


def wrap(prompt: str, room: int, size: int, lines: int) -> str:
    """The prompt in lines that fit `room` pixels at `size`, at most `lines` of them (the
    last cut with an ellipsis)."""
    text = prompt or "(no prompt: image only)"
    columns = max(int(room / (size * _advance(text))), 8)
    wrapped = textwrap.wrap(text, columns) or [text]
    if len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 1], wrapped[lines - 1][: columns - 1] + "…"]
    return "\n".join(wrapped)


def _encoding(fps: int) -> dict[str, Any]:
    """How every preview video is encoded: fast, small, a keyframe each 2 s, in MP4 with
    the time scale real clips have (the join copies streams of clips alike)."""
    return {
        "vcodec": "libx264",
        "preset": "ultrafast",
        "crf": 30,
        "pix_fmt": "yuv420p",
        "r": fps,
        "g": fps * 2,
        "movflags": "+faststart",
        "video_track_timescale": fps * 512,
        "f": "mp4",
    }


def sound_command(shot: Voice | Music, output: Path) -> list[str]:
    """A voice as a murmur of its estimated length (a tone that rises and falls four times a
    second, as syllables do); music as a quiet two-note bed. AAC in MP4, as clips are."""
    seconds = round(max(shot.duration, 0.5), 3)
    match shot:
        case Music():
            low = ffmpeg.input(f"sine=frequency=110:duration={seconds}", f="lavfi").audio
            high = ffmpeg.input(f"sine=frequency=165:duration={seconds}", f="lavfi").audio
            sound = ffmpeg.filter([low, high], "amix", inputs=2).filter("volume", 0.3)
        case Voice():
            sound = (
                ffmpeg.input(f"sine=frequency=190:duration={seconds}", f="lavfi")
                .audio.filter("tremolo", f=4, d=0.9)
                .filter("volume", 0.8)
            )
        case _:
            assert_never(shot)
    stream = ffmpeg.output(
        sound, str(output), acodec="aac", ar=48000, ac=2, movflags="+faststart", f="mp4"
    )
    return stream.get_args(overwrite_output=True)


def edit_command(shot: Node, output: Path, font: Path) -> list[str]:
    """An upscale as a scale of its clip; a lip-sync as its clip marked, with the voice as
    its sound (cut where the clip ends)."""
    clip = ffmpeg.input(str(shot.images[0]))
    fps = shot.fps or 25
    video = clip.video.filter("scale", shot.width, shot.height).filter("setsar", 1)
    streams = [video]
    if isinstance(shot, LipSync):
        size = max(shot.height // 24, 10)
        video = video.drawtext(
            fontfile=str(font),
            text="LIP-SYNC",
            expansion="none",
            fontcolor="white",
            fontsize=size,
            x=f"w-tw-{size}",
            y=f"h-th-{size}",
            box=1,
            boxcolor="0xd04040@0.8",
            boxborderw=size // 3,
        )
        voice = ffmpeg.input(str(shot.images[1])).audio
        length = round(float(shot.duration), 6)
        sound = voice.filter("apad", whole_dur=length).filter("atrim", duration=length)
        streams = [video, sound]
    audio = {"acodec": "aac", "ar": 48000, "ac": 2} if len(streams) > 1 else {"an": None}
    stream = ffmpeg.output(
        *streams,
        str(output),
        **_encoding(fps),
        **{"frames:v": round(shot.duration * fps)},  # `frames` would count audio frames too
        **audio,
    )
    return stream.get_args(overwrite_output=True)


def time_limit(card: Animatic) -> float:
    """Seconds an animatic may take to draw: far more than the second it takes, so that only
    an ffmpeg that hangs is stopped."""
    return 60.0 + 10.0 * card.duration


def draw(card: Animatic, output: Path) -> media.ClipInfo:
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
        shot = job.shot
        match shot:
            case Clip() | Still() | Card():
                return await self._drawn(job)
            case Voice() | Music():
                args = sound_command(shot, job.output)
            case Upscale() | LipSync():
                args = edit_command(shot, job.output, BUNDLED)
            case _:
                assert_never(shot)
        return await self._made_of(job, args)

    async def _drawn(self, job: RenderJob) -> RenderResult:
        """A clip or still: an animatic card of its words."""
        card = await asyncio.to_thread(card_for, job, self.fonts)
        with tempfile.TemporaryDirectory(prefix="storyboard-card-") as workdir:
            args = command(card, job.output, Path(workdir))
            try:
                await media.run_ffmpeg_async(args, "draw the preview", time_limit(card))
            except MediaError as exc:
                raise RenderError(f"shot '{job.shot.label}': {exc.message}") from None
        asked = (card.width, card.height, card.duration)
        job.phase(CHECKING)
        info, frames = await asyncio.to_thread(
            media.check_render, job.output, card.output, job.frames, asked
        )
        return RenderResult(path=job.output, info=info, seed=None, cost=0.0, frames=frames)

    async def _made_of(self, job: RenderJob, args: list[str]) -> RenderResult:
        """A voice, music, upscale or lip-sync: made from its inputs in one ffmpeg run."""
        shot = job.shot
        limit = 60.0 + 10.0 * shot.duration
        try:
            await media.run_ffmpeg_async(args, f"make the preview {shot.kind}", limit)
        except MediaError as exc:
            raise RenderError(f"shot '{shot.label}': {exc.message}") from None
        asked = None if shot.sound else (shot.width, shot.height, shot.duration)
        job.phase(CHECKING)
        info, frames = await asyncio.to_thread(
            media.check_render, job.output, shot.output, job.frames, asked
        )
        return RenderResult(path=job.output, info=info, seed=None, cost=0.0, frames=frames)

    async def aclose(self) -> None:
        return None
