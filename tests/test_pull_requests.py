"""Storyboards in pull requests (issue 35): the Markdown and JSON diff, the contact sheet,
thumbnails made in process, and the GitHub Action's own script run on a real repository of
two commits (its comment written to a file: nothing leaves the machine)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import av
import numpy as np

from pipeline import contact_sheet as sheet
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


# -- the diff as Markdown and JSON ------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout


def _committed_edit(project: Path, old: str, new: str) -> Path:
    """The bundled ballroom storyboard committed, then committed again with `old` -> `new`."""
    spec = project / "specs" / "ballroom.yaml"
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "first cut")
    spec.write_text(spec.read_text().replace(old, new))
    git(project, "commit", "-qam", "an edit")
    return spec


def _cells(row: str) -> list[str]:
    """A Markdown table row's cells (a pipe escaped with a backslash is not a border)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_the_markdown_diff_of_a_committed_edit_has_a_row_with_the_word_diff_and_price(
    project: Path, cli
) -> None:
    spec = _committed_edit(project, "A single white glove", "A single red glove")
    result = cli("diff", "HEAD~1", "HEAD", spec, "--format", "markdown")
    assert result.code == 0, result.err
    rows = [line for line in result.out.splitlines() if line.startswith("| changed |")]
    assert rows, result.out
    _, shot, _, prompt, price = _cells(rows[0])
    assert shot == "**glove**"
    assert "A single ~~white~~ **red** glove" in prompt
    assert re.fullmatch(r"\\\$0\.28", price)  # a dollar sign GitHub shows, not maths
    assert "| **still to pay** | | **\\$0.56** |" in result.out  # two takes, none cached
    assert "**teaser--golden-dusk** changed" in result.out

    data = json.loads(cli("diff", "HEAD~1", "HEAD", spec, "--format", "json").out)
    glove = next(c for c in data["shots"] if c["label"] == "glove" and c["take"] == 1)
    assert ["removed", "white"] in glove["prompt_diff"]
    assert ["added", "red"] in glove["prompt_diff"]
    assert glove["price"] == 0.28 and data["to_pay"] == 0.56
    people = cli("diff", "HEAD~1", "HEAD", spec).out  # the terminal's, as before
    assert "prompt changed: A single [-white-] {+red+} glove" in people


def test_nothing_a_prompt_says_becomes_markup_a_mention_or_html(project: Path, cli) -> None:
    hostile = "A single | <!-- storyboard --> @octocat *glove* [link](x) $1 $2"
    spec = _committed_edit(project, "A single white glove", hostile)
    out = cli("diff", "HEAD~1", "HEAD", spec, "--format", "markdown").out
    row = next(line for line in out.splitlines() if line.startswith("| changed |"))
    assert len(_cells(row)) == 5
    assert "<!--" not in out and "@octocat" not in out and "@\u200boctocat" in row
    assert "\\*glove\\*" in row and "\\[link\\](x)" in row and "\\$1 \\$2" in row


# -- the contact sheet ------------------------------------------------------------------------

GLOVE_TAKES = 2  # the glove of ballroom.yaml: shared by both lights, two takes


def _box(picture: np.ndarray, index: int) -> np.ndarray:
    """The pixels of the poster box of the sheet's `index`th render."""
    row, column = divmod(index, sheet.COLUMNS)
    left = sheet.GUTTER + column * (sheet.BOX_WIDTH + sheet.GUTTER)
    top = sheet.HEADER + row * (sheet.BOX_HEIGHT + sheet.CAPTION + sheet.GUTTER)
    return picture[top : top + sheet.BOX_HEIGHT, left : left + sheet.BOX_WIDTH]


def _framed(picture: np.ndarray, index: int) -> bool:
    """Whether the render's box is framed as one the change touches (orange)."""
    row, column = divmod(index, sheet.COLUMNS)
    left = sheet.GUTTER + column * (sheet.BOX_WIDTH + sheet.GUTTER)
    top = sheet.HEADER + row * (sheet.BOX_HEIGHT + sheet.CAPTION + sheet.GUTTER)
    return bool(np.abs(picture[top + 20, left - 2] - np.array(sheet.TOUCHED)).max() < 8)


def assert_sheet_shows_the_glove_first(png: Path) -> None:
    """A PNG at least 1,200 px wide; the glove's takes first, framed, each a real poster
    (many colours, not one); a render not built is an empty grey box."""
    picture = _pixels(png)
    assert picture.shape[1] >= 1200
    for index in range(GLOVE_TAKES):
        poster = _box(picture, index)
        assert _framed(picture, index)
        assert poster.std() > 10 and len(np.unique(poster.reshape(-1, 3), axis=0)) > 50
    empty = _box(picture, GLOVE_TAKES)  # not in the build of the glove alone
    assert not _framed(picture, GLOVE_TAKES)
    assert (empty == np.array(sheet.EMPTY)).all(axis=2).mean() > 0.95


def test_the_contact_sheet_puts_what_changed_first_with_real_posters(project: Path, cli) -> None:
    spec = _committed_edit(project, "A single white glove", "A single red glove")
    assert cli("build", spec, "--preview", "-q", "--only", "glove").code == 0
    png = project / "out" / "sheet.png"
    result = cli("review", spec, "--preview", "--contact-sheet", png, "--changed-from", "HEAD~1")
    assert result.code == 0, result.err
    assert result.out.strip() == str(png)
    assert_sheet_shows_the_glove_first(png)
    refused = cli("review", spec, "--changed-from", "HEAD~1")
    assert refused.code == 2 and "--contact-sheet" in refused.err
