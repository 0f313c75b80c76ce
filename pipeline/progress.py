"""Progress for long builds: a live display on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import heapq
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from pipeline import qc
from pipeline.errors import printable
from pipeline.nodes import Node
from pipeline.render import CHECKING, DOWNLOADING, RUNNING
from pipeline.run.shots import Outcome, Outlook
from pipeline.state import Joined, Ran

if TYPE_CHECKING:
    from pipeline.build import BuildSummary

QUIET, NORMAL, VERBOSE = 0, 1, 2
PLAIN_EVERY = 30.0  # seconds between the plain reporter's lines on where the renders stand
SHOWN_RUNNING = 8  # renders under way listed on the live display


def _describe(outcome: Outcome, outlook: Outlook) -> str:
    what = _what(outcome.shot, outlook)
    if outcome.status == Ran.RENDERED and outcome.record is not None:
        cost = outcome.record.cost
        money = f"${cost:.2f}" if cost is not None else "cost not reported"
        verb = "collected" if outcome.collected else "rendered"
        paid = ", paid by an earlier build" if outcome.collected else ""
        text = f"{verb} {what} ({outcome.seconds:.1f} s, {money}{paid})"
        text += f"\n  warning: {outcome.warning}" if outcome.warning else ""
        return text + _findings(outcome)
    if outcome.status == Ran.CACHED:
        return f"cached   {what} (rendered meanwhile by another build)"
    if outcome.status == Ran.PULLED and outcome.record is not None:
        size = outcome.record.bytes / 1e6
        text = f"fetched  {what} (from the team cache, {size:.1f} MB, {outcome.seconds:.1f} s)"
        return text + _findings(outcome)
    return f"{outcome.status:8} {what}: {outcome.error}"


def _findings(outcome: Outcome) -> str:
    """The quality check's warning on a take delivered, on a line of its own."""
    found = outcome.findings
    return f"\n  warning: {qc.warning(outcome.shot, found)}" if found else ""


def _said_anyway(outcome: Outcome) -> bool:
    """Failures, warnings and findings are said even with -q."""
    return outcome.status == Ran.FAILED or bool(outcome.warning or outcome.findings)


def _worth_saying(message: str, verbosity: int) -> bool:
    """Budget stops, errors and interruptions are said even with -q."""
    return verbosity >= NORMAL or message.startswith(
        ("error", "warning", "budget", "stopping", "failed")
    )


def _what(shot: Node, outlook: Outlook) -> str:
    """`bed [all 4 variants]`, `vo [yuzu-en, cocoa-en]`, `pour [yuzu-en] take 2`."""
    variants = outlook.variants.get((shot.label, shot.variant), shot.variant)
    what = shot.label + (f" [{variants}]" if variants else "")
    return what + (f" take {shot.take}" if shot.takes > 1 else "")


def clock(seconds: float) -> str:
    """0:42, 12:05, 1:02:05."""
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{rest:02}" if hours else f"{minutes}:{rest:02}"


def _about(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(round(seconds / 5) * 5, 5)} s left"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


@dataclass
class Running:
    what: str
    phase: str
    since: float


