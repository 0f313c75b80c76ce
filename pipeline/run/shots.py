"""Node the graph's nodes concurrently: slots, per-key locks, retries, budget, journal, stop
on failure; a node that starts from another's frame once that render is made. With a team
cache, each key is claimed from the team first (leases.py)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pipeline import hashing, media, qc
from pipeline.cache import Cache, ClipRecord, Failure, JournalEntry
from pipeline.cache.remote import Remote
from pipeline.errors import (
    AccountError,
    CacheError,
    MediaError,
    NotCollected,
    RefusedError,
    RemoteDamaged,
    RemoteError,
    RenderError,
    StoryboardError,
    TaskUnknown,
    TransientError,
)
from pipeline.graph import FrameFinder, Graph
from pipeline.nodes import FrameOf, Node, Still, Upscale
from pipeline.render import Renderer, RendererOptions, RenderJob, RenderResult, make_renderer
from pipeline.retry import SAY_WAITS_FROM, Backoff
from pipeline.run.leases import Team
from pipeline.state import Ran

LOCK_POLL = 0.1


@dataclass(frozen=True)
class ScheduleOptions:
    jobs: int = 4
    keep_going: bool = False
    retries: int = 3  # new tries of a shot whose render failed in a way that may not recur
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0))
    max_cost: float | None = None
    force: frozenset[str] = frozenset()
    push: bool = True  # share rendered clips with the team cache (when there is one)
    # --frozen: the keys the lock names. A shot whose key was known only once its upstream
    # frame existed may render only if the lock names that key.
    frozen: frozenset[str] | None = None


@dataclass(frozen=True)
class Resume:
    """A task an earlier build (or a machine whose lease this build took) sent: collected,
    never sent again."""

    task_uuid: str
    since: float  # when it was sent, as far as this build knows (wall clock)


@dataclass(frozen=True)
class Outcome:
    shot: Node
    status: Ran
    record: ClipRecord | None = None
    error: str | None = None
    seconds: float = 0.0
    warning: str | None = None
    # Collected from a task an earlier build submitted (and paid for).
    collected: bool = False

    @property
    def findings(self) -> qc.Findings:
        """What the quality check found in the clip delivered (nothing when unchecked)."""
        return (self.record.qc or ()) if self.record is not None else ()


@dataclass(frozen=True)
class Outlook:
    """What a build's renders are before they start, for a progress display."""

    renders: int
    estimate: float  # USD, of the new renders
    budget: float | None  # --max-cost or the storyboard's budget:
    jobs: int
    paid: bool
    films: int = 0  # films to join once the renders are done
    # Each render's variants, for a person, by (label, variant of its node): `all 4 variants`.
    variants: Mapping[tuple[str, str], str] = field(default_factory=dict)


class Reporter(Protocol):
    def shot_started(self, shot: Node) -> None: ...

    def shot_phase(self, shot: Node, phase: str, spent: float) -> None: ...

    def shot_finished(self, outcome: Outcome, spent: float) -> None: ...

    def note(self, message: str) -> None: ...


@dataclass
class Spending:
    """The money of one build, as `--max-cost` sees it.

    A render's estimate counts while it runs; the moment the provider reports its cost, that
    cost counts instead, whatever becomes of the clip. A render that finished without a usable
    cost counts at its estimate. Tasks an earlier build submitted were paid by that build:
    collecting them is counted apart and never refused.
    """

    limit: float | None = None
    spent: float = 0.0
    estimated: float = 0.0
    in_flight: float = 0.0
    collected: float = 0.0
    # Paid tasks sent to the provider and still running when the build was cut short: billed
    # (at their estimate, until a build collects them and learns their cost).
    left_running: float = 0.0
    left_running_count: int = 0
    not_downloaded: int = 0  # done and paid at the provider, the download cut short

    @property
    def total(self) -> float:
        return self.spent + self.estimated

    def allows(self, price: float) -> bool:
        return self.limit is None or self.total + self.in_flight + price <= self.limit + 1e-9


