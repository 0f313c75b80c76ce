"""build = plan + render + assemble + lock: `run` takes a request and does the steps in order.

What lies between the steps lives here too: which shots to render, what the budget allows,
which films are current, and what the lock records.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline import media, plan
from pipeline.assemble import assemble, clean_work_folders, clip_input
from pipeline.cache import Cache, ClipRecord
from pipeline.cache.remote import Remote
from pipeline.cards import draw_missing
from pipeline.cluster import FilmJob, cluster_address, ignored_cluster, join_on_cluster
from pipeline.errors import (
    BudgetError,
    CacheError,
    MediaError,
    RemoteDamaged,
    RemoteError,
    RemoteReadOnly,
    UserError,
)
from pipeline.films import OutputIndex, film_dir, film_facts, output_path
from pipeline.graph import Graph
from pipeline.lock import Lock, LockedSequence, shot_entry
from pipeline.lock import lock_path as lock_file_of
from pipeline.lock import write as write_lock
from pipeline.nodes import Sequence, Shot
from pipeline.plan import Plan
from pipeline.render import (
    RENDERERS,
    RendererOptions,
    ignore,
    is_paid,
    make_renderer,
    renderer_class,
)
from pipeline.scheduler import (
    Outcome,
    Reporter,
    ScheduleOptions,
    Scheduler,
    Spending,
)
from pipeline.share import pull_film, push_film
from pipeline.state import FilmState, Joined, Ran, ShotState, State, film_state
from pipeline.state import forced as forced_state


@dataclass(frozen=True)
class BuildRequest:
    """Everything a build needs to know, as the command line (or a program) gives it."""

    spec: Path
    preview: bool = False
    sequences: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    force: tuple[str, ...] = ()
    schedule: ScheduleOptions = field(default_factory=ScheduleOptions)
    renderer: RendererOptions = field(default_factory=RendererOptions)
    max_cost: float | None = None  # None: the storyboard's `budget:`, if any
    frozen: bool = False
    output_dir: Path | None = None
    cache_dir: str | None = None
    max_shots: int | None = None  # None: expand.MAX_SHOTS
    remote: bool = True  # use the project's team cache, when it has one
    cluster: str | None = None  # a Dask scheduler's address: films are joined there


@dataclass(frozen=True)
class BuildOutput:
    """Where a build's words go; the caller decides how loud each kind is."""

    info: Callable[[str], None]  # the plan of the build, the lock written
    warn: Callable[[str], None]  # warnings, and what the cache repaired
    progress: Callable[[int, float], AbstractContextManager[Reporter]]  # (renders, estimate)
    explain: Callable[[str], None] = ignore  # why each render is made (-v)


@dataclass
class BuildSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    cached: list[Shot] = field(default_factory=list)
    interrupted: bool = False
    fatal: str | None = None
    spending: Spending = field(default_factory=Spending)
    sequences: list[SequenceOutcome] = field(default_factory=list)
    lock_written: Path | None = None

    def count(self, status: Ran) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> bool:
        return (
            self.fatal is not None
            or any(o.status == Ran.FAILED for o in self.outcomes)
            or any(s.status == Joined.FAILED for s in self.sequences)
        )

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.failed or self.count(Ran.SKIPPED):
            return 1
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "rendered": self.count(Ran.RENDERED),
            "collected": sum(1 for o in self.outcomes if o.status == Ran.RENDERED and o.collected),
            "from_cache": len(self.cached) + self.count(Ran.CACHED),
            "pulled": self.count(Ran.PULLED),
            "failed": self.count(Ran.FAILED),
            "skipped": self.count(Ran.SKIPPED),
            "spent": round(self.spending.total, 4),
            "collected_cost": round(self.spending.collected, 4),
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
                    "collected": o.collected,
                    "warning": o.warning,
                    "error": o.error,
                }
                for o in self.outcomes
            ],
            "sequences": [s.to_json() for s in self.sequences],
        }


def run(request: BuildRequest, output: BuildOutput) -> BuildSummary:
    """Plan, render what is missing, join the films, write the lock."""
    loaded = plan.load(
        request.spec,
        request.preview,
        request.cache_dir,
        output.warn,
        request.max_shots,
        request.remote,
    )
    try:
        return _run(request, loaded, output)
    finally:
        loaded.cache.close()


