"""The progress of a build: a live display on a terminal, a line every 30 s elsewhere."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.progress import PlainReporter, Tally
from pipeline.render import DOWNLOADING
from pipeline.run.shots import Outcome, Outlook
from pipeline.state import Ran
from tests.conftest import HANG, a_shot
from tests.runware_support import KEY

OUTLOOK = Outlook(renders=3, estimate=0.84, budget=5.0, jobs=2, paid=True)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_state_line_counts_each_phase_and_estimates_the_time_left() -> None:
    clock = Clock()
    tally = Tally(OUTLOOK, clock)
    first, second, third = (a_shot(f"{n}" * 64, label=f"s{n}") for n in (1, 2, 3))
    tally.start(first)
    tally.start(second)
    tally.phase(second, DOWNLOADING, spent=0.28)  # its task is over: its cost is known
    assert tally.line() == (
        "rendering: 0 of 3 done, 1 waiting, 1 running, 1 downloading, 0 checking; "
        "spent $0.28 of the $5.00 budget (this build's renders: about $0.84); "
        "time left: once one is done"
    )
    clock.now = 160.0
    assert tally.rows() == [("s1", "running", "1:00"), ("s2", "downloading", "1:00")]
    tally.finish(Outcome(second, Ran.RENDERED, seconds=60.0), spent=0.28)
    clock.now = 170.0
    tally.start(third)
    clock.now = 190.0
    # At the 60 s a render took, s1 is due and s3 has 40 s to go.
    assert tally.line() == (
        "rendering: 1 of 3 done, 0 waiting, 2 running, 0 downloading, 0 checking; "
        "spent $0.28 of the $5.00 budget (this build's renders: about $0.84); about 40 s left"
    )
    preview = Tally(Outlook(3, 0.0, None, 4, paid=False), clock)
    assert "$" not in preview.line()  # a free build says nothing of money


def test_the_joins_are_counted_and_estimated_once_the_renders_are_done() -> None:
    clock = Clock()
    tally = Tally(Outlook(1, 0.0, None, 2, paid=False, films=3), clock)
    shot = a_shot("1" * 64, label="pour")
    tally.start(shot)
    assert tally.line().endswith("time left: once one is done; then 3 film(s) to join")
    tally.finish(Outcome(shot, Ran.RENDERED, seconds=10.0), spent=0.0)
    tally.films_joining(3)
    assert tally.line() == "joining films: 0 of 3 done, 0 joining; time left: once one is done"
    tally.film_started("spot--en--16x9")
    clock.now = 120.0
    assert tally.rows() == [("spot--en--16x9", "joining", "0:20")]
    tally.film_finished("spot--en--16x9", ok=True)
    tally.film_started("spot--en--9x16")
    clock.now = 130.0
    # A join took 20 s: the one under way has 10 s to go, the last one 20.
    assert tally.line() == "joining films: 1 of 3 done, 1 joining; about 30 s left"
    tally.film_finished("spot--en--9x16", ok=False)
    assert tally.line().startswith("joining films: 2 of 3 done, 1 failed, 0 joining")


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, "waited a minute: it hangs"
        time.sleep(0.01)


def _states(stream: io.StringIO) -> list[str]:
    lines = stream.getvalue().splitlines()
    return [
        line for line in lines if line.startswith("rendering: 0 of 3 done, 2 waiting, 1 running")
    ]


def test_without_a_terminal_the_state_is_a_line_every_interval() -> None:
    stream, quiet = io.StringIO(), io.StringIO()
    shot = a_shot("4" * 64, label="hero")
    with (
        PlainReporter(OUTLOOK, stream=stream, every=0.05) as reporter,
        PlainReporter(OUTLOOK, verbosity=0, stream=quiet, every=0.01),
    ):
        reporter.shot_started(shot)
        _wait_for(lambda: len(_states(stream)) >= 3)  # a line every interval while it runs
        reporter.shot_finished(Outcome(shot, Ran.FAILED, error="it broke"), spent=0.0)
    assert stream.getvalue().splitlines()[-1] == "[1/3] failed   hero: it broke"
    # -q: no state lines, over a time in which it would have said several.
    assert quiet.getvalue() == ""


Step = tuple[Callable[[str], bool], Callable[[], object]]


def _plain(drawn: bytes) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", drawn.decode(errors="replace"))


def _read_terminal(
    command: list[str], cwd: Path, env: dict[str, str], steps: list[Step] | None = None
) -> str:
    """Run `command` on a pseudo-terminal of 120 columns; everything it drew, no escapes.
    Each of `steps` in turn: once what it drew so far passes the check, the action."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=child, stdout=child, stderr=child, close_fds=True
    )
    os.close(child)
    drawn = b""
    pending = list(steps or [])
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        while pending and pending[0][0](_plain(drawn)):
            pending.pop(0)[1]()
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        elif process.poll() is not None:
            break
    if process.poll() is None:  # it hangs: what it drew says where
        process.kill()
    process.wait()
    os.close(main)
    assert not pending, f"never drawn: {len(pending)} step(s) left\n{_plain(drawn)}"
    assert process.returncode == 0, _plain(drawn)
    return _plain(drawn)


TWO_RUNNING = "rendering: 0 of 3 done, 1 waiting, 2 running, 0 downloading, 0 checking"
TWO_DONE = r"2 of 3 done, .*\nspent \$0\.56 of the \$5\.00 budget .* · about \d+ s left"


def test_a_terminal_shows_each_render_under_way_with_its_time(
    project: Path, server, simple: Path
) -> None:
    """The server holds each render until the display has shown what is asserted of it:
    what is drawn depends on what happened, never on how fast a busy machine drew it."""
    env = {
        **os.environ,
        "RUNWARE_BASE_URL": server.url,
        "RUNWARE_API_KEY": KEY,
        "TERM": "xterm-256color",
        "COLUMNS": "120",
    }
    env.pop("NO_COLOR", None)
    command = [sys.executable, "-m", "pipeline", "build", str(simple), "-j", "2"]

    def two_running_a_second(drawn: str) -> bool:
        return TWO_RUNNING in drawn and bool(re.search(r"s0\s+running\s+0:0[1-9]", drawn))

    def two_done(drawn: str) -> bool:
        return bool(re.search(TWO_DONE, drawn))

    def last_one_goes() -> None:
        server.hold(False)
        server.release()

    server.hold()
    steps: list[Step] = [(two_running_a_second, server.release), (two_done, last_one_goes)]
    drawn = _read_terminal([*command, "--max-cost", "5"], project, env, steps)
    assert TWO_RUNNING in drawn
    assert "spent $0.00 of the $5.00 budget (this build's renders: about $0.84)" in drawn
    # Each render under way, with its phase and how long it has been running.
    assert re.search(r"s0\s+running\s+0:0[1-9]", drawn)
    assert re.search(r"s1\s+running\s+0:0\d", drawn)
    # Once two are done, the time left comes from how long they took.
    assert re.search(TWO_DONE, drawn)
    assert "rendered s2" in drawn and "done: 3 rendered" in drawn


def test_the_time_left_waits_for_a_free_slot() -> None:
    clock = Clock()
    tally = Tally(Outlook(renders=3, estimate=0.0, budget=None, jobs=1, paid=False), clock)
    first, second = (a_shot(f"{n}" * 64, label=f"s{n}") for n in (1, 2))
    tally.start(first)
    clock.now = 160.0
    tally.finish(Outcome(first, Ran.RENDERED, seconds=60.0), spent=0.0)
    tally.start(second)
    clock.now = 170.0
    # One slot: the running render has 50 s to go, and the waiting one starts after it.
    assert tally.time_left() == 110.0
