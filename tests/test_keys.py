"""Paid render keys never change in a refactor: a changed key is a render paid for again.

Every render of every bundled storyboard and of storyboards that make every kind of request
the catalogue allows (tests/test_conformance.py) is keyed as recorded in
`tests/data/paid_keys.json`. Regenerate that file only for a change that means to re-render
(`python -m tests.test_keys > tests/data/paid_keys.json`), and say so in the README."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.expand import expand
from pipeline.spec import load
from tests.conftest import REPO

RECORDED = REPO / "tests" / "data" / "paid_keys.json"


def paid_keys() -> dict[str, dict[str, str]]:
    """By storyboard, each paid render's key, named by label, variant, take and kind."""
    from tests.test_conformance import every_request

    found: dict[str, dict[str, str]] = {}
    for path in sorted((REPO / "specs").glob("*.yaml")):
        renders = expand(load(path), "runware").shots
        found[path.name] = {
            f"{r.label}|{r.variant}|{r.take}|{r.kind}": r.key for r in renders if r.price != 0.0
        }
    found["every request"] = {
        f"{r.model}|{r.label}|{r.variant}|{r.take}|{r.kind}": r.key for r in every_request(Path())
    }
    return found


def test_no_paid_key_changes() -> None:
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    now = paid_keys()
    changed = {
        name: [label for label, key in keys.items() if now.get(name, {}).get(label) != key]
        for name, keys in recorded.items()
    }
    assert {name: labels for name, labels in changed.items() if labels} == {}
    assert sum(len(keys) for keys in now.values()) == sum(len(k) for k in recorded.values())


if __name__ == "__main__":
    json.dump(paid_keys(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
