"""Animatics a person can read: measured on the pixels of real preview clips."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from pipeline.render.preview import Animatic, draw
from tests.conftest import write

CHAIN = """\
version: 1
name: chain
defaults: {model: acme:1@1, width: 640, height: 360, duration: 6}
matrix: {lang: [en, ja]}
shots:
  - {id: door, prompt: a red door opens onto a long corridor of mirrors}
  - id: hall
    prompt: "the corridor in {{ lang }}"
    first_frame: {shot: door, frame: last}
sequences:
  - id: walk
    shots: [door, hall]
    preset: ultrafast
    formats: ["16:9", "9:16"]
"""


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def ink(frame: np.ndarray) -> np.ndarray:
    """Where the labels' white letters are."""
    return np.all(frame > 200, axis=2)


def clips(project: Path) -> dict[str, Path]:
    """Each render's clip in the cache, by shot label (and variant)."""
    import json

    lock = json.loads((project / "specs" / "chain.preview.lock").read_text())
    root = project / ".storyboard" / "clips"
    found = {}
    for key, entry in lock["shots"].items():
        variants = entry["variants"]
        name = entry["shot"] + (f"[{variants[0]}]" if len(variants) == 1 else "")
        found[name] = next(root.rglob(f"{key}*.mp4"))
    return found


def test_a_shot_starts_from_a_clean_frame_and_labels_stay_where_every_format_keeps(
    project: Path, cli
) -> None:
    spec = write(project / "specs" / "chain.yaml", CHAIN)
    result = cli("build", spec, "--preview", "-v")
    assert result.code == 0, result.err
    made = clips(project)
    door = frames(made["door"])
    assert ink(door[75]).sum() > 200  # labelled while it plays...
    assert ink(door[-1]).sum() == 0  # ...but not on the frame the hall starts from
    for name in ("hall[en]", "hall[ja]"):
        hall = frames(made[name])
        assert ink(hall[0]).sum() == 0  # no label of the door baked in
        assert ink(hall[75]).sum() > 200
    # The 9:16 film keeps the middle 32% of each 16:9 clip: every label is inside it.
    columns = np.nonzero(ink(door[75]).any(axis=0))[0]
    assert columns.min() >= 0.34 * 640 - 1 and columns.max() <= 0.66 * 640 + 1


def test_a_render_shared_by_variants_is_labelled_as_shared() -> None:
    from types import SimpleNamespace

    from pipeline.render.preview import card_for
    from tests.conftest import a_shot

    shot = a_shot("ef" * 32, label="door", variant="en")
    shared = card_for(SimpleNamespace(shot=shot, variants=("en", "ja"), frames=()))
    assert shared.title == "door  ·  shared by 2 variants  ·  take 1/1"
    alone = card_for(SimpleNamespace(shot=shot, variants=("en",), frames=(2.5,)))
    assert alone.title == "door  ·  en  ·  take 1/1"
    assert alone.clean == (0, 62, 149)  # first, the frame on screen at 2.5 s, last


def test_the_prompt_is_wrapped_inside_the_frame_at_1080p(tmp_path: Path) -> None:
    prompt = " ".join(["a very long prompt about a lighthouse keeper and the sea"] * 6)
    card = Animatic(1920, 1080, 1.0, 25, "keeper  ·  take 1/1", prompt, "cd" * 32, clean=(0, 24))
    draw(card, tmp_path / "wide.mp4")
    middle = frames(tmp_path / "wide.mp4")[12]
    columns = np.nonzero(ink(middle).any(axis=0))[0]
    assert columns.max() < 1920 - 40  # nothing runs off the right edge
    assert columns.min() > 40