def _run(request: BuildRequest, loaded: plan.Loaded, output: BuildOutput) -> BuildSummary:
    spec, current = loaded.spec, loaded.plan
    if loaded.remote_problem is not None:
        # Without it there is no lease, and what it holds would look new: paid for again.
        raise loaded.remote_problem
    for warning in current.warnings:
        output.warn(f"warning: {warning}")
    sequences = choose_sequences(current, request.sequences, request.spec)
    check_names(current, request.only + request.force, request.spec)
    to_render, cached, forced = select_shots(current, request.only, request.force, sequences)
    paid = is_paid(loaded.renderer)
    new = [
        row.shot for row in to_render if row.status not in (ShotState.IN_FLIGHT, ShotState.REMOTE)
    ]
    max_cost = request.max_cost if request.max_cost is not None else spec.storyboard.budget
    estimate = check_budget(new, max_cost) if paid else 0.0
    if to_render:
        renderer_class(loaded.renderer).check_options(request.renderer)
    if request.frozen:
        # A shot whose key waits on an upstream frame is checked once its key is known.
        known = [row.shot for row in to_render if not row.shot.pending]
        check_frozen(loaded.lock_path, loaded.lock, known)
    cluster = cluster_address(request.cluster)
    if cluster and loaded.remote is None:
        raise UserError(
            f"--cluster {cluster}: the cluster's workers read clips from the team cache, and "
            "this project has none",
            "set [remote] url = 's3://bucket/prefix' in storyboard.toml (or STORYBOARD_REMOTE)",
        )
    films = film_dir(spec.path, spec.storyboard.name, loaded.renderer, request.output_dir)
    if current.graph.expansion.sequences:
        check_writable(films, "films", "choose a writable --output-dir")
    if not request.frozen:
        check_writable(loaded.lock_path.parent, "the lock file", "build from a writable folder")
    try:
        _register(loaded)
    except CacheError as exc:
        if to_render:
            raise
        # Nothing to store: a build from a read-only cache (a CI runner's) needs no writes.
        output.warn(f"warning: {exc.message}; nothing to render, so building from it as it is")
    loaded.cache.clean()
    collecting = sum(1 for row in to_render if row.status == ShotState.IN_FLIGHT)
    fetching = sum(1 for row in to_render if row.status == ShotState.REMOTE)
    unpriced = sum(1 for shot in new if shot.price is None)
    output.info(
        f"build {spec.path.name} with {loaded.renderer}: {len(new)} to render"
        + (f" (about ${estimate:.2f})" if paid else "")
        + (f" (+{unpriced} of unknown price)" if paid and unpriced else "")
        + (f", {collecting} in flight to collect" if collecting else "")
        + (f", {fetching} to fetch from the team cache" if fetching else "")
        + f", {len(cached)} cached"
        + (f"; team cache {loaded.remote.url}" if loaded.remote is not None else "")
        + (f"; films joined on the cluster {cluster}" if cluster else "")
    )
    ignored = ignored_cluster(loaded.settings)
    if ignored:
        output.warn(ignored)
    for row in to_render:
        state = State(row.status, row.reasons)
        state = forced_state(state) if row.shot.key in forced else state
        output.explain(f"{state.name:9} {row.shot.label}: {'; '.join(state.said)}")
    # `push = false` in the project's settings, or --no-push, keeps this build's work local.
    push = request.schedule.push and (loaded.remote is None or loaded.remote.settings.push)
    frozen = frozenset(loaded.lock.shots) if request.frozen and loaded.lock else None
    schedule = replace(
        request.schedule,
        max_cost=max_cost if paid else None,
        force=forced,
        push=push,
        frozen=frozen,
    )
    outputs = OutputIndex.load(loaded.cache.root / "outputs.json")
    graph = current.graph
    with output.progress(len(to_render), estimate) as reporter:
        summary = render_shots(
            [row.node for row in to_render],
            graph,
            loaded.cache,
            loaded.renderer,
            request.renderer,
            schedule,
            reporter,
            loaded.remote,
        )
        summary.cached = cached
        if any(row.shot.pending for row in current.rows):
            # Keys that waited on upstream frames are known now, in the graph: gc keeps them.
            with contextlib.suppress(CacheError):
                _register(loaded)
        if not summary.interrupted and summary.fatal is None:
            summary.sequences = build_sequences(
                [graph.film(s) for s in sequences]
                if sequences is not None
                else list(graph.films()),
                loaded.cache,
                outputs,
                films,
                loaded.lock,
                reporter.note,
                Sharing(loaded.remote, push, cluster),
            )
    if not request.frozen and not summary.interrupted:
        lock = make_lock(
            spec.storyboard.name,
            loaded.renderer,
            current,
            loaded.cache,
            summary.sequences,
            loaded.lock,
            outputs,
            films,
        )
        try:
            if write_lock(loaded.lock_path, lock):
                summary.lock_written = loaded.lock_path
        except OSError as exc:
            summary.fatal = (
                f"{loaded.lock_path}: the lock file could not be written ({exc.strerror or exc}); "
                "the clips are in the cache: build again once the folder is writable, nothing "
                "is rendered twice"
            )
    return summary


