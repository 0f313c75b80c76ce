"""Two revisions of a storyboard, planned side by side: what a change adds, removes and
changes (with the reasons of state.py and each prompt's word diff), which films it touches,
and what it costs.

A revision is read from git into a temporary folder (`git archive` of the project), never
into the work tree; both sides are planned against the same cache. A storyboard that one
revision does not have is compared as empty there: all added, or all removed.
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
from pipeline.state import CONTEXT_WORDS, film_changes, request_changes

WORK_TREE = "work tree"
GAP = "…"  # words of a prompt left out of its diff: unchanged, away from any change
MAX_PROMPT_WORDS = 40  # of the prompt of a render added or removed, shown whole up to this

# A prompt's word diff: runs of words, each "same", "removed", "added" (or a gap).
Piece = tuple[str, str]


@dataclass(frozen=True)
class ShotChange:
    kind: str  # "added", "removed" or "changed"
    label: str
    take: int
    variants: tuple[str, ...]
    reasons: tuple[str, ...] = ()
    prompt_diff: tuple[Piece, ...] = ()  # its words (added: its prompt; removed: the old)
    others: tuple[str, ...] = ()  # what else changed in its request, in words
    renders: int = 0  # distinct renders it stands for (variants may share one)
    price: float | None = 0.0  # what they cost (removed: what they cost); None: unknown
    to_pay: float | None = 0.0  # of that, what no cache holds yet (removed: nothing)


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
    present: bool = True  # False: the storyboard is not in this revision


@dataclass(frozen=True)
class Comparison:
    old: Side
    new: Side
    shots: list[ShotChange] = field(default_factory=list)
    sequences: list[SequenceChange] = field(default_factory=list)
    added_renders: int = 0  # renders the new side has and the old one had not
    added_cost: float = 0.0
    to_pay: float = 0.0  # of those, what neither the cache nor the team cache holds yet
    unpriced: int = 0
    team_cache: bool = False  # whether the team cache was asked what it holds

    @property
    def changed(self) -> bool:
        """Whether the change touches any render or film."""
        return bool(self.shots or self.sequences)

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old.__dict__,
            "new": self.new.__dict__,
            "shots": [_shot_json(c) for c in self.shots],
            "sequences": [c.__dict__ for c in self.sequences],
            "added_renders": self.added_renders,
            "added_cost": self.added_cost,
            "to_pay": self.to_pay,
            "unpriced": self.unpriced,
            "team_cache": self.team_cache,
        }


def _shot_json(change: ShotChange) -> dict[str, Any]:
    shown = dict(change.__dict__)
    shown["prompt_diff"] = [list(piece) for piece in change.prompt_diff]
    return shown


def compare(
    target: Target, old_rev: str, new_rev: str | None, note: Callable[[str], None]
) -> Comparison:
    """`old_rev` against `new_rev` (None: the work tree) of the storyboard `target` names."""
    spec = target.spec
    cache = str(resolve_root(spec, target.cache_override))
    with _at(spec, old_rev) as old_spec, _at(spec, new_rev) as new_spec:
        if old_spec is None and new_spec is None:
            raise UserError(f"{spec} is in neither revision ({old_rev}, {new_rev or WORK_TREE})")
        old = _load(target, old_spec, cache, note)
        new = _load(target, new_spec, cache, note)
        try:
            return _compare(old, new, old_rev, new_rev or WORK_TREE)
        finally:
            for side in (old, new):
                if side is not None:
                    side.cache.close()


def _load(
    target: Target, spec: Path | None, cache: str, note: Callable[[str], None]
) -> plan.Loaded | None:
    return None if spec is None else plan.load(replace(target, spec=spec, cache_dir=cache), note)


Identity = tuple[str, int, str]  # a render's label, take and variant
Pair = tuple[Node | None, Node | None]  # a render in one variant: before, after
Grouped = dict[tuple[str, str, int, tuple[str, ...]], dict[str, Pair]]


def _compare(
    old: plan.Loaded | None, new: plan.Loaded | None, old_name: str, new_name: str
) -> Comparison:
    old_rows = old.plan.rows if old else ()
    new_rows = new.plan.rows if new else ()
    rows = {row.shot.key: row for row in new_rows}
    prices = {row.shot.key: row.price for row in (*old_rows, *new_rows)}
    grouped = _grouped(_by_identity(old), _by_identity(new))
    old_keys = {row.shot.key for row in old_rows}
    added = [row for row in new_rows if row.shot.key not in old_keys]
    return Comparison(
        old=_side(old, old_name),
        new=_side(new, new_name),
        shots=[_change(*found, pairs, prices, rows) for found, pairs in sorted(grouped.items())],
        sequences=_sequence_changes(old.plan.films if old else (), new.plan.films if new else ()),
        added_renders=len(added),
        added_cost=round(sum(row.price or 0.0 for row in added), 2),
        to_pay=round(sum(row.estimate or 0.0 for row in added), 2),
        unpriced=sum(1 for row in added if row.price is None),
        team_cache=new is not None and new.remote is not None and new.remote_problem is None,
    )


def _grouped(before: dict[Identity, Node], after: dict[Identity, Node]) -> Grouped:
    """Each render added, removed or changed, grouped by what changed: its variants."""
    # A render both sides have under another variant name (a renamed matrix value that the
    # shot does not use) is no change.
    old_renders = {(s.label, s.take, s.key) for s in before.values()}
    new_renders = {(s.label, s.take, s.key) for s in after.values()}
    changes: Grouped = {}
    reasons: tuple[str, ...]
    for identity in before.keys() | after.keys():
        label, take, variant = identity
        was, now = before.get(identity), after.get(identity)
        if now is not None and was is None and (label, take, now.key) not in old_renders:
            kind, reasons = "added", ()
        elif was is not None and now is None and (label, take, was.key) not in new_renders:
            kind, reasons = "removed", ()
        elif was is not None and now is not None and was.key != now.key:
            kind, reasons = "changed", tuple(request_changes(was.request, now.request))
        else:
            continue
        changes.setdefault((kind, label, take, reasons), {})[variant] = (was, now)
    return changes


def _side(loaded: plan.Loaded | None, name: str) -> Side:
    if loaded is None:
        return Side(name, 0.0, 0, present=False)
    return Side(name, loaded.plan.cost_total, len(loaded.plan.rows))


def _change(
    kind: str,
    label: str,
    take: int,
    reasons: tuple[str, ...],
    pairs: dict[str, Pair],
    prices: dict[str, float | None],
    rows: dict[str, plan.PlanRow],
) -> ShotChange:
    """A change of one render in some variants, priced by its distinct keys; its prompt
    as its first variant has it (the variants of a change differ by the same words)."""
    was, now = pairs[min(pairs)]
    if was is not None and now is not None:
        prompt, others = diff_words(was.prompt, now.prompt), _other_changes(was, now)
    else:
        first = now or was
        prompt, others = _words(first.prompt if first else "", "same"), ()
    shown = [before if kind == "removed" else after for before, after in pairs.values()]
    keys = {node.key for node in shown if node is not None}
    estimates = [] if kind == "removed" else [rows[key].estimate for key in keys if key in rows]
    return ShotChange(
        kind,
        label,
        take,
        tuple(sorted(v for v in pairs if v)),
        reasons,
        prompt,
        others,
        len(keys),
        _sum([prices.get(key) for key in keys]),
        _sum(estimates),
    )


def _sum(amounts: list[float | None]) -> float | None:
    """Dollars added up; None when any is unknown."""
    return None if None in amounts else round(sum(a or 0.0 for a in amounts), 2)


def _other_changes(was: Node, now: Node) -> tuple[str, ...]:
    """What changed in a render's request besides its prompt (wherever its kind sends the
    prompt: a clip's positivePrompt, a voice's speech text), in words."""
    as_if_same = _prompt_replaced(now.request, now.prompt, was.prompt)
    if as_if_same == was.request and was.image_hashes == now.image_hashes:
        return ()
    return tuple(request_changes(was.request, as_if_same))


def _prompt_replaced(value: Any, prompt: str, instead: str) -> Any:
    """A request with `instead` wherever it carries `prompt`."""
    if isinstance(value, dict):
        return {k: _prompt_replaced(v, prompt, instead) for k, v in value.items()}
    if isinstance(value, list):
        return [_prompt_replaced(v, prompt, instead) for v in value]
    return instead if value == prompt and isinstance(value, str) else value


def diff_words(old: str, new: str) -> tuple[Piece, ...]:
    """The words of `new` against `old`: runs of words the same, removed and added, with a
    few words of context around each change and a gap for the rest."""
    import difflib

    a, b = old.split(), new.split()
    opcodes = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    pieces: list[Piece] = []
    for index, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            pieces += _context(a[i1:i2], index == 0, index == len(opcodes) - 1)
            continue
        if i2 > i1:
            pieces.append(("removed", " ".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(("added", " ".join(b[j1:j2])))
    return tuple(pieces)


def _context(words: list[str], first: bool, last: bool) -> list[Piece]:
    """Unchanged words around a change: a few on each side of it, a gap for the rest."""
    if first and last:
        return list(_words(" ".join(words), "same"))
    keep = CONTEXT_WORDS
    if len(words) <= (keep if first or last else 2 * keep + 1):
        return [("same", " ".join(words))]
    head = [] if first else [("same", " ".join(words[:keep]))]
    tail = [] if last else [("same", " ".join(words[-keep:]))]
    return [*head, ("gap", GAP), *tail]


def _words(text: str, kind: str) -> tuple[Piece, ...]:
    """A prompt as one run of words (a long one cut short)."""
    words = text.split()
    if not words:
        return ()
    if len(words) > MAX_PROMPT_WORDS:
        return ((kind, " ".join(words[:MAX_PROMPT_WORDS])), ("gap", GAP))
    return ((kind, " ".join(words)),)


def _by_identity(loaded: plan.Loaded | None) -> dict[Identity, Node]:
    shots = loaded.plan.graph.variant_shots() if loaded else []
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
def _at(spec: Path, rev: str | None) -> Iterator[Path | None]:
    """The storyboard as it is at `rev` (None: as it is on disk): its project exported from
    git into a temporary folder, which is a project of its own; None when it is not there."""
    if rev is None:
        yield spec if spec.is_file() else None
        return
    if rev.startswith("-"):
        raise UserError(f"'{rev}' is not a git revision")
    if not hasattr(tarfile, "data_filter"):
        raise UserError("diff needs Python 3.11.4 or newer (tarfile's data filter)")
    root = project_root(spec)
    top = Path(_git(["rev-parse", "--show-toplevel"], root).decode().strip())
    inside = root.relative_to(top)
    if not _git(["ls-tree", "--name-only", rev, "--", str(inside)], top).strip():
        yield None  # the project is not in that revision yet
        return
    with tempfile.TemporaryDirectory(prefix="storyboard-diff-") as temp:
        tar = Path(temp) / "project.tar"
        _git(["archive", "--format=tar", "-o", str(tar), rev, "--", str(inside)], top)
        with tarfile.open(tar) as archive:
            archive.extractall(Path(temp) / "tree", filter="data")  # nothing lands outside
        tar.unlink()
        copy = Path(temp) / "tree" / inside
        (copy / MARKERS[0]).mkdir(parents=True, exist_ok=True)
        old_spec = copy / spec.resolve().relative_to(root)
        yield old_spec if old_spec.is_file() else None


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
