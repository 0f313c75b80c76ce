"""Content keys: stable across formatting, changed by what is sent, pinned for the examples."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import spec as spec_module
from pipeline.expand import expand
from tests.conftest import REPO, write

# Changing one of these invalidates every user's cache: only ever on purpose.
# Per example: the first shot, its full key, and a digest of every key in order.
PINNED = {
    "ballroom": (
        "establishing",
        "47c1d470bf89ed0d3d140e10b26851ad0bbc7693f580f2aa136b477ccb409732",
        "827039089e2303ff",
    ),
    "luthier": (
        "bench",
        "a597459c099000499057a8531270ece90c37b0875eb33df1180749f4e5d87b48",
        "392d1eda8fe90cb3",
    ),
    "airship": (
        "approach",
        "a18deeb3c901ff6f25dcd8e0ef006f31e39b8aded5ff0c1b480745839c9b1b69",
        "0b9b4ada1ca665d9",
    ),
    "arcade": (
        "release",
        "6359f4ca5ad7441632ba4c542fd42ad0a0f7a2252b0e0adecf38b37ffe60d4bc",
        "f1ef9e2916f0c968",
    ),
}


def keys_of(path: Path, renderer: str = "runware") -> list[str]:
    return [s.key for s in expand(spec_module.load(path), renderer).shots]


def test_bundled_example_keys_are_pinned() -> None:
    for name, (label, first_key, digest) in PINNED.items():
        shots = expand(spec_module.load(REPO / "specs" / f"{name}.yaml"), "runware").shots
        assert (shots[0].label, shots[0].key) == (label, first_key), name
        all_keys = ",".join(s.key for s in shots).encode()
        assert hashlib.sha256(all_keys).hexdigest()[:16] == digest, name


def test_renderer_is_part_of_the_key() -> None:
    path = REPO / "specs" / "ballroom.yaml"
    assert set(keys_of(path, "preview")).isdisjoint(keys_of(path, "runware"))


def _reordered(data: object, rng: random.Random) -> object:
    if isinstance(data, dict):
        items = list(data.items())
        rng.shuffle(items)
        return {k: _reordered(v, rng) for k, v in items}
    if isinstance(data, list):
        return [_reordered(v, rng) for v in data]
    return data


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), flow=st.booleans(), indent=st.integers(2, 6))
def test_key_order_and_formatting_never_change_keys(
    project: Path, seed: int, flow: bool, indent: int
) -> None:
    for name in ("ballroom", "airship", "arcade", "luthier"):
        original = project / "specs" / f"{name}.yaml"
        data = yaml.safe_load(original.read_text())
        shuffled = _reordered(data, random.Random(seed))
        text = (
            json.dumps(shuffled, indent=indent)
            if flow
            else yaml.safe_dump(shuffled, sort_keys=False, indent=indent, width=60)
        )
        copy = write(project / "specs" / f"{name}-copy.yaml", text)
        assert keys_of(copy) == keys_of(original)


def test_template_edit_that_keeps_the_prompt_keeps_the_keys(project: Path) -> None:
    path = project / "specs" / "ballroom.yaml"
    before = keys_of(path)
    template = project / "templates" / "ballroom" / "keys.j2"
    template.write_text("{# reworded comment #}\n\n" + template.read_text().replace(" ", "   "))
    assert keys_of(path) == before
    template.write_text(template.read_text().replace("silver", "golden"))
    after = keys_of(path)
    changed = {i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b}
    shots = expand(spec_module.load(path), "runware").shots
    assert {shots[i].shot_id for i in changed} == {"keys"}
    assert len(changed) == 2  # one per light


def test_identical_requests_share_a_key(project: Path) -> None:
    path = write(
        project / "specs" / "t.yaml",
        "version: 1\nname: t\nmatrix:\n  mood: [calm, wild]\n"
        "shots:\n  - id: a\n    prompt: 'same for every mood'\n",
    )
    shots = expand(spec_module.load(path), "runware").shots
    assert len(shots) == 2 and shots[0].key == shots[1].key


def test_image_bytes_not_path_are_hashed(project: Path) -> None:
    path = project / "specs" / "luthier.yaml"
    before = keys_of(path)
    assets = project / "specs" / "assets"
    (assets / "renamed.jpg").write_bytes((assets / "luthier.jpg").read_bytes())
    path.write_text(path.read_text().replace("assets/luthier.jpg", "assets/renamed.jpg"))
    assert keys_of(path) == before
    (assets / "renamed.jpg").write_bytes((assets / "raincoat.jpg").read_bytes())
    assert keys_of(path) != before