def _register(loaded: plan.Loaded) -> None:
    """Tell the cache this storyboard builds here and what it uses, so gc keeps it."""
    spec_path = loaded.spec.path
    try:
        loaded.cache.storyboards.record(
            spec_path,
            [lock_file_of(spec_path, renderer) for renderer in RENDERERS],
            loaded.renderer,
            [shot.key for shot in loaded.plan.graph.renders()],
        )
    except OSError as exc:
        raise CacheError(
            f"{loaded.cache.root}: cannot write to the cache ({exc.strerror or exc})",
            "build with a writable --cache-dir",
        ) from None


def check_budget(shots: list[Shot], max_cost: float | None) -> float:
    """The estimate of the new renders; refused, before any submit, over the budget, or when
    a budget is set and a render's price is unknown (it could pass any budget)."""
    estimate = round(sum(s.price or 0.0 for s in shots), 2)
    if max_cost is None:
        return estimate
    unpriced = [s for s in shots if s.price is None]
    if unpriced:
        first = unpriced[0]
        names = ", ".join(dict.fromkeys(s.label for s in unpriced))
        raise BudgetError(
            f"{len(unpriced)} render(s) have no known price, so a budget of ${max_cost:.2f} "
            f"cannot hold: {names} ({first.model}, {first.width}x{first.height}, "
            f"{first.duration} s)",
            "give `price:` (USD per render) for them in the storyboard, or build without a budget",
        )
    if estimate > max_cost + 1e-9:
        raise BudgetError(
            f"this build would cost about ${estimate:.2f}, over the budget of ${max_cost:.2f}",
            "render fewer shots (--only), use --preview, or raise --max-cost",
        )
    return estimate


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


def choose_sequences(current: Plan, names: tuple[str, ...], spec: Path) -> list[Sequence] | None:
    """The sequences named (by id or by full name), or None for all of them."""
    if not names:
        return None
    every = current.graph.expansion.sequences
    chosen = [s for s in every if s.id in names or s.name in names]
    missing = [n for n in names if not any(n in (s.id, s.name) for s in chosen)]
    if missing:
        known = ", ".join(dict.fromkeys(s.id for s in every)) or "(none)"
        raise UserError(f"no sequence '{missing[0]}' in {spec}", f"sequences: {known}")
    return chosen


def check_names(current: Plan, names: tuple[str, ...], spec: Path) -> None:
    """Every shot named by --only or --force must match a shot of the plan (by id, or by
    label: `crew@airship`)."""
    known = dict.fromkeys(n for row in current.rows for n in (row.shot.shot_id, row.shot.label))
    for name in names:
        if name not in known:
            raise UserError(f"no shot '{name}' in {spec}", f"shots: {', '.join(known)}")


def check_writable(folder: Path, what: str, hint: str) -> None:
    """Refuse, before anything is paid for, a build whose output could not be written."""
    probe = folder / f".write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"{folder}: {what} cannot be written there ({exc.strerror or exc})", hint
        ) from None


