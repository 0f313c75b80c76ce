"""Helpers shared by the benchmarks: whole-process wall time, peak memory and CPU time."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import NamedTuple


class Measured(NamedTuple):
    seconds: float  # wall time
    memory: float  # peak resident memory, MB
    cpu: float  # user + system CPU seconds


def run_measured(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> Measured:
    """Wall seconds, peak memory and CPU time of one child process, which must succeed."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-2000:]}")
    return Measured(elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def median_run(
    command: list[str], cwd: Path, repeat: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median wall time and the largest peak memory over `repeat` runs (after one warm-up)."""
    run_measured(command, cwd, env)
    runs = [run_measured(command, cwd, env) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def find_tool(name: str, hint: str) -> str:
    import shutil
    import sys

    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: {hint}")
    return found
