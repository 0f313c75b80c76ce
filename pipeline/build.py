"""build = plan + render + assemble + lock: the steps in order, and what lies between them
(which shots to render, which films are current, what the lock records)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import media
from pipeline.assemble import ClipInput, assemble
from pipeline.cache import Cache, ClipRecord, write_atomic
from pipeline.errors import BudgetError, MediaError, UserError
from pipeline.expand import Sequence, Shot
from pipeline.hashing import sha256_file
from pipeline.lock import Lock, LockedSequence, shot_entry
from pipeline.plan import CACHED, Plan
from pipeline.render import RendererOptions, make_renderer
from pipeline.scheduler import (
    FAILED,
    RENDERED,
    SKIPPED,
    Outcome,
    Reporter,
    ScheduleOptions,
    Scheduler,
)


@dataclass
class BuildSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    cached: list[Shot] = field(default_factory=list)
    interrupted: bool = False
    fatal: str | None = None
    spent: float = 0.0
    sequences: list[SequenceOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> bool:
        return (
            self.fatal is not None
            or any(o.status == FAILED for o in self.outcomes)
            or any(s.status == FAILED for s in self.sequences)
        )

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.failed or self.count(SKIPPED):
            return 1
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "rendered": self.count(RENDERED),
            "from_cache": len(self.cached) + self.count(CACHED),
            "failed": self.count(FAILED),
            "skipped": self.count(SKIPPED),
            "spent": round(self.spent, 2),
            "interrupted": self.interrupted,
            "error": self.fatal,
            "shots": [
                {
                    "key": o.shot.key,
                    "shot": o.shot.label,
                    "variant": o.shot.variant,
                    "take": o.shot.take,
                    "status": o.status,
                    "cost": o.record.cost if o.record else None,
                    "error": o.error,
                }
                for o in self.outcomes
            ],
            "sequences": [s.to_json() for s in self.sequences],
        }


def check_budget(estimate: float, max_cost: float | None) -> None:
    """Refuse, before any submit, a build whose estimate is over the budget."""
    if max_cost is not None and estimate > max_cost + 1e-9:
        raise BudgetError(
            f"this build would cost about ${estimate:.2f}, over the budget of ${max_cost:.2f}",
            "render fewer shots (--only), use --preview, or raise --max-cost",
        )


def check_frozen(lock_file: Path, previous: Lock | None, to_render: list[Shot]) -> None:
    """--frozen: every shot to render must be one the lock names."""
    if previous is None:
        raise UserError(
            f"--frozen: there is no lock file {lock_file}",
            "build once without --frozen and commit the lock",
        )
    unknown = [s for s in to_render if s.key not in previous.shots]
    if unknown:
        names = ", ".join(dict.fromkeys(s.label for s in unknown))
        raise UserError(
            f"--frozen: {len(unknown)} shot(s) would be rendered that {lock_file.name} does not "
            f"name: {names}",
            "the storyboard changed since the lock was written: build without --frozen",
        )


def select_shots(
    plan: Plan, only: list[str] | None, force: list[str] | None, sequences: list[Sequence] | None
) -> tuple[list[Shot], list[Shot], frozenset[str]]:
    """What to render and what is already there, by the plan; forced shots render again."""
    wanted_keys: set[str] | None = None
    if sequences is not None:
        wanted_keys = {use.shot.key for s in sequences for use in s.uses}
    forced = {row.shot.key for row in plan.rows if force and _named(row.shot, force)}
    to_render: list[Shot] = []
    cached: list[Shot] = []
    for row in plan.rows:
        shot = row.shot
        if only and not _named(shot, only):
            continue
        if wanted_keys is not None and shot.key not in wanted_keys and not only:
            continue
        if row.status == CACHED and shot.key not in forced:
            cached.append(shot)
        else:
            to_render.append(shot)
    return to_render, cached, frozenset(forced)


def _named(shot: Shot, names: list[str]) -> bool:
    return shot.shot_id in names or shot.label in names


def render_shots(
    shots: list[Shot],
    cache: Cache,
    renderer_name: str,
    renderer_options: RendererOptions,
    options: ScheduleOptions,
    reporter: Reporter,
) -> BuildSummary:
    """Render `shots`; the first Ctrl-C stops new work, a second one exits at once."""
    return asyncio.run(_render(shots, cache, renderer_name, renderer_options, options, reporter))


async def _render(
    shots: list[Shot],
    cache: Cache,
    renderer_name: str,
    renderer_options: RendererOptions,
    options: ScheduleOptions,
    reporter: Reporter,
) -> BuildSummary:
    summary = BuildSummary()
    if not shots:
        return summary
    renderer = make_renderer(renderer_name, cache, renderer_options)
    scheduler = Scheduler(cache, renderer, options, reporter)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    presses = 0

    def interrupt() -> None:
        nonlocal presses
        presses += 1
        summary.interrupted = True
        if presses == 1:
            scheduler.stop.set()
            reporter.note(
                "stopping: no new renders; finishing the ones running "
                "(Ctrl-C again to exit now: running tasks stay in the journal)"
            )
        elif main is not None:
            main.cancel()

    def terminate() -> None:
        summary.interrupted = True
        if main is not None:
            main.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupt)
    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        summary.outcomes = await scheduler.run(shots)
    except asyncio.CancelledError:
        summary.interrupted = True
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        await renderer.aclose()
    summary.spent = scheduler.spent
    summary.fatal = scheduler.fatal.message if scheduler.fatal else None
    return summary


# -- sequences ----------------------------------------------------------------------------------

BUILT = "built"
CURRENT = "current"
BLOCKED = "blocked"


@dataclass(frozen=True)
class SequenceOutcome:
    sequence: Sequence
    status: str
    path: Path
    method: str = ""
    sha256: str = ""
    bytes: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence.name,
            "status": self.status,
            "path": str(self.path),
            "method": self.method,
            "duration": round(self.sequence.duration, 3),
            "error": self.error,
        }


def film_dir(build_dir: Path, spec_name: str, renderer: str) -> Path:
    """build/<storyboard>/, and build/<storyboard>/preview/ so animatics never replace films."""
    folder = build_dir / spec_name
    return folder / "preview" if renderer == "preview" else folder


def output_path(films: Path, sequence: Sequence) -> Path:
    return films / f"{sequence.name}.mp4"


def build_sequences(
    sequences: list[Sequence],
    cache: Cache,
    outputs: OutputIndex,
    films: Path,
    previous: Lock | None,
    note: Any,
) -> list[SequenceOutcome]:
    """Join each sequence whose key changed; a sequence whose output matches the lock is left."""
    results = []
    checked: dict[str, media.ClipInfo] = {}  # a clip shared by several films is hashed once
    for sequence in sequences:
        path = output_path(films, sequence)
        records = [cache.get(use.shot.key) for use in sequence.uses]
        missing = [u.shot.label for u, r in zip(sequence.uses, records, strict=True) if r is None]
        if missing:
            names = ", ".join(dict.fromkeys(missing))
            results.append(
                SequenceOutcome(sequence, BLOCKED, path, error=f"clips missing: {names}")
            )
            continue
        locked = previous.sequences.get(sequence.name) if previous else None
        if (
            locked is not None
            and locked.key == sequence.key
            and outputs.matches(path, locked.sha256)
        ):
            results.append(
                SequenceOutcome(sequence, CURRENT, path, sha256=locked.sha256, bytes=locked.bytes)
            )
            continue
        try:
            clips = [
                _clip_input(cache, use, record, checked)
                for use, record in zip(sequence.uses, records, strict=True)
            ]
            started = time.monotonic()
            made = assemble(sequence, clips, path)
        except MediaError as exc:
            results.append(SequenceOutcome(sequence, FAILED, path, error=exc.message))
            note(f"failed   sequence {sequence.name}: {exc.message}")
            continue
        sha = outputs.record(path)
        note(
            f"joined   {sequence.name} ({made.info.duration:.2f} s, {made.method}, "
            f"{time.monotonic() - started:.1f} s) -> {path}"
        )
        results.append(
            SequenceOutcome(sequence, BUILT, path, made.method, sha, path.stat().st_size)
        )
    outputs.save()
    return results


def _clip_input(
    cache: Cache, use: Any, record: ClipRecord, checked: dict[str, media.ClipInfo]
) -> ClipInput:
    """A cached clip checked against its record (once per build) before it goes into a film."""
    path = cache.clip_path(record.key)
    label = use.shot.label + (f" take {use.shot.take}" if use.shot.takes > 1 else "")
    if record.key in checked:
        return ClipInput(path, checked[record.key], use.start, use.end, label)
    problem = None
    if not path.exists():
        problem = "its file is gone"
    elif path.stat().st_size != record.bytes or sha256_file(path) != record.sha256:
        problem = "its file does not match the checksum recorded when it was rendered"
    if problem is None:
        try:
            info = media.probe(path)
        except MediaError as exc:
            problem = exc.message
    if problem is not None:
        raise MediaError(
            f"the clip of shot '{label}' is damaged: {problem}",
            f"render it again: storyboard build SPEC --force {use.shot.shot_id}",
        )
    checked[record.key] = info
    return ClipInput(path, info, use.start, use.end, label)


@dataclass
class OutputIndex:
    """Checksums of built files by (size, mtime), so a no-op build does not re-hash films."""

    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirty: bool = False

    @classmethod
    def load(cls, path: Path) -> OutputIndex:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entries = {}
        return cls(path, entries if isinstance(entries, dict) else {})

    def sha256(self, file: Path) -> str | None:
        try:
            stat = file.stat()
        except OSError:
            return None
        entry = self.entries.get(str(file))
        if entry and entry.get("size") == stat.st_size and entry.get("mtime") == stat.st_mtime_ns:
            return str(entry["sha256"])
        return self.record(file)

    def matches(self, file: Path, sha: str) -> bool:
        return self.sha256(file) == sha

    def record(self, file: Path) -> str:
        stat = file.stat()
        sha = sha256_file(file)
        self.entries[str(file)] = {"size": stat.st_size, "mtime": stat.st_mtime_ns, "sha256": sha}
        self.dirty = True
        return sha

    def save(self) -> None:
        if self.dirty:
            write_atomic(self.path, json.dumps(self.entries, sort_keys=True))
            self.dirty = False


def make_lock(
    storyboard: str,
    renderer: str,
    plan: Plan,
    cache: Cache,
    outcomes: list[SequenceOutcome],
    previous: Lock | None,
) -> Lock:
    """The lock as the build left things: every cached shot, every current sequence."""
    shots = {}
    for row in plan.rows:
        record = cache.get(row.shot.key)
        if record is not None:
            shots[row.shot.key] = shot_entry(
                record, row.shot.label, list(row.variants), row.shot.take
            )
    done = {o.sequence.name: o for o in outcomes if o.status in (BUILT, CURRENT)}
    sequences = {}
    for sequence in plan.expansion.sequences:
        outcome = done.get(sequence.name)
        if outcome is not None:
            sequences[sequence.name] = LockedSequence(
                key=sequence.key,
                path=str(outcome.path.name),
                sha256=outcome.sha256,
                bytes=outcome.bytes,
                duration=round(sequence.duration, 3),
            )
        elif (
            previous
            and (kept := previous.sequences.get(sequence.name))
            and kept.key == sequence.key
        ):
            sequences[sequence.name] = kept
    return Lock(storyboard=storyboard, renderer=renderer, shots=shots, sequences=sequences)
