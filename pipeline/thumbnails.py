"""Thumbnails of takes and posters of films, made in this process (PyAV): the video is opened,
sought and one frame decoded, scaled and encoded as a JPEG, with no ffmpeg process to start.

A take's thumbnail is its keyframe at or before the moment asked (the middle of the clip):
one frame is decoded. A render of 6 or 10 s usually holds a single keyframe, its first
frame, and the frame at its middle would cost every frame before it (75 at 25 fps): a
review of 3,000 takes would decode 225,000 frames instead of 3,000. A film's poster is
`exact`, the frame on screen at its moment (past a title card): a storyboard has few films.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

from pipeline.cache.files import create_partial
from pipeline.errors import MediaError

JPEG_QUALITY = 4  # as `ffmpeg -q:v 4`: 2 is the best, 31 the worst
FF_QP2LAMBDA = 118  # libavcodec's scale of a quantizer to a lambda (global_quality)


def thumbnail(video: Path, output: Path, at: float, width: int, exact: bool = False) -> Path:
    """A JPEG of `video` at `at` seconds (see `frame_at`), `width` pixels wide, written to
    `output` (a new file renamed over it: a link there is replaced, never written through)."""
    frame = frame_at(video, at, exact)
    height = even(frame.height * width / frame.width)
    data = jpeg(frame.reformat(width=width, height=height, format="yuvj420p"))
    output.parent.mkdir(parents=True, exist_ok=True)
    temp, fd = create_partial(output)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return output


def frame_at(video: Path, at: float, exact: bool = False) -> Any:
    """The keyframe of `video` at or before `at` seconds (one frame decoded); with `exact`,
    the frame on screen at `at` (decoded from that keyframe on). An image is its one frame."""
    import av

    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            # One thread each: thumbnails are made many at once, a thread per core.
            stream.codec_context.thread_count = 1
            base = stream.time_base
            start = float(stream.start_time * base) if stream.start_time and base else 0.0
            if at > 0 and base:
                # Backward (the default): to the keyframe at or before the moment.
                container.seek(int((start + at) / base), stream=stream)
            shown = None
            for frame in container.decode(stream):
                late = frame.time is not None and frame.time > start + at + 1e-6
                if shown is not None and late:
                    break
                shown = frame
                if not exact:
                    break
    except (av.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise MediaError(f"{video.name}: no frame could be taken ({exc})") from None
    if shown is None:
        raise MediaError(f"{video.name}: has no video frames")
    return shown


def fitted(frame: Any, width: int, height: int) -> Any:
    """`frame` scaled, keeping its shape, to fit a box of `width` x `height`, as RGB."""
    scale = min(width / frame.width, height / frame.height)
    return frame.reformat(
        width=even(frame.width * scale), height=even(frame.height * scale), format="rgb24"
    )


def jpeg(frame: Any) -> bytes:
    """A full-range YUV frame as JPEG."""
    import av

    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frame.width, frame.height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.qscale = True
    encoder.global_quality = JPEG_QUALITY * FF_QP2LAMBDA
    return b"".join(bytes(packet) for packet in [*encoder.encode(frame), *encoder.encode(None)])


def even(value: float) -> int:
    """The even number of pixels nearest `value` (4:2:0 pictures have even sides)."""
    return max(round(value / 2) * 2, 2)
