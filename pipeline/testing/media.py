"""Clips and images for the local Runware server, made and read without storyboard's code.

The server is an imitation of the provider: it must not share a line with the client it
tests, so it finds ffmpeg and reads image sizes on its own.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

FPS = 25
TINTS = (
    "0x2a4d69",
    "0x4d692a",
    "0x692a4d",
    "0x2a694d",
    "0x694d2a",
    "0x4d2a69",
    "0x3c3c3c",
    "0x69692a",
)
# Seeds are 1 to SEEDS - 1, and drawn in binary along the bottom of a picture: a band of
# SEED_BITS cells, light for a 1, the lowest bit at the left. Another seed, other pixels;
# and a test can read the seed back.
SEED_BITS = 31
SEEDS = 1 << SEED_BITS
SEED_BAND = 8  # the band is the bottom 1/8 of the picture


def seed_boxes(seed: int, enable: str = "") -> str:
    """ffmpeg filters drawing `seed` in the band (`enable`: from which frame on)."""
    band = f"y=ih-ih/{SEED_BAND}:h=ih/{SEED_BAND}"
    boxes = [f"drawbox=x=0:{band}:w=iw:color=0x101010:t=fill{enable}"]
    for bit in range(SEED_BITS):
        if seed >> bit & 1:
            left = f"x=iw*{bit}/{SEED_BITS}:w=iw/{SEED_BITS}+1"
            boxes.append(f"drawbox={left}:{band}:color=0xf0f0f0:t=fill{enable}")
    return ",".join(boxes)


def seed_band(seed: int, width: int, height: int) -> tuple[str, str, int]:
    """The seed's band as `seed_boxes` draws it, as a picture of its own: an input for ffmpeg,
    the filters that draw it once and repeat it (drawbox is slow: not again on every frame),
    and the row it is overlaid at. It starts at an even row (where overlay puts it in
    yuv420p), one row higher than `seed_boxes` when that is odd, and reaches the bottom."""
    top = int(height - height / SEED_BAND) & ~1
    rows = height - top
    cells = [
        f"drawbox=x=iw*{bit}/{SEED_BITS}:w=iw/{SEED_BITS}+1:y=0:h=ih:color=0xf0f0f0:t=fill"
        for bit in range(SEED_BITS)
        if seed >> bit & 1
    ]
    drawn = ",".join([*cells, "loop=loop=-1:size=1"])
    return f"color=c=0x101010:s={width}x{rows}:r={FPS}", drawn, top


def read_seed(pixels: Sequence[Sequence[Sequence[int]]]) -> int:
    """The seed drawn on a picture (rows of RGB pixels), read at the middle of each cell."""
    height, width = len(pixels), len(pixels[0])
    row = pixels[height - height // (2 * SEED_BAND)]
    seed = 0
    for bit in range(SEED_BITS):
        red, green, blue = row[int((bit + 0.5) * width / SEED_BITS)][:3]
        if int(red) + int(green) + int(blue) > 3 * 128:
            seed |= 1 << bit
    return seed


def ffmpeg_binary() -> str:
    """ffmpeg on PATH, else the binary imageio-ffmpeg ships."""
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


LOOKS = ("black", "frozen", "flashing")  # broken pictures a clip can be painted with
# Each look's picture, drawn over the clip's: black; the square held still on the slate; the
# whole frame black and white by turns, two frames each (six flashes a second at 25 fps).
# Every pixel set to video black (white) by a table: what a filled drawbox of the whole frame
# draws, without drawbox's pixel-by-pixel loop.
BLACKED = "lutyuv=y=16:u=128:v=128"
LOOK_FILTERS = {
    "black": BLACKED,
    "frozen": "",
    "flashing": BLACKED + ",lutyuv=y=235:u=128:v=128:enable='lt(mod(n,4),2)'",
}


def paint(
    path: Path,
    width: int,
    height: int,
    frames: int,
    noise: int = 0,
    first: Path | None = None,
    sound: bool = False,
    tint: int = 0,
    seed: int = 0,
    look: str = "",
) -> Path:
    """An H.264 MP4 of exactly `frames` frames at 25 fps: a slate colour with a moving square
    (every frame differs). `noise` adds film grain, encoded as a real render would be, so that
    a clip weighs (and costs to decode) what a real one does. `first`: an image the clip
    starts from (its first frame is that image; the square moves over it after). `sound`: a
    440 Hz tone all along, as a model that makes sound delivers it. `tint`: one of TINTS
    background colours. `seed`: drawn along its bottom (see `seed_boxes`). `look`: one of
    LOOKS, a broken picture (grain left out: a frozen picture repeats its frame exactly)."""
    if look:
        first, noise = None, 0
    if first is None:
        colour = TINTS[tint % len(TINTS)]
        inputs = ["-f", "lavfi", "-i", f"color=c={colour}:s={width}x{height}:r={FPS}"]
        background, shown = "null", ""
    else:
        inputs = ["-i", str(first)]
        # Decoded and scaled once, then repeated: not decoded again for every frame.
        background = (
            f"scale={width}:{height},setsar=1,format=yuv420p,"
            f"loop=loop={frames}:size=1:start=0,setpts=N/{FPS}/TB"
        )
        shown = ":enable='gte(n,1)'"  # the first frame is the image itself
    inputs += ["-f", "lavfi", "-i", f"color=c=0xe0c070:s=96x96:r={FPS}"]
    band, drawn, top = seed_band(seed, width, height)
    inputs += ["-f", "lavfi", "-i", band]
    moving = "(W-w)/2" if look == "frozen" else "'mod(t*400,W-w)'"
    graph = f"[2:v]{drawn}[band];[0:v]{background}[bg];"
    graph += f"[bg][1:v]overlay=x={moving}:y=(H-h)/2:eval=frame{shown}[moved];"
    graph += f"[moved][band]overlay=x=0:y={top}{shown}"
    if LOOK_FILTERS.get(look):
        graph += "," + LOOK_FILTERS[look]
    outputs = ["-map", "[v]"]
    if sound:
        seconds = f"{frames / FPS:.3f}"
        inputs += ["-f", "lavfi", "-t", seconds, "-i", "sine=frequency=440:sample_rate=48000"]
        outputs += ["-map", "3:a", "-c:a", "aac"]
    encoder = ["-preset", "ultrafast"]
    if noise:
        graph += f",noise=alls={noise}:allf=t"
        # As a real render is encoded (CABAC, B-frames) and as heavy: 8 Mbit/s at 1080p.
        rate = f"{8 * width * height / (1920 * 1080):.2f}M"
        encoder = ["-preset", "veryfast", "-b:v", rate, "-maxrate", rate, "-bufsize", "16M"]
    graph += "[v]"
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    command = [
        ffmpeg_binary(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        *inputs,
        "-filter_complex",
        graph,
        *outputs,
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


def paint_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A PNG still: a warm colour with a square in its middle, and `seed` drawn along its
    bottom."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    square = "drawbox=x=iw/2-iw/8:y=ih/2-ih/8:w=iw/4:h=ih/4:c=0x3cb0a0:t=fill"
    command = [
        ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"color=c=0xb05a3c:s={width}x{height}",
        "-vf", f"{square},{seed_boxes(seed)}",
        "-frames:v", "1", str(temp),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    os.replace(temp, path)
    return path