def select_shots(
    current: Plan,
    only: tuple[str, ...],
    force: tuple[str, ...],
    sequences: list[Sequence] | None,
) -> tuple[list[plan.PlanRow], list[Shot], frozenset[str]]:
    """The plan rows to work on and the shots already there; forced shots render again."""
    wanted: set[str] | None = None  # nodes
    if sequences is not None:
        wanted = {use.shot.key for s in sequences for use in s.uses}
    if only:
        wanted = {row.node for row in current.rows if _named(row.shot, only)}
    if wanted is not None:
        wanted = current.graph.with_upstream(wanted & current.graph.nodes.keys())
    forced = {row.shot.key for row in current.rows if force and _named(row.shot, force)}
    to_render: list[plan.PlanRow] = []
    cached: list[Shot] = []
    for row in current.rows:
        shot = row.shot
        if wanted is not None and row.node not in wanted:
            continue
        if row.status == ShotState.CACHED and shot.key not in forced:
            cached.append(shot)
        else:
            to_render.append(row)
    return to_render, cached, frozenset(forced)


def _named(shot: Shot, names: tuple[str, ...]) -> bool:
    return shot.shot_id in names or shot.label in names


def render_shots(
    nodes: list[str],
    graph: Graph,
    cache: Cache,
    renderer_name: str,
    renderer_options: RendererOptions,
    options: ScheduleOptions,
    reporter: Reporter,
    remote: Remote | None = None,
) -> BuildSummary:
    """Render the graph's `nodes`; the first Ctrl-C stops new work, a second one exits at
    once."""
    return asyncio.run(
        _render(nodes, graph, cache, renderer_name, renderer_options, options, reporter, remote)
    )


async def _render(
    nodes: list[str],
    graph: Graph,
    cache: Cache,
    renderer_name: str,
    renderer_options: RendererOptions,
    options: ScheduleOptions,
    reporter: Reporter,
    remote: Remote | None,
) -> BuildSummary:
    summary = BuildSummary()
    if not nodes:
        return summary
    renderer = make_renderer(renderer_name, cache, renderer_options, reporter.note)
    scheduler = Scheduler(cache, renderer, options, reporter, graph, cache.frame, remote)
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
        summary.outcomes = await scheduler.run(nodes)
    except asyncio.CancelledError:
        summary.interrupted = True
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        await renderer.aclose()
    summary.spending = scheduler.spending
    fatal = scheduler.fatal
    if fatal is not None:
        summary.fatal = fatal.message + (f"\n  hint: {fatal.hint}" if fatal.hint else "")
    return summary


# -- sequences ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceOutcome:
    sequence: Sequence
    status: Joined
    path: Path
    method: str = ""
    sha256: str = ""
    bytes: int = 0
    duration: float = 0.0  # of the film as made (its clips may differ from what was asked)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence.name,
            "status": self.status,
            "path": str(self.path),
            "method": self.method,
            "duration": round(self.duration or self.sequence.duration, 3),
            "error": self.error,
        }


@dataclass(frozen=True)
class Sharing:
    """The team cache and the cluster, as the film step uses them."""

    remote: Remote | None = None
    push: bool = True
    cluster: str | None = None  # a Dask scheduler's address


