"""Two builds of one storyboard on one cache, the first SIGKILLed while its tasks run: the
survivor must collect them, never pay for them again.

The builds are real `storyboard` processes against a local Runware server; what was billed is
read from the server, what was kept from the cache folder's files. Used once by the test
suite and many times by bench/stress_kill_race.py.
"""

from __future__ import annotations

import contextlib
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


def lock_holders(locks: Path) -> set[int]:
    """The processes holding flocks on files in `locks` (read from /proc/locks)."""
    inodes = {path.stat().st_ino for path in locks.glob("*.lock")}
    holders = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK":
                inode = int(fields[5].rsplit(":", 1)[-1])
                if inode in inodes:
                    holders.add(int(fields[4]))
    return holders


def race(
    server: RunwareServer,
    folder: Path,
    api_key: str,
    shots: int = 6,
    latency: float = 4.0,
    kill_after: float = 2.5,
    tag: str = "",
) -> RaceOutcome:
    """Start two builds at once; `kill_after` seconds later SIGKILL the one holding the key
    locks (the other waits for them); wait for the survivor."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".storyboard").mkdir(exist_ok=True)
    spec = folder / "race.yaml"
    spec.write_text(storyboard(shots, tag or folder.name), encoding="utf-8")
    server.set_faults(latency=latency)
    env = {**os.environ, "RUNWARE_BASE_URL": server.url, "RUNWARE_API_KEY": api_key}
    env.pop("STORYBOARD_CACHE_DIR", None)
    command = [sys.executable, "-m", "pipeline", "build", str(spec), "-j", str(shots), "-q"]
    builds = [
        subprocess.Popen(
            command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    time.sleep(kill_after)
    cache = folder / ".storyboard"
    holders = lock_holders(cache / "locks")
    victim = next((b for b in builds if b.pid in holders), builds[0])
    survivor = builds[1] if victim is builds[0] else builds[0]
    victim.kill()
    victim.communicate()
    _, err = survivor.communicate(timeout=latency * 10 + 60)
    stats = server.stats()
    return RaceOutcome(
        billed_per_request=sorted(stats["billed_per_request"].values()),
        accepted=stats["accepted"],
        survivor_code=survivor.returncode,
        survivor_err=err.decode(errors="replace"),
        clips=len(list((cache / "clips").glob("*/*.mp4"))),
        journal_left=len(list((cache / "journal").glob("*.json"))),
    )