@dataclass
class Scheduler:
    """Runs one build's renders. Its counters live for one run; nothing is global."""

    cache: Cache
    renderer: Renderer
    options: ScheduleOptions
    reporter: Reporter
    graph: Graph
    frames: FrameFinder  # finds an upstream render's frame in the cache
    remote: Remote | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    failure: str | None = None
    fatal: StoryboardError | None = None
    budget_reached: bool = False
    spent_before: Spending | None = None  # an earlier pass's, in the same build: it goes on

    def __post_init__(self) -> None:
        self.spending = self.spent_before or Spending(limit=self.options.max_cost)
        self.cut_short: list[Outcome] = []  # the outcomes so far, when the run was cancelled
        # The nodes whose keys became known in this run (their inputs were rendered): the
        # graph with them is the build's next one (Graph.with_resolved).
        self.resolved: dict[str, Node] = {}
        self._left_running: set[str] = set()
        self.team = (
            Team(
                self.remote,
                self.cache,
                self.renderer.name,
                self.reporter.note,
                self.stop,
                lease=self.renderer.paid,
                push=self.options.push,
            )
            if self.remote is not None
            else None
        )

    async def run(self, nodes: list[str]) -> list[Outcome]:
        """Node the graph's `nodes`; one that starts from another's frame waits for that
        render (in no slot), then renders as soon as its frame exists."""
        self._slots = asyncio.Semaphore(max(self.options.jobs, 1))
        loop = asyncio.get_running_loop()
        self._done: dict[str, asyncio.Future[Outcome]] = {
            node: loop.create_future() for node in nodes
        }
        # The frames that dependents of this run start from, by the node they come from;
        # taken while the render is checked, and by the key it has then.
        self._wanted = self.graph.frames_taken(nodes)
        self._taken: dict[str, tuple[str | float, ...]] = {}
        self._variants: dict[str, tuple[str, ...]] = {}  # by key: the variants it serves
        tasks = [asyncio.create_task(self._settled(node)) for node in nodes]
        try:
            return list(await asyncio.gather(*tasks))
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            ended = await asyncio.gather(*tasks, return_exceptions=True)
            self.cut_short = self._cut_short(nodes, ended)
            raise

    def _cut_short(self, nodes: list[str], ended: list[Any]) -> list[Outcome]:
        """The outcomes of a run cancelled at once: what finished, and what never started
        (the renders left running at the provider are counted in the spending)."""
        outcomes = []
        for node, result in zip(nodes, ended, strict=True):
            shot = self.graph.shot(node)
            if isinstance(result, Outcome):
                outcomes.append(result)
            elif shot.key not in self._left_running:
                outcomes.append(Outcome(shot, Ran.SKIPPED, error="not started: interrupted"))
        return outcomes

    async def _settled(self, node: str) -> Outcome:
        """The node's outcome, told to the renders that wait on its frames."""
        done = self._done[node]
        try:
            outcome = await self._one(node)
        except BaseException:
            done.cancel()
            raise
        done.set_result(outcome)
        return outcome

    async def _one(self, node: str) -> Outcome:
        shot = self.graph.shot(node)
        if shot.pending:
            ready = await self._with_frames(node)
            if isinstance(ready, Outcome):
                # A deferred render is made in the build's next pass: not done yet.
                return ready if ready.status == Ran.DEFERRED else self._finish(ready)
            shot = ready
            if self._frozen_out(shot):
                error = (
                    f"--frozen: {shot.label} starts from a frame that makes a shot the lock does "
                    "not name: not rendered"
                )
                return self._finish(Outcome(shot, Ran.FAILED, error=error))
        self._taken[shot.key] = self._wanted.get(node, ())
        self._variants[shot.key] = self.graph.variants.get(node, ())
        fd = await self._lock(shot)
        if fd is None:
            return Outcome(shot, Ran.SKIPPED, error=self._why_not())
        started = time.monotonic()
        try:
            return await self._locked(shot, started)
        except RemoteDamaged as exc:
            return self._failed(shot, exc, started)
        except (CacheError, RemoteError) as exc:
            # Without the team cache there is no lease: going on could pay twice for a shot.
            self._stop_all(exc)
            return self._failed(shot, exc, started)
        except Exception as exc:
            # A fault of this tool must not take other shots' paid tasks down with it: this
            # shot fails, and its journal entry stays for the next build.
            failure = NotCollected(f"shot '{shot.label}': internal error: {exc!r}")
            return self._failed(shot, failure, started)
        finally:
            self.cache.locks.unlock(fd)

    async def _locked(self, shot: Node, started: float) -> Outcome:
        record = self.cache.clips.get(shot.key)
        forced = shot.key in self.options.force
        if record is not None and not forced:
            # Another build rendered it while this one waited for the key.
            return self._finish(Outcome(shot, Ran.CACHED, record))
        # Asked here, once its key is known (a render that starts from another's output has
        # it only now): a request the provider refused is refused again, and never resent.
        failure = self.cache.failures.get(shot.key)
        if failure is not None and failure.final and not forced:
            error = (
                f"shot '{shot.label}': refused before ({failure.code}), not sent again; "
                f"--force {shot.one_render} to try again{_costing(shot.price)}"
            )
            return self._finish(Outcome(shot, Ran.FAILED, error=error))
        # Read again now that the key is this build's: a build that died holding it may have
        # sent a task meanwhile, which must be collected, not paid for again.
        entry = self.cache.journal.read(shot.key)
        resume = (
            Resume(entry.task_uuid, entry.started)
            if entry is not None and entry.task_uuid and entry.renderer == self.renderer.name
            else None
        )
        if self.team is None:
            return await self._rendered(shot, resume, started)
        return await self._shared(shot, resume, forced, started)

    async def _shared(
        self, shot: Node, resume: Resume | None, forced: bool, started: float
    ) -> Outcome:
        """With a team cache: its clip if it has one; else the key's lease (see leases.py),
        the render, and the clip shared before the lease goes."""
        assert self.team is not None
        claim = await self.team.claim(shot, forced)
        if claim.record is not None:
            return self._pulled(shot, claim.record, started)
        if claim.stopped:
            return Outcome(shot, Ran.SKIPPED, error=self._why_not())
        if resume is None and claim.task:
            resume = Resume(claim.task, time.time())  # sent before this moment, not after
            self._note_task(shot, claim.task)  # this machine now answers for that task
        async with self.team.holding(shot, claim):
            outcome = await self._rendered(shot, resume, started)
            if outcome.status == Ran.RENDERED and outcome.record is not None:
                kept, warning = await self.team.share(shot, outcome.record, forced)
                outcome = replace(outcome, record=kept, warning=warning or outcome.warning)
            return outcome

    def _pulled(self, shot: Node, record: ClipRecord, started: float) -> Outcome:
        """The team's clip of the key is this cache's now. A task this cache journaled for it
        is not collected: the team's clip is the key's (whoever took over this build's lease
        collected that task, or another machine's clip reached the team first)."""
        self.cache.journal.clear(shot.key)
        return self._finish(Outcome(shot, Ran.PULLED, record, seconds=_since(started)))

    async def _rendered(self, shot: Node, resume: Resume | None, started: float) -> Outcome:
        """Node (or collect) until it succeeds, fails for good, or may not be tried again."""
        retries = 0
        while True:
            try:
                return await self._render_once(shot, resume, started)
            except TaskUnknown as exc:
                if resume is None:  # this build's own task was lost: a failed try like any
                    if retries >= self.options.retries or self.stop.is_set():
                        return self._failed(shot, exc, started)
                    retries += 1
                self.reporter.note(f"{exc.message}: rendering it anew")
                resume = None
            except TransientError as exc:
                if retries >= self.options.retries or self.stop.is_set():
                    return self._failed(shot, exc, started)
                delay = self.options.backoff.delay(retries)
                retries += 1
                self.reporter.note(
                    f"{exc.message}; retry {retries}/{self.options.retries} in {delay:.1f} s"
                )
                await asyncio.sleep(delay)
                resume = None
            except AccountError as exc:
                self._stop_all(exc)
                return self._failed(shot, exc, started)
            except (RenderError, MediaError) as exc:
                return self._failed(shot, exc, started)

    async def _render_once(self, shot: Node, resume: Resume | None, started: float) -> Outcome:
        """One render: a new task (in a concurrency slot, within the budget) or the collection
        of a journaled one (already running and paid for: no slot, no budget)."""
        price = 0.0 if resume else (shot.price or 0.0)
        try:
            output = self.cache.tmp.path()
        except OSError as exc:
            raise CacheError(
                f"{self.cache.tmp.folder}: cannot write to the cache ({exc.strerror or exc})",
                "free disk space or fix the cache folder, then build again",
            ) from None
        held = False
        if resume is None:
            await self._slots.acquire()
            held = True
        # Asked once the slot is free: the build may have stopped, or spent, meanwhile.
        reason = self._why_not() if resume else self._refusal(shot)
        if reason:
            if held:
                self._slots.release()
            return Outcome(shot, Ran.SKIPPED, error=reason)
        if resume is None:
            try:
                self._note_task(shot, None)
            except CacheError:
                self._slots.release()
                raise
        over = False
        self.spending.in_flight += price

        def remote_done(cost: float | None) -> None:
            # The remote render is over: its money is spent, and downloading needs no slot.
            nonlocal held, over
            if not over:
                over = True
                self.spending.in_flight -= price
                if resume is not None:
                    self.spending.collected += cost or 0.0
                elif cost is None:
                    self.spending.estimated += price
                else:
                    self.spending.spent += cost
                self._journal_cost(shot, cost)
            if held:
                held = False
                self._slots.release()

        sent = False

        def note_task(task: str) -> None:
            nonlocal sent
            self._note_task(shot, task)
            sent = True

        job = RenderJob(
            shot=shot,
            output=output,
            note_task=note_task,
            resume_task=resume.task_uuid if resume else None,
            resumed_at=resume.since if resume else None,
            remote_done=remote_done,
            frames=self._taken.get(shot.key, ()),
            variants=self._variants.get(shot.key, ()),
            phase=lambda phase: self.reporter.shot_phase(shot, phase, self.spending.total),
        )
        self.reporter.shot_started(shot)
        try:
            result = await self.renderer.render(job)
            record, warning = await asyncio.to_thread(self._store, shot, result)
        except BaseException as exc:
            _remove(output)
            for at in job.frames:
                _remove(output.with_name(f"{output.name}.{at}.png"))
            if isinstance(exc, asyncio.CancelledError) and sent:
                self._left_running.add(shot.key)  # the journal keeps it: collected next time
                if over:
                    self.spending.not_downloaded += 1
                elif not resume:
                    self.spending.left_running += price
                    self.spending.left_running_count += 1
            raise
        finally:
            if not over:
                over = True
                self.spending.in_flight -= price
            if held:
                self._slots.release()
        outcome = Outcome(
            shot,
            Ran.RENDERED,
            record,
            seconds=time.monotonic() - started,
            warning=warning,
            collected=resume is not None,
        )
        return self._finish(outcome)

    async def _lock(self, shot: Node) -> int | None:
        """The key's lock; while another build renders the key, wait (and say so)."""
        started = time.monotonic()
        said = False
        while True:
            fd = self.cache.locks.try_lock(shot.key)
            if fd is not None or self.stop.is_set():
                return fd
            if not said and time.monotonic() - started >= SAY_WAITS_FROM:
                said = True
                self.reporter.note(
                    f"{shot.label}: another build is rendering it; waiting for that build"
                )
            await asyncio.sleep(LOCK_POLL)

    def _frozen_out(self, shot: Node) -> bool:
        """--frozen, and a shot whose key (known only now) the lock does not name."""
        frozen = self.options.frozen
        return frozen is not None and shot.key not in frozen and not self.cache.clips.get(shot.key)

    async def _with_frames(self, node: str) -> Node | Outcome:
        """The node's render with the frames of its upstream renders, once they exist (the
        graph resolves its key); or why it is not rendered (an upstream render failed or did
        not start): nothing is paid for it."""
        shot = self.graph.shot(node)
        for ahead in shot.waiting:
            waiting = self._done.get(ahead.upstream)
            if waiting is None:
                # Cached, yet its frame could not be taken when the build was planned.
                error = (
                    f"{shot.label}: the frame of {ahead.label} cannot be taken from its cached "
                    f"clip: render it again with --force {ahead.label}"
                )
                return Outcome(shot, Ran.FAILED, error=error)
            upstream = await asyncio.shield(waiting)
            deferred = _deferred(shot, ahead, upstream)
            if deferred is not None:
                return deferred
            if upstream.record is None:
                status = Ran.SKIPPED if upstream.status == Ran.SKIPPED else Ran.FAILED
                what = "did not start" if status == Ran.SKIPPED else "failed"
                return Outcome(
                    shot,
                    status,
                    error=f"not rendered: it starts from {ahead.label}, whose render {what}",
                )
            try:
                found = await asyncio.to_thread(self.frames, upstream.shot, ahead.frame)
            except (MediaError, OSError) as exc:
                problem = exc.message if isinstance(exc, MediaError) else str(exc)
                found, error = None, problem
            else:
                error = "it is not in the cache"
            if found is None:
                return Outcome(
                    shot,
                    Ran.FAILED,
                    error=f"{shot.label}: the frame of {ahead.label} could not be taken: {error}",
                )
            shot = self.graph.resolve(shot, ahead.slot, *found)
            self.resolved[node] = shot
        return shot

    def _stop_all(self, error: StoryboardError) -> None:
        if self.fatal is None:
            self.fatal = error
        self.stop.set()

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

    def _refusal(self, shot: Node) -> str:
        """Why a new task may not be submitted now; "" when it may."""
        reason = self._why_not()
        if reason:
            return reason
        price = shot.price or 0.0
        if not self.spending.allows(price):
            self.budget_reached = True
            spending = self.spending
            self.reporter.note(
                f"budget: ${spending.total:.2f} spent + ${spending.in_flight:.2f} in flight "
                f"+ ${price:.2f} would pass --max-cost ${spending.limit:.2f}: no new renders"
            )
            return self._why_not()
        return ""

    def _failed(self, shot: Node, error: StoryboardError, started: float) -> Outcome:
        message = error.message
        if isinstance(error, MediaError):
            message = f"{shot.label}: {message}"
        # The journal entry goes only when no task of this shot can still deliver.
        if isinstance(error, MediaError) or (isinstance(error, RenderError) and error.task_over):
            self.cache.journal.clear(shot.key)
        code = error.code if isinstance(error, RefusedError) else ""
        self.cache.failures.write(shot.key, Failure(message=message, code=code, final=bool(code)))
        self.failure = message
        return self._finish(
            Outcome(shot, Ran.FAILED, error=message, seconds=time.monotonic() - started)
        )

    def _note_task(self, shot: Node, task: str | None) -> None:
        self.cache.journal.write(
            JournalEntry(
                key=shot.key,
                renderer=self.renderer.name,
                label=shot.label,
                started=time.time(),
                task_uuid=task,
                estimate=shot.price,
            )
        )
        if self.team is not None and task is not None:
            self.team.note_task(shot.key, task)

    def _journal_cost(self, shot: Node, cost: float | None) -> None:
        """Keep what a task cost beside its id, so that a clip never collected is still
        known as paid for. Not flushed: after a crash the provider tells the cost again."""
        entry = self.cache.journal.read(shot.key)
        if entry is not None and cost is not None:
            self.cache.journal.write(entry.model_copy(update={"cost": cost}), durable=False)

    def _store(self, shot: Node, result: RenderResult) -> tuple[ClipRecord, str | None]:
        """Move the clip into the cache. A paid clip is kept even if it is not what was asked
        (it is recorded as delivered, and the user is told); a free one must be exact."""
        # A paid take is checked for what it shows (qc.py), measured as it is decoded.
        watch = qc.watch_for(shot) if self.renderer.paid else None
        info = result.info or media.check_render(result.path, shot.output, watch=watch)[0]
        findings = qc.of_render(shot, info) if info.signals is not None else None
        warning = None
        # A sound's length is what the words take (known once spoken): not checked. An
        # upscaler picks the size it delivers (the film scales it to its own).
        sized = not isinstance(shot, Upscale) and (info.width, info.height) != (
            shot.width,
            shot.height,
        )
        if not shot.sound and (
            sized
            or (not isinstance(shot, Still) and abs(info.duration - shot.duration) > 0.5 / info.fps)
        ):
            what = (
                f"{info.width}x{info.height} ({shot.width}x{shot.height} was asked for)"
                if isinstance(shot, Still)
                else f"{info.width}x{info.height}, {info.duration:.2f} s "
                f"({shot.width}x{shot.height}, {shot.duration} s was asked for)"
            )
            if not self.renderer.paid:
                raise MediaError(f"the clip is {what}")
            warning = f"{shot.label}: the clip delivered is {what}: kept (it was paid for)"
        try:
            record = self.cache.clips.put(
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
                qc=findings,
            )
        except OSError as exc:
            raise CacheError(
                f"shot '{shot.label}': the clip could not be stored in the cache "
                f"({exc.strerror or exc})",
                "it stays in the journal: free disk space or fix the cache folder, then build "
                "again (nothing is paid twice)",
            ) from None
        for at, (image, digest) in result.frames.items():
            with contextlib.suppress(OSError):  # else a dependent takes the frame itself
                self.cache.frames.adopt(record.sha256, at, image, digest)
        self.cache.journal.clear(shot.key)
        self.cache.failures.clear(shot.key)
        return record, warning

    def _finish(self, outcome: Outcome) -> Outcome:
        self.reporter.shot_finished(outcome, self.spending.total)
        return outcome


