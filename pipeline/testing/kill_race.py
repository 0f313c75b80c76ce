"""Two builds of one storyboard on one cache, the first SIGKILLed while its tasks run: the
survivor must collect them, never pay for them again.

The builds are real `storyboard` processes against a local Runware server; what was billed is
read from the server, what was kept from the cache folder's files. Used once by the test
suite and many times by bench/stress_kill_race.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.testing.runware_server import RunwareServer


@dataclass(frozen=True)
class RaceOutcome:
    billed_per_request: list[int]  # how often each distinct request was billed, sorted
    accepted: int
    survivor_code: int
    survivor_err: str
    clips: int  # clip files in the cache after the survivor ended
    journal_left: int


def storyboard(shots: int, tag: str) -> str:
    lines = ["version: 1", "name: race", "defaults: {resolution: 768p, duration: 6}", "shots:"]
    for index in range(shots):
        lines.append(f"  - {{id: s{index}, prompt: 'race {tag}: shot {index} at dusk'}}")
    return "\n".join(lines) + "\n"


def race(
    server: RunwareServer,
    folder: Path,
    api_key: str,
    shots: int = 6,
    latency: float = 4.0,
    kill_after: float = 2.5,
    head_start: float = 0.5,
    tag: str = "",
) -> RaceOutcome:
    """Start build A, then build B `head_start` later; SIGKILL A `kill_after` seconds after
    it started; wait for B."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".storyboard").mkdir(exist_ok=True)
    spec = folder / "race.yaml"
    spec.write_text(storyboard(shots, tag or folder.name), encoding="utf-8")
    server.set_faults(latency=latency)
    env = {**os.environ, "RUNWARE_BASE_URL": server.url, "RUNWARE_API_KEY": api_key}
    env.pop("STORYBOARD_CACHE_DIR", None)
    command = [sys.executable, "-m", "pipeline", "build", str(spec), "-j", str(shots), "-q"]
    started = time.monotonic()
    first = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(head_start)
    second = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    time.sleep(max(0.0, kill_after - (time.monotonic() - started)))
    first.kill()
    first.wait()
    _, err = second.communicate(timeout=latency * 10 + 60)
    stats = server.stats()
    cache = folder / ".storyboard"
    return RaceOutcome(
        billed_per_request=sorted(stats["billed_per_request"].values()),
        accepted=stats["accepted"],
        survivor_code=second.returncode,
        survivor_err=err,
        clips=len(list((cache / "clips").glob("*/*.mp4"))),
        journal_left=len(list((cache / "journal").glob("*.json"))),
    )
