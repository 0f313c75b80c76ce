"""Storyboards in pull requests (issue 35): the Markdown and JSON diff, the contact sheet,
thumbnails made in process, and the GitHub Action's own script run on a real repository of
two commits (its comment written to a file: nothing leaves the machine)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from pipeline import media
from pipeline.thumbnails import thumbnail

# -- thumbnails ---------------------------------------------------------------------------


def _pixels(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)


def _colour_at_middle(path: Path) -> tuple[int, int, int]:
    picture = _pixels(path)
    r, g, b = picture[picture.shape[0] // 2, picture.shape[1] // 2]
    return int(r), int(g), int(b)


def _three_colours(folder: Path) -> Path:
    """6 s at 25 fps: red, green, blue, 2 s each; keyframes at 0 and 4 s (red and blue)."""
    clip = folder / "colours.mp4"
    media.run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=red:s=320x180:r=25:d=2",
         "-f", "lavfi", "-i", "color=c=green:s=320x180:r=25:d=2",
         "-f", "lavfi", "-i", "color=c=blue:s=320x180:r=25:d=2",
         "-filter_complex", "[0][1][2]concat=n=3:v=1[v]", "-map", "[v]",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "100", "-pix_fmt", "yuv420p",
         str(clip)],
        "make a clip of three colours",
    )  # fmt: skip
    return clip


def test_a_thumbnail_is_the_keyframe_before_its_moment_and_a_poster_the_exact_frame(
    tmp_path: Path,
) -> None:
    clip = _three_colours(tmp_path)
    first = thumbnail(clip, tmp_path / "first.jpg", at=3.0, width=160)
    exact = thumbnail(clip, tmp_path / "exact.jpg", at=3.0, width=160, exact=True)
    later = thumbnail(clip, tmp_path / "later.jpg", at=5.0, width=160)
    assert _pixels(first).shape == (90, 160, 3)
    red, green, blue = (_colour_at_middle(p) for p in (first, exact, later))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert green[1] > 100 and green[0] < 60 and green[2] < 60  # lavfi's green is 0x008000
    assert blue[2] > 200 and blue[0] < 60 and blue[1] < 60


def test_a_thumbnail_of_a_still_image(tmp_path: Path) -> None:
    image = tmp_path / "still.png"
    media.run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=red:s=640x360", "-frames:v", "1", str(image)],
        "draw a still",
    )
    made = thumbnail(image, tmp_path / "thumbs" / "still.jpg", at=0.0, width=320)
    assert _pixels(made).shape == (180, 320, 3)
    assert _colour_at_middle(made)[0] > 200