def _deferred(shot: Node, ahead: FrameOf, upstream: Outcome) -> Outcome | None:
    """Why `shot` is not made from `upstream` now, if it is not: that take was picked by
    default and the quality check found something in it (another take will be picked, and
    what starts from the take is made from that one: paid once, for the take a film uses)."""
    if upstream.status == Ran.DEFERRED:
        return Outcome(shot, Ran.DEFERRED, error=f"it starts from {ahead.label}, deferred")
    made = upstream.shot
    if not upstream.findings or made.takes == 1 or made.chosen:
        return None
    error = (
        f"not made from {ahead.label} take {made.take}: the quality check found "
        f"{qc.said(upstream.findings)} in it"
    )
    return Outcome(shot, Ran.DEFERRED, error=error)


def _costing(price: float | None) -> str:
    return f" (${price:.2f})" if price else ""


def _since(started: float) -> float:
    return time.monotonic() - started


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


@dataclass
class ShotsRun:
    """What the shot step did: each render's outcome, the money, and how it ended."""

    outcomes: list[Outcome] = field(default_factory=list)
    spending: Spending = field(default_factory=Spending)
    interrupted: bool = False
    fatal: str | None = None  # why the build stopped, with its hint
    resolved: dict[str, Node] = field(default_factory=dict)  # nodes whose keys became known


