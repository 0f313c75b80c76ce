"""Two revisions of a storyboard, planned side by side: what a change adds, removes and
changes (with the reasons of state.py), which films it touches, and what it costs.

A revision is read from git into a temporary folder (`git archive` of the project), never
into the work tree; both sides are planned against the same cache.
"""

from __future__ import annotations

import contextlib
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline import plan
from pipeline.cache import resolve_root
from pipeline.errors import UserError
from pipeline.nodes import Film, Node
from pipeline.project import MARKERS, project_root
from pipeline.settings import Target
from pipeline.state import film_changes, request_changes

WORK_TREE = "work tree"


@dataclass(frozen=True)
class ShotChange:
    kind: str  # "added", "removed" or "changed"
    label: str
    take: int
    variants: tuple[str, ...]
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class SequenceChange:
    kind: str
    name: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Side:
    name: str
    cost: float  # every render of this revision
    renders: int


@dataclass(frozen=True)
class Comparison:
    old: Side
    new: Side
    shots: list[ShotChange] = field(default_factory=list)
    sequences: list[SequenceChange] = field(default_factory=list)
    added_renders: int = 0  # renders the new side has and the old one had not
    added_cost: float = 0.0
    to_pay: float = 0.0  # of those, what the cache does not hold yet
    unpriced: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old.__dict__,
            "new": self.new.__dict__,
            "shots": [c.__dict__ for c in self.shots],
            "sequences": [c.__dict__ for c in self.sequences],
            "added_renders": self.added_renders,
            "added_cost": self.added_cost,
            "to_pay": self.to_pay,
            "unpriced": self.unpriced,
        }


def compare(
    target: Target, old_rev: str, new_rev: str | None, note: Callable[[str], None]
) -> Comparison:
    """`old_rev` against `new_rev` (None: the work tree) of the storyboard `target` names."""
    spec = target.spec
    cache = str(resolve_root(spec, target.cache_override))
    with _at(spec, old_rev) as old_spec, _at(spec, new_rev) as new_spec:
        old = plan.load(replace(target, spec=old_spec, cache_dir=cache), note)
        new = plan.load(replace(target, spec=new_spec, cache_dir=cache), note)
        try:
            return _compare(old, new, old_rev, new_rev or WORK_TREE)
        finally:
            old.cache.close()
            new.cache.close()


def _compare(old: plan.Loaded, new: plan.Loaded, old_name: str, new_name: str) -> Comparison:
    before = _by_identity(old.plan.graph.variant_shots())
    after = _by_identity(new.plan.graph.variant_shots())
    # A render both sides have under another variant name (a renamed matrix value that the
    # shot does not use) is no change.
    old_renders = {(s.label, s.take, s.key) for s in before.values()}
    new_renders = {(s.label, s.take, s.key) for s in after.values()}
    reasons: tuple[str, ...]
    changes: dict[tuple[str, str, int, tuple[str, ...]], list[str]] = {}
    for identity in before.keys() | after.keys():
        label, take, variant = identity
        was, now = before.get(identity), after.get(identity)
        if was is None and now is not None:
            if (label, take, now.key) in old_renders:
                continue
            kind, reasons = "added", ()
        elif now is None and was is not None:
            if (label, take, was.key) in new_renders:
                continue
            kind, reasons = "removed", ()
        elif was is None or now is None:
            continue
        elif was.key != now.key:
            kind, reasons = "changed", tuple(request_changes(was.request, now.request))
        else:
            continue
        changes.setdefault((kind, label, take, reasons), []).append(variant)
    shots = [
        ShotChange(kind, label, take, tuple(sorted(v for v in variants if v)), reasons)
        for (kind, label, take, reasons), variants in sorted(changes.items())
    ]
    old_keys = {row.shot.key for row in old.plan.rows}
    added = [row for row in new.plan.rows if row.shot.key not in old_keys]
    return Comparison(
        old=Side(old_name, old.plan.cost_total, len(old.plan.rows)),
        new=Side(new_name, new.plan.cost_total, len(new.plan.rows)),
        shots=shots,
        sequences=_sequence_changes(old.plan.films, new.plan.films),
        added_renders=len(added),
        added_cost=round(sum(row.price or 0.0 for row in added), 2),
        to_pay=round(sum(row.estimate or 0.0 for row in added), 2),
        unpriced=sum(1 for row in added if row.price is None),
    )


def _by_identity(shots: list[Node]) -> dict[tuple[str, int, str], Node]:
    return {(shot.label, shot.take, shot.variant): shot for shot in shots}


def _sequence_changes(old: tuple[Film, ...], new: tuple[Film, ...]) -> list[SequenceChange]:
    before = {s.name: s for s in old}
    after = {s.name: s for s in new}
    found = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None:
            found.append(SequenceChange("added", name))
        elif now is None:
            found.append(SequenceChange("removed", name))
        elif was.key != now.key:
            reasons = film_changes(was.recipe.data(), now)
            found.append(SequenceChange("changed", name, tuple(reasons)))
    return found


@contextlib.contextmanager
def _at(spec: Path, rev: str | None) -> Iterator[Path]:
    """The storyboard as it is at `rev` (None: as it is on disk): its project exported from
    git into a temporary folder, which is a project of its own."""
    if rev is None:
        yield spec
        return
    if rev.startswith("-"):
        raise UserError(f"'{rev}' is not a git revision")
    if not hasattr(tarfile, "data_filter"):
        raise UserError("diff needs Python 3.11.4 or newer (tarfile's data filter)")
    root = project_root(spec)
    top = Path(_git(["rev-parse", "--show-toplevel"], root).decode().strip())
    inside = root.relative_to(top)
    with tempfile.TemporaryDirectory(prefix="storyboard-diff-") as temp:
        tar = Path(temp) / "project.tar"
        _git(["archive", "--format=tar", "-o", str(tar), rev, "--", str(inside)], top)
        with tarfile.open(tar) as archive:
            archive.extractall(Path(temp) / "tree", filter="data")  # nothing lands outside
        tar.unlink()
        copy = Path(temp) / "tree" / inside
        (copy / MARKERS[0]).mkdir(parents=True, exist_ok=True)
        old_spec = copy / spec.resolve().relative_to(root)
        if not old_spec.is_file():
            raise UserError(f"{spec} is not in revision {rev}")
        yield old_spec


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except OSError as exc:
        raise UserError(f"git cannot be run ({exc.strerror})", "install git") from None
    if result.returncode != 0:
        problem = result.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(
            f"git {args[0]}: {problem[-1] if problem else f'exit code {result.returncode}'}",
            "diff compares git revisions of a storyboard in a git repository",
        )
    return result.stdout
