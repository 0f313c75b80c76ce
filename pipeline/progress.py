"""Progress for long builds: a rich bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from pipeline.errors import printable
from pipeline.nodes import Shot
from pipeline.run.shots import Outcome
from pipeline.state import Ran

QUIET, NORMAL, VERBOSE = 0, 1, 2


def _describe(outcome: Outcome) -> str:
    shot = outcome.shot
    what = shot.label + (f" [{shot.variant}]" if shot.variant else "")
    if shot.takes > 1:
        what += f" take {shot.take}"
    if outcome.status == Ran.RENDERED and outcome.record is not None:
        cost = outcome.record.cost
        money = f"${cost:.2f}" if cost is not None else "cost not reported"
        verb = "collected" if outcome.collected else "rendered"
        paid = ", paid by an earlier build" if outcome.collected else ""
        text = f"{verb} {what} ({outcome.seconds:.1f} s, {money}{paid})"
        return text + (f"\n  warning: {outcome.warning}" if outcome.warning else "")
    if outcome.status == Ran.CACHED:
        return f"cached   {what} (rendered meanwhile by another build)"
    if outcome.status == Ran.PULLED and outcome.record is not None:
        size = outcome.record.bytes / 1e6
        return f"fetched  {what} (from the team cache, {size:.1f} MB, {outcome.seconds:.1f} s)"
    return f"{outcome.status:8} {what}: {outcome.error}"


def _worth_saying(message: str, verbosity: int) -> bool:
    """Budget stops, errors and interruptions are said even with -q."""
    return verbosity >= NORMAL or message.startswith(
        ("error", "warning", "budget", "stopping", "failed")
    )


class PlainReporter:
    """One line per event on stderr: for logs, CI and pipes."""

    def __init__(self, total: int, verbosity: int = NORMAL, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.verbosity = verbosity
        self.stream = stream or sys.stderr

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def shot_started(self, shot: Shot) -> None:
        if self.verbosity >= VERBOSE:
            self._print(f"started  {shot.label} [{shot.key[:10]}]")

    def shot_finished(self, outcome: Outcome, spent: float) -> None:
        if outcome.status in (Ran.RENDERED, Ran.CACHED, Ran.PULLED, Ran.FAILED):
            self.done += 1
        if outcome.status == Ran.FAILED or outcome.warning or self.verbosity >= NORMAL:
            self._print(f"[{self.done}/{self.total}] {_describe(outcome)}")

    def note(self, message: str) -> None:
        if _worth_saying(message, self.verbosity):
            self._print(message)

    def _print(self, text: str) -> None:
        print(printable(text), file=self.stream, flush=True)


class RichReporter:
    """An overall bar (done/total, in flight, spend, ETA) and a line per finished shot."""

    def __init__(self, total: int, estimate: float, verbosity: int = NORMAL) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.verbosity = verbosity
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]rendering"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[flight]} in flight"),
            TextColumn("spent ${task.fields[spent]:.2f} of ~${task.fields[estimate]:.2f}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task(
            "render", total=total, flight=0, spent=0.0, estimate=estimate
        )
        self.flight = 0
        self.started = time.monotonic()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def shot_started(self, shot: Shot) -> None:
        self.flight += 1
        self.progress.update(self.task, flight=self.flight)
        if self.verbosity >= VERBOSE:
            self.progress.console.print(f"started  {shot.label} [dim]{shot.key[:10]}[/dim]")

    def shot_finished(self, outcome: Outcome, spent: float) -> None:
        if outcome.status in (Ran.RENDERED, Ran.FAILED):
            self.flight = max(self.flight - 1, 0)
        advance = 0 if outcome.status == Ran.SKIPPED else 1
        self.progress.update(self.task, advance=advance, flight=self.flight, spent=spent)
        style = {
            Ran.RENDERED: "green",
            Ran.CACHED: "green",
            Ran.PULLED: "green",
            Ran.FAILED: "red",
        }.get(outcome.status, "yellow")
        if outcome.status == Ran.FAILED or outcome.warning or self.verbosity >= NORMAL:
            from rich.text import Text  # a label may hold brackets: never read as markup

            self.progress.console.print(
                Text(printable(_describe(outcome)), style=style), highlight=False
            )

    def note(self, message: str) -> None:
        if _worth_saying(message, self.verbosity):
            self.progress.console.print(printable(message), markup=False, highlight=False)


def make_reporter(total: int, estimate: float, verbosity: int) -> PlainReporter | RichReporter:
    if sys.stderr.isatty() and verbosity > QUIET:
        return RichReporter(total, estimate, verbosity)
    return PlainReporter(total, verbosity)
