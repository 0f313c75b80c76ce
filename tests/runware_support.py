"""What the Runware tests share: the key, a spec writer, and the money check."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.cache import Cache
from pipeline.retry import Backoff
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import HANG

KEY = "sk-test-9f3c1d0e-SECRET-b7a2"


@contextlib.contextmanager
def local_runware(
    monkeypatch: pytest.MonkeyPatch,
    clip_dir: Path,
    latency: float,
    poll: float = 0.2,
    grace: float = 1.0,
) -> Iterator[RunwareServer]:
    """A local server that the CLI of this process talks to: its URL, the key, polls as
    often as `poll` seconds (a local server may be asked often), and a task it does not know
    taken as lost after `grace` seconds (5 minutes against the real API). Each wait between
    retries is a tenth as long: the faults, the retries and their order are the same, and a
    server on loopback needs no time to recover."""
    delay = Backoff.delay
    monkeypatch.setattr(Backoff, "delay", lambda self, attempt: delay(self, attempt) / 10)
    with RunwareServer(latency=latency, api_keys={KEY}, clip_dir=clip_dir) as running:
        monkeypatch.setenv("RUNWARE_BASE_URL", running.url)
        monkeypatch.setenv("RUNWARE_API_KEY", KEY)
        monkeypatch.setenv("RUNWARE_POLL_SECONDS", str(poll))
        monkeypatch.setenv("RUNWARE_NOT_FOUND_GRACE", str(grace))
        yield running


def shots_spec(count: int, name: str = "simple", extra: str = "") -> str:
    lines = [
        "version: 1",
        f"name: {name}",
        "defaults: {resolution: 768p, duration: 6}",
        extra,
        "shots:",
    ]
    for index in range(count):
        lines.append(f"  - {{id: s{index}, prompt: 'shot {index}: a lighthouse at dusk'}}")
    return "\n".join(line for line in lines if line) + "\n"


def delivered_and_kept(cache: Cache) -> tuple[float, float]:
    """What the cache holds of paid renders: the cost of the clips it has, and the cost of
    tasks it keeps journaled (paid, not yet collected)."""
    delivered = sum(r.cost or 0.0 for r in cache.clips.records() if r.renderer == "runware")
    kept = sum(e.cost or 0.0 for e in cache.journal.entries().values())
    return delivered, kept


def assert_money_safe(server: RunwareServer, cache: Cache, takes: int = 1) -> dict:
    """billed = delivered + kept, and no request billed more often than it has takes."""
    stats = server.stats()
    delivered, kept = delivered_and_kept(cache)
    assert stats["billed_cost"] == pytest.approx(delivered + kept), (stats, delivered, kept)
    assert max(stats["billed_per_request"].values(), default=0) <= takes, stats
    return stats


def make_image(path: Path, width: int, height: int) -> Path:
    """A real JPEG of the given size."""
    from pipeline import media

    source = f"color=c=0x5a6e80:s={width}x{height}"
    media.run_ffmpeg(["-f", "lavfi", "-i", source, "-frames:v", "1", str(path)], "draw an image")
    return path


SIMPLE_COST = 3 * 0.28  # the `simple` storyboard's three shots


def build(cli, spec: Path, *args: str):  # type: ignore[no-untyped-def]
    """`build --json`: the result, and its summary (None when it printed none)."""
    result = cli("build", spec, "--json", *args)
    return result, json.loads(result.out) if result.out.strip() else None


def cache_of(project: Path) -> Cache:
    return Cache(project / ".storyboard")


def until(process: subprocess.Popen, condition: Callable[[], bool]) -> None:
    """Wait for `condition` while `process` runs: what it waits for is something seen (a
    task accepted, a line said), never a length of time; a minute only stops a hang."""
    deadline = time.monotonic() + HANG
    while not condition():
        assert process.poll() is None, f"the build ended (exit code {process.returncode})"
        assert time.monotonic() < deadline, "waited a minute: it hangs"
        time.sleep(0.02)


class Said:
    """What a child process prints on a stream, as it prints it (a thread reads it)."""

    def __init__(self, stream: Iterator[str]) -> None:
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: Iterator[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def all(self) -> str:
        """Everything, once the stream has ended."""
        self._reader.join(HANG)
        return self.text()
