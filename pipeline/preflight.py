"""Preflight: what a build will do, decided and checked before anything is spent.

Which renders the build works on (the films and shots asked for, with what they start
from), what they cost against the budget, whether the lock allows them (--frozen), whether
films and the lock can be written, and that the cache knows this storyboard builds here.
Every refusal happens here, before a submit.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.cluster import ignored_cluster
from pipeline.deciding import unapproved
from pipeline.decisions import Decisions
from pipeline.errors import BudgetError, CacheError, UserError
from pipeline.graph import Graph
from pipeline.lock import Lock
from pipeline.lock import lock_path as lock_file_of
from pipeline.nodes import Film, Node
from pipeline.plan import Loaded, PlanRow
from pipeline.render import RENDERERS, is_paid, renderer_class
from pipeline.request import BuildOutput, BuildRequest
from pipeline.run.shots import ScheduleOptions
from pipeline.state import ShotState, State
from pipeline.state import forced as forced_state


@dataclass(frozen=True)
class Work:
    """What a build does, as preflight decided it."""

    rows: tuple[PlanRow, ...]  # what it works on: renders, tasks to collect, clips to fetch
    cached: tuple[Node, ...]  # what it needs that is here already
    films: list[Film] | None  # the films asked for, as expanded; None: all of them
    new: tuple[Node, ...]  # the renders it pays for
    estimate: float
    schedule: ScheduleOptions  # with the budget, the shots forced, the lock's keys (--frozen)
    cluster: str | None  # a Dask scheduler's address: films are joined there


def check(request: BuildRequest, loaded: Loaded, warn: Callable[[str], None]) -> Work:
    """The build's work, or why it may not start."""
    if loaded.remote_problem is not None:
        # Without it there is no lease, and what it holds would look new: paid for again.
        raise loaded.remote_problem
    films, wanted, forced = _chosen(request, loaded, warn)
    rows = [row for row in loaded.plan.rows if wanted is None or row.node in wanted]
    to_render = [r for r in rows if r.status != ShotState.CACHED or r.shot.key in forced]
    cached = [r.shot for r in rows if r.status == ShotState.CACHED and r.shot.key not in forced]
    waiting = (ShotState.IN_FLIGHT, ShotState.REMOTE)  # paid for before, or the team's
    if request.selection.join_only:
        # It pays for nothing, whatever else it is told: only what costs nothing is fetched.
        to_render = [row for row in to_render if row.status in waiting]
    # A request the provider refused is not sent again (the build says so), unless forced.
    new = [
        row.shot
        for row in to_render
        if row.status not in waiting and (row.status != ShotState.REFUSED or row.shot.key in forced)
    ]
    budget = request.max_cost
    max_cost = budget if budget is not None else loaded.spec.storyboard.budget
    paid = is_paid(loaded.renderer)
    estimate = check_budget(new, max_cost) if paid else 0.0
    _refuse(request, loaded, [row.shot for row in to_render])
    _register(loaded, bool(to_render), warn)
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
    cluster = request.cluster
    return Work(tuple(to_render), tuple(cached), films, tuple(new), estimate, schedule, cluster)


def _chosen(
    request: BuildRequest, loaded: Loaded, warn: Callable[[str], None]
) -> tuple[list[Film] | None, set[str] | None, frozenset[str]]:
    """What the build works on: its films (None: all), its nodes (None: all), and the keys
    of the renders forced."""
    graph = loaded.plan.graph
    chosen, spec_path = request.selection, request.target.spec
    films = graph.films_named(chosen.sequences, spec_path)
    if chosen.approved:
        films = _approved(_every(films, graph), loaded.decisions, warn)
    if chosen.join_only:
        films = _ready(_every(films, graph), loaded, warn)
    if chosen.join_only and (chosen.only or chosen.force):
        warn("warning: --join-only renders nothing: --only and --force are not used")
    only = graph.named(chosen.only, spec_path) if chosen.only and not chosen.join_only else None
    forcing = chosen.force and not chosen.join_only
    forced_nodes = graph.named(chosen.force, spec_path) if forcing else set()
    forced = frozenset(row.shot.key for row in loaded.plan.rows if row.node in forced_nodes)
    return films, graph.selected(only, films), forced


def _refuse(request: BuildRequest, loaded: Loaded, to_render: list[Node]) -> None:
    """Refuse, before anything is spent, a build that cannot be made as asked."""
    if to_render:
        renderer_class(loaded.renderer).check_options(request.renderer)
    if request.frozen:
        # A shot whose key waits on an upstream frame is checked once its key is known.
        known = [shot for shot in to_render if not shot.pending]
        check_frozen(loaded.lock_path, loaded.lock, known)
    if request.cluster and loaded.remote is None:
        raise UserError(
            f"--cluster {request.cluster}: the cluster's workers read clips from the team "
            "cache, and this project has none",
            "set [remote] url = 's3://bucket/prefix' in storyboard.toml (or STORYBOARD_REMOTE)",
        )
    if loaded.plan.graph.expansion.sequences:
        check_writable(loaded.films, "films", "choose a writable --output-dir")
    if not request.frozen:
        check_writable(loaded.lock_path.parent, "the lock file", "build from a writable folder")