class Tally:
    """Where a build's renders stand: waiting, running (and in which phase), done; the money
    against the budget; the time left, from how long this build's renders took. Both
    reporters show it; a timer thread reads it, hence the lock."""

    def __init__(self, outlook: Outlook, now: Callable[[], float] = time.monotonic) -> None:
        self.outlook = outlook
        self.now = now
        self.running: dict[str, Running] = {}
        self.done = 0
        self.failed = 0
        self.skipped = 0
        self.spent = 0.0
        self.took: list[float] = []  # seconds of each render this build made
        self.joins = Joins(outlook.films)
        self.lock = threading.Lock()

    def start(self, shot: Node) -> None:
        with self.lock:
            self.running[shot.key] = Running(_what(shot, self.outlook), RUNNING, self.now())

    def phase(self, shot: Node, phase: str, spent: float) -> None:
        with self.lock:
            self.spent = spent
            entry = self.running.get(shot.key)
            if entry is not None:
                entry.phase = phase

    def finish(self, outcome: Outcome, spent: float) -> None:
        with self.lock:
            self.running.pop(outcome.shot.key, None)
            self.spent = spent
            if outcome.status == Ran.SKIPPED:
                self.skipped += 1
                return
            self.done += 1
            self.failed += outcome.status == Ran.FAILED
            if outcome.status == Ran.RENDERED and not outcome.collected:
                self.took.append(outcome.seconds)

    @property
    def waiting(self) -> int:
        return max(self.outlook.renders - self.done - self.skipped - len(self.running), 0)

    def time_left(self) -> float | None:
        """None until a render of this build has finished: nothing else says how long one
        takes (Runware publishes no render times)."""
        if not self.took:
            return None
        typical = statistics.median(self.took)
        now = self.now()
        lanes = [max(typical - (now - r.since), 0.0) for r in self.running.values()]
        lanes += [0.0] * max(self.outlook.jobs - len(lanes), 0)  # slots free now
        lanes = lanes or [0.0]
        heapq.heapify(lanes)
        for _ in range(self.waiting):  # each waiting render starts on the first lane free
            heapq.heappush(lanes, heapq.heappop(lanes) + typical)
        return max(lanes)

    def film_started(self, name: str) -> None:
        with self.lock:
            self.joins.started(name, self.now())

    def film_finished(self, name: str, ok: bool) -> None:
        with self.lock:
            self.joins.finished(name, ok, self.now())

    def films_joining(self, count: int) -> None:
        with self.lock:
            self.joins = Joins(count, joining=True)

    def line(self) -> str:
        """Where the build stands in one line: its renders, then its joins."""
        head, *rest = self.parts()
        return f"{self.step}: {head}" + "".join(f"; {part}" for part in rest)

    @property
    def step(self) -> str:
        return "joining films" if self.joins.joining else "rendering"

    def parts(self) -> list[str]:
        """What is done and under way; the money (of a paid build); the time left."""
        with self.lock:
            if self.joins.joining:
                return self.joins.parts(self.now())
            phases = [entry.phase for entry in self.running.values()]
            counts = [f"{self.done} of {self.outlook.renders} done"]
            if self.failed:
                counts.append(f"{self.failed} failed")
            counts.append(f"{self.waiting} waiting")
            counts += [f"{phases.count(p)} {p}" for p in (RUNNING, DOWNLOADING, CHECKING)]
            parts = [", ".join(counts)]
            if self.outlook.paid:
                budget = self.outlook.budget
                parts.append(
                    f"spent ${self.spent:.2f}"
                    + (f" of the ${budget:.2f} budget" if budget is not None else "")
                    + f" (this build's renders: about ${self.outlook.estimate:.2f})"
                )
            left = self.time_left()
            parts.append(_about(left) if left is not None else "time left: once one is done")
            if self.joins.total:
                parts.append(f"then {self.joins.total} film(s) to join")
            return parts

    def rows(self, limit: int = SHOWN_RUNNING) -> list[tuple[str, str, str]]:
        """The renders under way, the longest running first: (what, phase, elapsed); the
        films being joined, once the renders are done."""
        with self.lock:
            now = self.now()
            if self.joins.joining:
                return [
                    (name, "joining", clock(now - since))
                    for name, since in self.joins.running.items()
                ]
            entries = sorted(self.running.values(), key=lambda r: r.since)
            return [(r.what, r.phase, clock(now - r.since)) for r in entries[:limit]]

    @property
    def under_way(self) -> int:
        return len(self.joins.running) if self.joins.joining else len(self.running)