def build_sequences(
    sequences: list[Sequence],
    cache: Cache,
    outputs: OutputIndex,
    films: Path,
    previous: Lock | None,
    note: Callable[[str], None],
    sharing: Sharing = Sharing(),
) -> list[SequenceOutcome]:
    """Each film made once per key: a film already there is left, one made before (here or
    by the team) is placed from the cache, the rest are joined (here, or on the cluster) and
    kept. `film_state` says which."""
    clean_work_folders(films)
    facts = film_facts(sequences, previous, cache, outputs, films, sharing.remote)
    wanted = [s for s in sequences if film_state(s, facts).name == FilmState.REMOTE]
    if wanted and sharing.remote is not None and _pull_films(sharing.remote, cache, wanted, note):
        facts = film_facts(sequences, previous, cache, outputs, films)
    joining = [
        s
        for s in sequences
        if film_state(s, facts).name not in (FilmState.CURRENT, FilmState.STORED)
    ]
    drawn, problems = draw_missing(joining, cache, note)
    for problem in problems.values():
        note(f"failed   {problem}")
    if drawn:
        facts = film_facts(sequences, previous, cache, outputs, films)
    results: dict[int, SequenceOutcome] = {}
    to_join: list[tuple[int, Sequence, list[ClipRecord]]] = []
    for index, sequence in enumerate(sequences):
        path = output_path(films, sequence)
        state = film_state(sequence, facts)
        if state.name == FilmState.CURRENT:  # its clips are not needed, nor even in this cache
            results[index] = _current(sequence, path, previous, cache)
            continue
        placed = _placed(sequence, path, cache, outputs) if state.name == FilmState.STORED else None
        if placed is not None:
            note(f"placed   {sequence.name} (made before, from the cache) -> {path}")
            results[index] = placed
            continue
        failed = [problems[u.shot.key] for u in sequence.uses if u.shot.key in problems]
        if failed:
            error = f"its card could not be drawn: {failed[0]}"
            results[index] = SequenceOutcome(sequence, Joined.FAILED, path, error=error)
            continue
        records = [cache.clips.get(use.shot.key) for use in sequence.uses]
        missing = [u.shot.label for u, r in zip(sequence.uses, records, strict=True) if r is None]
        if missing:
            names = ", ".join(dict.fromkeys(missing))
            error = f"clips missing: {names}"
            results[index] = SequenceOutcome(sequence, Joined.BLOCKED, path, error=error)
            continue
        to_join.append((index, sequence, [r for r in records if r is not None]))
    if sharing.cluster and sharing.remote is not None and to_join:
        results.update(_joined_on_cluster(to_join, films, cache, outputs, sharing, note))
    else:
        checked: dict[str, media.ClipInfo] = {}  # a clip shared by films is hashed once
        for index, sequence, records in to_join:
            path = output_path(films, sequence)
            results[index] = _joined(sequence, path, records, checked, cache, outputs, note)
        if sharing.remote is not None and sharing.push:
            joined = [results[index] for index, _, _ in to_join]
            _push_films(
                sharing.remote, cache, [o for o in joined if o.status == Joined.BUILT], note
            )
    outputs.save()
    return [results[index] for index in sorted(results)]


def _pull_films(
    remote: Remote, cache: Cache, sequences: list[Sequence], note: Callable[[str], None]
) -> int:
    """The films of `sequences` the team made, into the local cache: how many came."""

    async def one(sequence: Sequence) -> bool:
        try:
            return await pull_film(remote, cache, sequence.key, sequence.name) is not None
        except RemoteDamaged as exc:
            note(f"warning: {exc.message}; joining it here instead")
            return False

    async def every() -> list[bool]:
        return list(await asyncio.gather(*(one(s) for s in sequences)))

    try:
        return sum(Remote.run(every()))
    except RemoteError as exc:
        note(f"warning: {exc.message}; films are joined here")
        return 0


def _push_films(
    remote: Remote, cache: Cache, outcomes: list[SequenceOutcome], note: Callable[[str], None]
) -> None:
    records = [r for o in outcomes if (r := cache.films.get(o.sequence.key)) is not None]
    if not records:
        return

    async def every() -> None:
        await asyncio.gather(*(push_film(remote, cache, record) for record in records))

    try:
        Remote.run(every())
    except RemoteReadOnly:
        return  # a CI runner's key: it reads the team cache and writes nothing
    except RemoteError as exc:
        note(f"warning: films not shared ({exc.message}); `storyboard push` shares them later")


def _joined_on_cluster(
    jobs: list[tuple[int, Sequence, list[ClipRecord]]],
    films: Path,
    cache: Cache,
    outputs: OutputIndex,
    sharing: Sharing,
    note: Callable[[str], None],
) -> dict[int, SequenceOutcome]:
    assert sharing.remote is not None and sharing.cluster is not None
    made = join_on_cluster(
        sharing.cluster,
        sharing.remote,
        cache,
        [FilmJob.of(sequence, records) for _, sequence, records in jobs],
        note,
    )
    results = {}
    for (index, sequence, _), film in zip(jobs, made, strict=True):
        path = output_path(films, sequence)
        if isinstance(film, str):
            note(f"failed   sequence {sequence.name}: {film}")
            results[index] = SequenceOutcome(sequence, Joined.FAILED, path, error=film)
            continue
        placed = _placed(sequence, path, cache, outputs)
        if placed is None:
            error = "the film joined on the cluster could not be placed"
            results[index] = SequenceOutcome(sequence, Joined.FAILED, path, error=error)
            continue
        note(f"joined   {sequence.name} ({film.duration:.2f} s, {film.method}, cluster) -> {path}")
        results[index] = replace(placed, status=Joined.BUILT, method=film.method)
    return results


