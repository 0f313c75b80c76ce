"""A build, step by step: plan -> preflight -> shots -> films -> lock.

`run` takes a request and does the steps in order, each a module of its own: `plan` (what
is there and what it costs), `preflight` (what the build does, refused before anything is
spent), `run.shots` (the renders; pending keys are resolved in the graph as frames
arrive), `run.films` (the films, made once per key) and `lock` (what the lock records).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline import plan, preflight, qc
from pipeline.errors import CacheError
from pipeline.graph import Graph
from pipeline.lock import make_lock
from pipeline.lock import write as write_lock
from pipeline.nodes import Film, Node
from pipeline.plan import variants_said
from pipeline.render import is_paid
from pipeline.request import BuildOutput, BuildRequest, QcMode
from pipeline.run import films, shots
from pipeline.run.films import SequenceOutcome, Sharing
from pipeline.run.shots import Outcome, Outlook, Spending
from pipeline.state import FilmState, Joined, Ran


@dataclass
class BuildSummary:
    """What a build did: each render's and film's outcome, the money, and how it ended."""

    outcomes: list[Outcome] = field(default_factory=list)
    cached: tuple[Node, ...] = ()
    interrupted: bool = False
    fatal: str | None = None
    spending: Spending = field(default_factory=Spending)
    sequences: list[SequenceOutcome] = field(default_factory=list)
    lock_written: Path | None = None
    # --qc strict: what the quality check found in what this build delivers, in words
    # (each fails the build).
    refused: list[str] = field(default_factory=list)

    def count(self, status: Ran) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def collected(self) -> int:
        return sum(1 for o in self.outcomes if o.status == Ran.RENDERED and o.collected)

    @property
    def failed(self) -> bool:
        return (
            self.fatal is not None
            or any(o.status == Ran.FAILED for o in self.outcomes)
            or any(s.status == Joined.FAILED for s in self.sequences)
            or bool(self.refused)
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
            # Rendered: paid for by this build; collected: tasks an earlier build paid for.
            "rendered": self.count(Ran.RENDERED) - self.collected,
            "collected": self.collected,
            "from_cache": len(self.cached) + self.count(Ran.CACHED),
            "pulled": self.count(Ran.PULLED),
            "failed": self.count(Ran.FAILED),
            "skipped": self.count(Ran.SKIPPED),
            "spent": round(self.spending.total, 4),
            "collected_cost": round(self.spending.collected, 4),
            "left_running": self.spending.left_running_count,
            "left_running_cost": round(self.spending.left_running, 4),
            "not_downloaded": self.spending.not_downloaded,
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
                    "qc": qc.qc_json(o.record.qc if o.record else None),
                }
                for o in self.outcomes
            ],
            "sequences": [s.to_json() for s in self.sequences],
            "qc_refused": self.refused,
        }


def run(request: BuildRequest, output: BuildOutput) -> BuildSummary:
    """Plan, render what is missing, join the films, write the lock."""
    loaded = plan.load(request.target, output.warn)
    try:
        return _build(request, loaded, output)
    finally:
        loaded.cache.close()


def _build(request: BuildRequest, loaded: plan.Loaded, output: BuildOutput) -> BuildSummary:
    for warning in loaded.plan.warnings:
        output.warn(f"warning: {warning}")
    work = preflight.check(request, loaded, output.warn)
    preflight.announce(work, loaded, output)
    loaded.cache.clean()
    plan.restore(loaded.plan, loaded.cache)
    graph = loaded.plan.graph
    summary = BuildSummary(cached=work.cached)
    outlook = Outlook(
        len(work.rows),
        work.estimate,
        work.schedule.max_cost,
        work.schedule.jobs,
        is_paid(loaded.renderer),
        _films_to_join(loaded.plan, work.films),
        {
            (row.shot.label, row.shot.variant): variants_said(row.variants, loaded.plan.variants)
            for row in work.rows
        },
    )
    with output.progress(outlook) as reporter:
        ran = shots.render(
            [row.node for row in work.rows],
            graph,
            loaded.cache,
            loaded.renderer,
            request.renderer,
            work.schedule,
            reporter,
            loaded.remote,
        )
        graph = graph.with_resolved(ran.resolved)  # keys that waited on upstream renders
        repicked = _picked_anew(loaded, ran.outcomes, request)
        if repicked is not None:
            ran, repicked = _made_from_the_picked(ran, repicked, loaded, request, work, reporter)
        summary.outcomes, summary.spending = ran.outcomes, ran.spending
        summary.interrupted, summary.fatal = ran.interrupted, ran.fatal
        if ran.resolved or repicked is not None:
            graph = repicked or graph
            with contextlib.suppress(CacheError):  # gc keeps them
                preflight.register(loaded, graph)
        if not summary.interrupted and summary.fatal is None:
            sharing = Sharing(loaded.remote, work.schedule.push, work.cluster)
            where = _where(loaded)
            made = [graph.film(sequence) for sequence in _chosen(work.films, graph)]
            paid = is_paid(loaded.renderer)
            summary.sequences = films.join(made, where, reporter, sharing, check=paid)
        if request.qc == QcMode.STRICT:
            selected = [row.node for row in work.rows] + [shot.key for shot in work.cached]
            summary.refused = _refused(summary, [graph.shot(n) for n in selected], loaded)
    # An interrupted build writes it too: what it paid for and collected is named in git at
    # once, not only after a later build finishes.
    if not request.frozen:
        _write_lock(loaded, graph, summary)
    return summary


def _films_to_join(planned: plan.Plan, chosen: list[Film] | None) -> int:
    """The films the build will join, as planned (a film made before is placed, not joined)."""
    names = None if chosen is None else {film.name for film in chosen}
    joined = (FilmState.NEW, FilmState.CHANGED, FilmState.MISSING)
    return sum(
        1
        for row in planned.film_rows
        if row.state.name in joined and (names is None or row.film.name in names)
    )


def _picked_anew(
    loaded: plan.Loaded, outcomes: list[Outcome], request: BuildRequest
) -> Graph | None:
    """The graph expanded again when the quality check found something in a take this
    build delivered of a shot with several: a take with a finding is never the one picked
    by default, so the films may use another (and what is made of the picked take follows).
    None when nothing changes."""
    if not any(o.findings and o.shot.takes > 1 for o in outcomes):
        return None
    target = request.target
    return plan.graph_for(loaded.spec, loaded.renderer, loaded.cache, target.max_shots)[2]


def _made_from_the_picked(
    ran: shots.ShotsRun,
    repicked: Graph,
    loaded: plan.Loaded,
    request: BuildRequest,
    work: preflight.Work,
    reporter: shots.Reporter,
) -> tuple[shots.ShotsRun, Graph]:
    """The build's second pass: what was deferred (it started from a take the quality check
    then passed over) made from the take picked now, on the same budget."""
    deferred = [o.shot for o in ran.outcomes if o.status == Ran.DEFERRED]
    if not deferred or ran.interrupted or ran.fatal is not None:
        return ran, repicked
    # The same render in the new graph: the same take, or (an upscale or lip-sync, made of
    # whichever take is picked) the one of the take picked now.
    identity = {(n.label, n.variant, n.take): node for node, n in repicked.nodes.items()}
    of_pick = {(n.label, n.variant): node for node, n in repicked.nodes.items() if n.picked}
    nodes = [
        identity.get((n.label, n.variant, n.take)) or of_pick.get((n.label, n.variant))
        for n in deferred
    ]
    again = shots.render(
        [node for node in nodes if node is not None],
        repicked,
        loaded.cache,
        loaded.renderer,
        request.renderer,
        work.schedule,
        reporter,
        loaded.remote,
        ran.spending,
    )
    kept = [o for o in ran.outcomes if o.status != Ran.DEFERRED]
    both = replace(
        again,
        outcomes=kept + again.outcomes,
        resolved={**ran.resolved, **again.resolved},
    )
    return both, repicked.with_resolved(again.resolved)


def _chosen(films: list[Film] | None, graph: Graph) -> list[Film]:
    """The films a build joins (those chosen, by name; else every one), as `graph` has them."""
    if films is None:
        return list(graph.expansion.sequences)
    names = {film.name for film in films}
    return [film for film in graph.expansion.sequences if film.name in names]


def _refused(summary: BuildSummary, selected: list[Node], loaded: plan.Loaded) -> list[str]:
    """--qc strict: what the quality check found in what this build delivers: its films, the
    renders they use, and the picked take of every shot it works on (a film or not)."""
    refused = [
        f"film {outcome.sequence.name}: {qc.said(outcome.findings)}"
        for outcome in summary.sequences
        if outcome.findings
    ]
    used = {render.key: render for o in summary.sequences for render in o.sequence.renders()}
    picked = {render.key: render for render in selected if render.picked}
    for key, render in {**picked, **used}.items():
        record = loaded.cache.clips.get(key)
        if record is not None and record.qc:
            refused.append(f"{qc.named(render)}: {qc.said(record.qc)}")
    return refused


def _where(loaded: plan.Loaded) -> plan.Where:
    return plan.Where(loaded.cache, loaded.lock, loaded.outputs, loaded.films, loaded.remote)


def _write_lock(loaded: plan.Loaded, graph: Graph, summary: BuildSummary) -> None:
    """The lock as the build left things (`graph`: with the keys the build came to know):
    every render the cache holds, and every film that is current, whatever this command
    built."""
    current = films.made(graph.films(), summary.sequences, _where(loaded))
    held = [
        (shot, variants, record)
        for shot, variants in graph.by_key()
        if (record := loaded.cache.clips.get(shot.key)) is not None
    ]
    lock = make_lock(loaded.spec.storyboard.name, loaded.renderer, held, current)
    try:
        if write_lock(loaded.lock_path, lock):
            summary.lock_written = loaded.lock_path
    except OSError as exc:
        summary.fatal = (
            f"{loaded.lock_path}: the lock file could not be written ({exc.strerror or exc}); "
            "the clips are in the cache: build again once the folder is writable, nothing "
            "is rendered twice"
        )
