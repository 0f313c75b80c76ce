"""build = plan + render + assemble + lock. Runs the steps in order; holds no logic of theirs."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from typing import Any

from pipeline.cache import Cache
from pipeline.expand import Sequence, Shot
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
    sequences: list[dict[str, Any]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> bool:
        return (
            self.fatal is not None
            or any(o.status == FAILED for o in self.outcomes)
            or any(s.get("status") == FAILED for s in self.sequences)
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
            "sequences": self.sequences,
        }


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