@dataclass
class Joins:
    """Where a build's film joins stand: how many, done, failed, under way; the time left,
    from how long this build's joins took (films are joined one at a time here)."""

    total: int
    joining: bool = False  # the renders are done: the films are being joined
    done: int = 0
    failed: int = 0
    running: dict[str, float] = field(default_factory=dict)  # film name: when it started
    took: list[float] = field(default_factory=list)

    def started(self, name: str, now: float) -> None:
        self.running[name] = now

    def finished(self, name: str, ok: bool, now: float) -> None:
        since = self.running.pop(name, now)
        self.done += 1
        self.failed += not ok
        if ok:
            self.took.append(now - since)

    def parts(self, now: float) -> list[str]:
        counts = [f"{self.done} of {self.total} done"]
        if self.failed:
            counts.append(f"{self.failed} failed")
        counts.append(f"{len(self.running)} joining")
        left = self.time_left(now)
        return [
            ", ".join(counts),
            _about(left) if left is not None else "time left: once one is done",
        ]

    def time_left(self, now: float) -> float | None:
        if not self.took:
            return None
        typical = statistics.median(self.took)
        under_way = sum(max(typical - (now - since), 0.0) for since in self.running.values())
        waiting = max(self.total - self.done - len(self.running), 0)
        return under_way + waiting * typical


class PlainReporter:
    """One line per event on stderr, and every `every` seconds a line on where the renders
    stand: for logs, CI and pipes, where a live display cannot be drawn."""

    def __init__(
        self,
        outlook: Outlook,
        verbosity: int = NORMAL,
        stream: TextIO | None = None,
        every: float = PLAIN_EVERY,
    ) -> None:
        self.tally = Tally(outlook)
        self.verbosity = verbosity
        self.stream = stream or sys.stderr
        self.every = every
        self._printing = threading.Lock()  # the timer's lines and the build's, whole
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def __enter__(self) -> PlainReporter:
        if self.verbosity > QUIET and self.tally.outlook.renders:
            self._timer = threading.Thread(target=self._tell, name="progress", daemon=True)
            self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()

    def _tell(self) -> None:
        while not self._stop.wait(self.every):
            self._print(self.tally.line())

    def shot_started(self, shot: Node) -> None:
        self.tally.start(shot)
        if self.verbosity >= VERBOSE:
            self._print(f"started  {shot.label} [{shot.key[:10]}]")

    def shot_phase(self, shot: Node, phase: str, spent: float) -> None:
        self.tally.phase(shot, phase, spent)

    def shot_finished(self, outcome: Outcome, spent: float) -> None:
        self.tally.finish(outcome, spent)
        if _said_anyway(outcome) or self.verbosity >= NORMAL:
            done = self.tally.done
            self._print(
                f"[{done}/{self.tally.outlook.renders}] {_describe(outcome, self.tally.outlook)}"
            )

    def note(self, message: str) -> None:
        if _worth_saying(message, self.verbosity):
            self._print(message)

    def films_joining(self, count: int) -> None:
        self.tally.films_joining(count)
        if count and self.verbosity > QUIET and self._timer is None:
            self._timer = threading.Thread(target=self._tell, name="progress", daemon=True)
            self._timer.start()

    def film_started(self, name: str) -> None:
        self.tally.film_started(name)

    def film_finished(self, name: str, ok: bool) -> None:
        self.tally.film_finished(name, ok)

    def _print(self, text: str) -> None:
        with self._printing:
            print(printable(text), file=self.stream, flush=True)


