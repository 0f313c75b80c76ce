"""Render shots concurrently: slots, per-key locks, retries, budget, journal, stop on failure."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pipeline import hashing, media
from pipeline.cache import Cache, ClipRecord, JournalEntry
from pipeline.errors import MediaError, RenderError
from pipeline.expand import Shot
from pipeline.render import Renderer, RenderJob, RenderResult

RENDERED = "rendered"
CACHED = "cached"
FAILED = "failed"
SKIPPED = "skipped"
LOCK_POLL = 0.1


@dataclass(frozen=True)
class ScheduleOptions:
    jobs: int = 4
    keep_going: bool = False
    retries: int = 3
    retry_delay: float = 1.0
    max_cost: float | None = None
    force: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Outcome:
    shot: Shot
    status: str
    record: ClipRecord | None = None
    error: str | None = None
    seconds: float = 0.0


class Reporter(Protocol):
    def shot_started(self, shot: Shot) -> None: ...

    def shot_finished(self, outcome: Outcome, spent: float) -> None: ...

    def note(self, message: str) -> None: ...


@dataclass
class Scheduler:
    """Runs one build's renders. Its counters live for one run; nothing is global."""

    cache: Cache
    renderer: Renderer
    options: ScheduleOptions
    reporter: Reporter
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    spent: float = 0.0
    in_flight_estimate: float = 0.0
    failure: str | None = None
    fatal: RenderError | None = None
    budget_reached: bool = False

    async def run(self, shots: list[Shot]) -> list[Outcome]:
        self.cache.clean_tmp()
        self._journal = self.cache.journal()
        self._slots = asyncio.Semaphore(max(self.options.jobs, 1))
        tasks = [asyncio.create_task(self._one(shot)) for shot in shots]
        try:
            return list(await asyncio.gather(*tasks))
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _one(self, shot: Shot) -> Outcome:
        fd = await self._lock(shot.key)
        if fd is None:
            return Outcome(shot, SKIPPED, error=self._why_not())
        try:
            record = self.cache.get(shot.key)
            if record is not None and shot.key not in self.options.force:
                # Another build rendered it while this one waited for the key.
                return self._finish(Outcome(shot, CACHED, record))
            await self._slots.acquire()
            held = True
            price = 0.0

            def free_slot(cost: float | None = None) -> None:
                # A slot is for a running render: a clip being downloaded no longer needs it,
                # and from now on the budget counts what the provider says it cost.
                nonlocal held, price
                if cost is not None:
                    self.in_flight_estimate += cost - price
                    price = cost
                if held:
                    held = False
                    self._slots.release()

            try:
                refusal = self._refusal(shot)
                if refusal:
                    return Outcome(shot, SKIPPED, error=refusal)
                price = shot.price or 0.0
                self.in_flight_estimate += price
                try:
                    return self._finish(await self._render(shot, free_slot))
                finally:
                    self.in_flight_estimate -= price
            finally:
                free_slot()
        finally:
            self.cache.unlock(fd)

    async def _lock(self, key: str) -> int | None:
        while True:
            fd = self.cache.try_lock(key)
            if fd is not None or self.stop.is_set():
                return fd
            await asyncio.sleep(LOCK_POLL)

    def _why_not(self) -> str:
        if self.fatal is not None:
            return "not started: the build stopped"
        if self.budget_reached:
            return "not started: the budget (--max-cost) would be passed"
        if self.failure is not None and not self.options.keep_going:
            return "not started: an earlier shot failed (use -k to keep going)"
        if self.stop.is_set():
            return "not started: interrupted"
        return ""

    def _refusal(self, shot: Shot) -> str:
        reason = self._why_not()
        if reason:
            return reason
        limit = self.options.max_cost
        price = shot.price or 0.0
        if limit is not None and self.spent + self.in_flight_estimate + price > limit + 1e-9:
            self.budget_reached = True
            self.reporter.note(
                f"budget: ${self.spent:.2f} spent + ${self.in_flight_estimate:.2f} in flight "
                f"+ ${price:.2f} would pass --max-cost ${limit:.2f}: no new renders"
            )
            return self._why_not()
        return ""

    async def _render(self, shot: Shot, free_slot: Callable[[float | None], None]) -> Outcome:
        started = time.monotonic()
        entry = self._journal.get(shot.key)
        resume = entry.task_uuid if entry and entry.renderer == self.renderer.name else None
        if resume is None:
            self._note_task(shot, None)
        self.reporter.shot_started(shot)
        attempt = 0
        remote: list[str] = [resume] if resume else []  # task ids a provider may hold

        def note_task(task: str) -> None:
            remote.append(task)
            self._note_task(shot, task)

        while True:
            output = self.cache.temp_path()
            job = RenderJob(
                shot=shot,
                output=output,
                note_task=note_task,
                resume_task=resume,
                remote_done=free_slot,
            )
            try:
                result = await self.renderer.render(job)
                record = await asyncio.to_thread(self._store, shot, result)
                self.spent += result.cost or 0.0
            except RenderError as exc:
                _remove(output)
                if exc.fatal:
                    self.fatal = exc
                    self.stop.set()
                    if not remote:
                        self.cache.journal_clear(shot.key)
                    return Outcome(shot, FAILED, error=exc.message)
                if exc.transient and attempt < self.options.retries and not self.stop.is_set():
                    attempt += 1
                    delay = self.options.retry_delay * 2 ** (attempt - 1)
                    delay *= random.uniform(0.8, 1.2)
                    self.reporter.note(
                        f"{shot.label}: {exc.message}; retry {attempt}/{self.options.retries} "
                        f"in {delay:.1f} s"
                    )
                    await asyncio.sleep(delay)
                    resume = None
                    continue
                return self._failed(shot, exc.message, started, exc.keep_journal)
            except MediaError as exc:
                _remove(output)
                return self._failed(shot, f"{shot.label}: {exc.message}", started, False)
            except asyncio.CancelledError:
                _remove(output)
                raise  # the journal keeps the task for the next build
            return Outcome(shot, RENDERED, record, seconds=time.monotonic() - started)

    def _failed(self, shot: Shot, message: str, started: float, keep_journal: bool) -> Outcome:
        if not keep_journal:
            self.cache.journal_clear(shot.key)
        self.cache.failure_write(shot.key, message)
        self.failure = message
        return Outcome(shot, FAILED, error=message, seconds=time.monotonic() - started)

    def _note_task(self, shot: Shot, task: str | None) -> None:
        self.cache.journal_write(
            JournalEntry(
                key=shot.key,
                renderer=self.renderer.name,
                label=shot.label,
                started=time.time(),
                task_uuid=task,
                estimate=shot.price,
            )
        )

    def _store(self, shot: Shot, result: RenderResult) -> ClipRecord:
        """Check the clip against the request, then move it into the cache."""
        info = result.info
        if info is None:
            info = media.validate(result.path, shot.width, shot.height, shot.duration)
        elif (info.width, info.height) != (shot.width, shot.height) or abs(
            info.duration - shot.duration
        ) > 1.0 / info.fps + 1e-3:
            raise MediaError(
                f"clip is {info.width}x{info.height}, {info.duration:.2f} s; "
                f"{shot.width}x{shot.height}, {shot.duration} s was asked for"
            )
        record = self.cache.put(
            shot.key,
            result.path,
            sha256=hashing.sha256_file(result.path),
            duration=info.duration,
            width=info.width,
            height=info.height,
            seed=result.seed,
            cost=result.cost,
            renderer=self.renderer.name,
            remote_ids=result.remote_ids,
            label=shot.label,
        )
        self.cache.journal_clear(shot.key)
        return record

    def _finish(self, outcome: Outcome) -> Outcome:
        self.reporter.shot_finished(outcome, self.spent)
        return outcome


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