def _register(loaded: Loaded, renders: bool, warn: Callable[[str], None]) -> None:
    """Tell the cache what this storyboard uses. A build from a read-only cache (a CI
    runner's) that renders nothing needs no writes: it goes on, said."""
    try:
        register(loaded)
    except CacheError as exc:
        if renders:
            raise
        warn(f"warning: {exc.message}; nothing to render, so building from it as it is")


def _every(films: list[Film] | None, graph: Graph) -> list[Film]:
    return list(graph.expansion.sequences) if films is None else films


def _ready(films: list[Film], loaded: Loaded, warn: Callable[[str], None]) -> list[Film]:
    """--join-only: the films whose renders are all here; each other one is said."""
    graph = loaded.plan.graph
    cached = {row.shot.key for row in loaded.plan.rows if row.status == ShotState.CACHED}
    kept = []
    for film in films:
        missing = [r for r in graph.film(film).renders() if r.key not in cached]
        if missing:
            names = ", ".join(dict.fromkeys(r.label for r in missing))
            warn(f"not joined (--join-only): {film.name}: {names} not rendered yet")
        else:
            kept.append(film)
    return kept


def _approved(films: list[Film], decisions: Decisions, warn: Callable[[str], None]) -> list[Film]:
    """--approved: the films whose shots are all approved; each other one is said."""
    kept = []
    for film in films:
        waiting = unapproved(decisions, film)
        if waiting:
            warn(f"not joined (--approved): {film.name}: {', '.join(waiting)} not approved")
        else:
            kept.append(film)
    return kept


def announce(work: Work, loaded: Loaded, output: BuildOutput) -> None:
    """Say what the build does (one line, with --json too), and why each render is made."""
    paid = is_paid(loaded.renderer)
    rows = work.rows
    collecting = sum(1 for row in rows if row.status == ShotState.IN_FLIGHT)
    fetching = sum(1 for row in rows if row.status == ShotState.REMOTE)
    unpriced = sum(1 for shot in work.new if shot.price is None)
    output.info(
        f"build {loaded.spec.path.name} with {loaded.renderer}: {len(work.new)} to render"
        + (f" (about ${work.estimate:.2f})" if paid else "")
        + (f" (+{unpriced} of unknown price)" if paid and unpriced else "")
        + (f", {collecting} in flight to collect" if collecting else "")
        + (f", {fetching} to fetch from the team cache" if fetching else "")
        + f", {len(work.cached)} cached"
        + (f"; team cache {loaded.remote.url}" if loaded.remote is not None else "")
        + (f"; films joined on the cluster {work.cluster}" if work.cluster else "")
    )
    ignored = ignored_cluster(loaded.settings)
    if ignored:
        output.warn(ignored)
    for row in rows:
        state = State(row.status, row.reasons)
        if row.shot.key in work.schedule.force:
            output.explain(
                f"render   {row.shot.label}: {row.status}, {forced_state(state).said[0]}"
            )
        else:
            output.explain(f"{_action(row.status):8} {row.shot.label}: {'; '.join(state.said)}")


def _action(status: str) -> str:
    """What the build does with a render, as -v says it before doing it."""
    if status == ShotState.IN_FLIGHT:
        return "collect"
    if status == ShotState.REMOTE:
        return "fetch"
    return "render"


def check_budget(shots: list[Node], max_cost: float | None) -> float:
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


def check_frozen(lock_file: Path, previous: Lock | None, to_render: list[Node]) -> None:
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


def check_writable(folder: Path, what: str, hint: str) -> None:
    """Refuse, before anything is paid for, a build whose output could not be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A new file of a random name: a name a repository could have planted a link at
        # would be a file outside written.
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(
            f"{folder}: {what} cannot be written there ({exc.strerror or exc})", hint
        ) from None


def register(loaded: Loaded, graph: Graph | None = None) -> None:
    """Tell the cache this storyboard builds here and what it uses (by `graph`, else the
    plan's), so gc keeps it."""
    graph = graph or loaded.plan.graph
    spec_path = loaded.spec.path
    try:
        loaded.cache.storyboards.record(
            spec_path,
            [lock_file_of(spec_path, renderer) for renderer in RENDERERS],
            loaded.renderer,
            [shot.key for shot in graph.renders()],
        )
    except OSError as exc:
        raise CacheError(
            f"{loaded.cache.root}: cannot write to the cache ({exc.strerror or exc})",
            "build with a writable --cache-dir",
        ) from None