class RichReporter:
    """A live display on the terminal: the state line (waiting, running, downloading,
    checking, done; spend against the budget; time left) and each render under way with its
    phase and elapsed time; a line per finished render printed above it."""

    def __init__(self, outlook: Outlook, verbosity: int = NORMAL) -> None:
        from rich.console import Console
        from rich.live import Live

        self.tally = Tally(outlook)
        self.verbosity = verbosity
        self.console = Console(stderr=True)
        self.live = Live(
            console=self.console,
            get_renderable=self._display,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def _display(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        rows = self.tally.rows()
        table = Table.grid(padding=(0, 2))
        for column in ("what", "phase", "elapsed"):
            table.add_column(column, justify="right" if column == "elapsed" else "left")
        for what, phase, elapsed in rows:
            style = "cyan" if phase in (RUNNING, "joining") else "blue"
            table.add_row(Text("  " + printable(what)), Text(phase, style=style), elapsed)
        more = self.tally.under_way - len(rows)
        counts, *rest = self.tally.parts()
        lines: list[Any] = [
            Text(f"{self.tally.step}: {counts}", style="bold"),
            Text(" · ".join(rest)),
        ]
        if rows:
            lines.append(table)
        if more > 0:
            lines.append(Text(f"  and {more} more", style="dim"))
        return Group(*lines)

    def __enter__(self) -> RichReporter:
        self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.stop()

    def shot_started(self, shot: Node) -> None:
        self.tally.start(shot)
        if self.verbosity >= VERBOSE:
            self._print(f"started  {shot.label} [{shot.key[:10]}]", "dim")

    def shot_phase(self, shot: Node, phase: str, spent: float) -> None:
        self.tally.phase(shot, phase, spent)

    def shot_finished(self, outcome: Outcome, spent: float) -> None:
        self.tally.finish(outcome, spent)
        style = {
            Ran.RENDERED: "green",
            Ran.CACHED: "green",
            Ran.PULLED: "green",
            Ran.FAILED: "red",
        }.get(outcome.status, "yellow")
        if _said_anyway(outcome) or self.verbosity >= NORMAL:
            self._print(_describe(outcome, self.tally.outlook), style)

    def note(self, message: str) -> None:
        if _worth_saying(message, self.verbosity):
            self._print(message, "")

    def films_joining(self, count: int) -> None:
        self.tally.films_joining(count)

    def film_started(self, name: str) -> None:
        self.tally.film_started(name)

    def film_finished(self, name: str, ok: bool) -> None:
        self.tally.film_finished(name, ok)

    def _print(self, text: str, style: str) -> None:
        from rich.text import Text  # a label may hold brackets: never read as markup

        self.console.print(Text(printable(text), style=style), highlight=False)


def make_reporter(outlook: Outlook, verbosity: int) -> PlainReporter | RichReporter:
    if sys.stderr.isatty() and verbosity > QUIET:
        return RichReporter(outlook, verbosity)
    return PlainReporter(outlook, verbosity)


def summary_line(summary: BuildSummary) -> str:
    """How a build ended, in words: what it rendered and paid, what it only collected (paid
    by an earlier build), and what an interrupt left running (paid, collected next time), so
    that the lines of a build and of its resume add up to what the provider billed."""
    data = summary.to_json()
    spending = summary.spending
    renders = [
        f"{data['rendered']} rendered",
        *(
            [
                f"{data['collected']} collected (paid ${data['collected_cost']:.2f} by an earlier build)"
            ]
            if data["collected"]
            else []
        ),
        f"{data['from_cache']} from cache",
        *([f"{data['pulled']} from the team cache"] if data["pulled"] else []),
        f"{data['failed']} failed",
        *([f"{data['skipped']} not started"] if data["skipped"] else []),
    ]
    joined = {status: 0 for status in Joined}
    for outcome in summary.sequences:
        joined[outcome.status] += 1
    films = [f"{joined[Joined.BUILT]} films joined"]
    if joined[Joined.PLACED]:
        films.append(f"{joined[Joined.PLACED]} placed (made before)")
    films.append(f"{joined[Joined.CURRENT]} up to date")
    money = f"spent ${spending.total:.2f}"
    if spending.left_running_count:
        money += (
            f"; {spending.left_running_count} render(s) left running at the provider, about "
            f"${spending.left_running:.2f}, already paid: the next build collects them without "
            f"paying again (${spending.total + spending.left_running:.2f} in all)"
        )
    if spending.not_downloaded:
        money += (
            f"; {spending.not_downloaded} paid render(s) not downloaded: the next build "
            "collects them"
        )
    head = "interrupted" if summary.interrupted else "done"
    line = f"{head}: {', '.join(renders)}; {', '.join(films)}; {money}"
    for outcome in summary.sequences:
        if outcome.status in (Joined.BLOCKED, Joined.FAILED):
            line += f"\n  sequence {outcome.sequence.name} {outcome.status}: {outcome.error}"
    for refused in summary.refused:
        line += f"\n  --qc strict: {refused}"
    return line