def render(
    nodes: list[str],
    graph: Graph,
    cache: Cache,
    renderer_name: str,
    renderer_options: RendererOptions,
    options: ScheduleOptions,
    reporter: Reporter,
    remote: Remote | None = None,
    spent_before: Spending | None = None,
) -> ShotsRun:
    """Render the graph's `nodes`; the first Ctrl-C stops new work, a second one exits at
    once. `spent_before`: the spending of the build's earlier pass, which this one goes on
    counting (one budget for the build)."""
    return asyncio.run(
        _render(
            nodes,
            graph,
            cache,
            renderer_name,
            (renderer_options, options),
            reporter,
            remote,
            spent_before,
        )
    )


async def _render(
    nodes: list[str],
    graph: Graph,
    cache: Cache,
    renderer_name: str,
    given: tuple[RendererOptions, ScheduleOptions],
    reporter: Reporter,
    remote: Remote | None,
    spent_before: Spending | None,
) -> ShotsRun:
    renderer_options, options = given
    summary = ShotsRun(spending=spent_before or Spending())
    if not nodes:
        return summary
    renderer = make_renderer(renderer_name, cache, renderer_options, reporter.note)
    scheduler = Scheduler(
        cache, renderer, options, reporter, graph, cache.frame, remote, spent_before=spent_before
    )
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
        summary.outcomes = scheduler.cut_short
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
        await renderer.aclose()
    summary.spending = scheduler.spending
    summary.resolved = scheduler.resolved
    fatal = scheduler.fatal
    if fatal is not None:
        summary.fatal = fatal.message + (f"\n  hint: {fatal.hint}" if fatal.hint else "")
    return summary
