"""Clips and images for the local Runware server, made and read without storyboard's code.

The server is an imitation of the provider: it must not share a line with the client it
tests, so it finds ffmpeg and reads image sizes on its own.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

FPS = 25


def ffmpeg_binary() -> str:
    """ffmpeg on PATH, else the binary imageio-ffmpeg ships."""
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def paint(path: Path, width: int, height: int, frames: int, noise: int = 0) -> Path:
    """An H.264 MP4 of exactly `frames` frames at 25 fps: a slate colour with a moving square
    (every frame differs). `noise` adds film grain, encoded as a real render would be, so that
    a clip weighs (and costs to decode) what a real one does."""
    source = (
        f"color=c=0x2a4d69:s={width}x{height}:r={FPS},"
        f"drawbox=x='mod(t*400,iw-96)':y=ih/2-48:w=96:h=96:c=0xe0c070:t=fill"
    )
    encoder = ["-preset", "ultrafast"]
    if noise:
        source += f",noise=alls={noise}:allf=t"
        # As a real render is encoded (CABAC, B-frames) and as heavy: 8 Mbit/s at 1080p.
        rate = f"{8 * width * height / (1920 * 1080):.2f}M"
        encoder = ["-preset", "veryfast", "-b:v", rate, "-maxrate", rate, "-bufsize", "16M"]
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    command = [
        ffmpeg_binary(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        source,
        "-frames:v",
        str(frames),
        "-c:v",
        "libx264",
        *encoder,
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        str(temp),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    os.replace(temp, path)
    return path


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, JPEG or WebP image; None when it is not one."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            return stream.codec_context.width, stream.codec_context.height
    except (av.FFmpegError, IndexError, ValueError, OSError):
        return None
