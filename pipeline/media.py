"""ffmpeg discovery, probing and validation of clips (PyAV), thumbnails."""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.errors import MediaError

FFMPEG_ENV = "STORYBOARD_FFMPEG"
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_TOP_PAD = -2


@functools.cache
def ffmpeg_binary() -> str:
    """STORYBOARD_FFMPEG, else ffmpeg on PATH, else the binary imageio-ffmpeg ships."""
    chosen = os.environ.get(FFMPEG_ENV)
    if chosen:
        if not (shutil.which(chosen) or Path(chosen).is_file()):
            raise MediaError(f"{FFMPEG_ENV}={chosen} is not an executable")
        return chosen
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise MediaError(
            "no ffmpeg found", "install ffmpeg, or `pip install imageio-ffmpeg`"
        ) from exc


def keep_freed_memory() -> None:
    """Ask glibc to keep freed heap memory for reuse instead of returning it at once.

    By default glibc hands the top of the heap back to the kernel whenever 128 KB there is
    free, so reading 40 KB video packets one after another faults every page of every
    packet in again: a third of a stream-copy join. A setting of the whole process, made
    once by its entry point; nothing happens off glibc.
    """
    if sys.platform != "linux":
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_TRIM_THRESHOLD, 64 << 20)
    mallopt(M_TOP_PAD, 16 << 20)


@dataclass(frozen=True)
class ClipInfo:
    duration: float
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str
    time_base: str
    audio: str  # "codec/rate/layout" of the first audio stream, "" when silent
    frames: int = 0
    # Packets of the video and first audio stream as the container declares them; 0: unknown.
    packets: int = 0

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    def joinable_with(self, other: ClipInfo) -> bool:
        """Whether two clips can be joined by stream copy (same codec parameters)."""
        return (
            self.codec,
            self.width,
            self.height,
            self.fps,
            self.pix_fmt,
            self.time_base,
            self.audio,
        ) == (
            other.codec,
            other.width,
            other.height,
            other.fps,
            other.pix_fmt,
            other.time_base,
            other.audio,
        )


def probe(path: Path) -> ClipInfo:
    """Stream parameters from the container, without decoding."""
    import av

    try:
        with av.open(str(path)) as container:
            return _info(container, frames=0, decoded_duration=None)
    except (av.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise MediaError(f"{path.name}: not a readable video ({_reason(exc)})") from None


def validate(
    path: Path,
    width: int | None = None,
    height: int | None = None,
    duration: float | None = None,
    decode_all: bool = True,
) -> ClipInfo:
    """Check a clip: size exactly, duration within one frame, and that it decodes.

    `decode_all=False` decodes the first frame and takes the length from the container: for
    files this tool just wrote itself from clips that were each fully decoded when they
    entered the cache (a stream-copied or re-encoded sequence).
    """
    import av

    try:
        # skip_frame=all while opening: the probe decodes no frames of its own (a 1080p clip
        # pays 15 ms for that); the decoder below decodes all of them, or the first.
        with av.open(str(path), options={"skip_frame": "all"}) as container:
            stream = container.streams.video[0]
            # One thread per clip: clips are checked many at a time, and threads within one
            # decode cost more CPU than they save here.
            stream.codec_context.thread_count = 1
            # Fail on damaged data instead of concealing it, as players would. Damage shows
            # where the bitstream is parsed; the deblocking filter finds none, and skipping it
            # saves a fifth of the time on a real render.
            stream.codec_context.options = {"err_detect": "explode", "skip_loop_filter": "all"}
            frames, end = (
                _decode(container, stream) if decode_all else _first_frame(container, stream)
            )
            info = _info(container, frames=frames, decoded_duration=end)
    except (av.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise MediaError(f"{path.name}: does not decode ({_reason(exc)})") from None
    if frames == 0:
        raise MediaError(f"{path.name}: has no video frames")
    if width is not None and (info.width, info.height) != (width, height):
        raise MediaError(
            f"{path.name}: is {info.width}x{info.height}, {width}x{height} was asked for"
        )
    if duration is not None and abs(info.duration - duration) > 1.0 / info.fps + 1e-3:
        raise MediaError(f"{path.name}: lasts {info.duration:.3f} s, {duration:g} s was asked for")
    return info


def _decode(container: Any, stream: Any) -> tuple[int, float]:
    """Decode every frame: the number of frames and where the last one ends (seconds)."""
    frames = 0
    end = 0.0
    frame_time = 1.0 / float(stream.average_rate or 25)
    for frame in container.decode(stream):
        frames += 1
        if frame.time is not None:
            end = max(end, frame.time + frame_time)
    return frames, end


def _first_frame(container: Any, stream: Any) -> tuple[int, float | None]:
    """Decode the first frame only; the frame count and length come from the container."""
    for _ in container.decode(stream):
        break
    else:
        raise ValueError("the first frame does not decode")
    return int(stream.frames or 1), None


def _info(container: object, frames: int, decoded_duration: float | None) -> ClipInfo:
    streams = container.streams  # type: ignore[attr-defined]
    stream = streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    if decoded_duration is not None:
        seconds = decoded_duration
    elif stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    else:
        seconds = (container.duration or 0) / 1_000_000  # type: ignore[attr-defined]
    return ClipInfo(
        duration=round(seconds, 6),
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        fps=float(rate),
        codec=stream.codec_context.name,
        pix_fmt=str(stream.codec_context.pix_fmt),
        time_base=str(stream.time_base),
        audio=_audio_signature(streams.audio[0]) if streams.audio else "",
        frames=frames,
        packets=_declared_packets(film_streams(container)),
    )


def film_streams(container: Any) -> list[Any]:
    """The streams a clip brings to a film: its video and its first audio stream, if any."""
    return [container.streams.video[0], *container.streams.audio[:1]]


def _declared_packets(streams: list[Any]) -> int:
    counts = [s.frames for s in streams]
    return 0 if min(counts) <= 0 else sum(counts)


def _audio_signature(stream: Any) -> str:
    context = stream.codec_context
    return f"{context.name}/{context.sample_rate}/{context.layout.name}"


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def run_ffmpeg(args: list[str], what: str) -> None:
    """Run ffmpeg to completion; its last error lines become a MediaError."""
    command = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        detail = " / ".join(lines[-3:]) or f"exit code {result.returncode}"
        raise MediaError(f"ffmpeg failed to {what}: {detail}")


def thumbnail(clip: Path, output: Path, at: float, width: int = 320) -> Path:
    """A JPEG frame of `clip` at `at` seconds, `width` pixels wide."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temp = output.with_name(f".{output.stem}.{os.getpid()}{output.suffix}")
    run_ffmpeg(
        [
            "-ss",
            f"{at:.3f}",
            "-i",
            str(clip),
            "-frames:v",
            "1",
            "-vf",
            f"scale={width}:-2",
            "-q:v",
            "4",
            str(temp),
        ],
        f"grab a thumbnail of {clip.name}",
    )
    os.replace(temp, output)
    return output