def _current(
    sequence: Sequence, path: Path, previous: Lock | None, cache: Cache
) -> SequenceOutcome:
    locked = previous.sequences.get(sequence.name) if previous else None
    if locked is not None and locked.key == sequence.key:
        return SequenceOutcome(
            sequence, Joined.CURRENT, path, "", locked.sha256, locked.bytes, locked.duration
        )
    stored = cache.films.get(sequence.key)
    sha, size, length = (stored.sha256, stored.bytes, stored.duration) if stored else ("", 0, 0.0)
    return SequenceOutcome(sequence, Joined.CURRENT, path, "", sha, size, length)


def _placed(
    sequence: Sequence, path: Path, cache: Cache, outputs: OutputIndex
) -> SequenceOutcome | None:
    try:
        record = cache.films.place(sequence.key, path)
    except OSError:
        return None  # joined again instead
    if record is None:
        return None
    outputs.record(path, record.sha256)
    return SequenceOutcome(
        sequence, Joined.PLACED, path, "stored", record.sha256, record.bytes, record.duration
    )


def _joined(
    sequence: Sequence,
    path: Path,
    records: list[ClipRecord],
    checked: dict[str, media.ClipInfo],
    cache: Cache,
    outputs: OutputIndex,
    note: Callable[[str], None],
) -> SequenceOutcome:
    try:
        clips = [
            clip_input(cache.clips.path(record.key), use, record, checked)
            for use, record in zip(sequence.uses, records, strict=True)
        ]
        started = time.monotonic()
        made = assemble(sequence, clips, path)
    except MediaError as exc:
        note(f"failed   sequence {sequence.name}: {exc.message}")
        return SequenceOutcome(sequence, Joined.FAILED, path, error=exc.message)
    sha = outputs.record(path)
    cache.films.put(sequence.key, path, sha, made.info.duration, made.method)
    note(
        f"joined   {sequence.name} ({made.info.duration:.2f} s, {made.method}, "
        f"{time.monotonic() - started:.1f} s) -> {path}"
    )
    return SequenceOutcome(
        sequence, Joined.BUILT, path, made.method, sha, path.stat().st_size, made.info.duration
    )


def make_lock(
    storyboard: str,
    renderer: str,
    current: Plan,
    cache: Cache,
    outcomes: list[SequenceOutcome],
    previous: Lock | None,
    outputs: OutputIndex,
    films: Path,
) -> Lock:
    """The lock as the build left things: every cached shot, and every film that is current,
    whatever this command built."""
    shots = {}
    graph = current.graph
    for node in graph.nodes:
        shot = graph.shot(node)
        record = cache.clips.get(shot.key)
        if record is not None:
            variants = list(graph.variants[node])
            shots[shot.key] = shot_entry(record, shot.label, variants, shot.take, shot.request)
    made = {
        o.sequence.name: o
        for o in outcomes
        if o.status in (Joined.BUILT, Joined.CURRENT, Joined.PLACED)
    }
    sequences = {}
    for sequence in graph.films():
        outcome = made.get(sequence.name)
        kept = previous.sequences.get(sequence.name) if previous else None
        if outcome is not None:
            film = (outcome.sha256, outcome.bytes, outcome.duration or sequence.duration)
        elif kept is not None and kept.key == sequence.key:
            film = (kept.sha256, kept.bytes, kept.duration)
        elif (stored := cache.films.get(sequence.key)) is not None and outputs.matches(
            output_path(films, sequence), stored.sha256
        ):
            film = (stored.sha256, stored.bytes, stored.duration)
        else:
            continue
        sequences[sequence.name] = LockedSequence(
            key=sequence.key,
            path=output_path(films, sequence).name,
            sha256=film[0],
            bytes=film[1],
            duration=round(film[2], 3),
            shots=[use.shot.label for use in sequence.uses],
            clips=sequence.clips(),
            settings=sequence.settings,
        )
    return Lock(storyboard=storyboard, renderer=renderer, shots=shots, sequences=sequences)
