"""The CLI run in child processes forked from a server that imported it once.

Each child is a process of its own, with its own limits (address space, CPU time), working
folder and environment, as `prlimit ... python -m pipeline` would give it; only Python's
start and the imports are paid once, not once per run (0.4 s of CPU each here).
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import resource
import sys
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.pool import Pool
from pathlib import Path
from typing import IO

PRELOAD = ["pipeline.cli", "pipeline.plan", "tests.forked"]


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str
    cpu: float  # seconds of CPU the run took, its own children's included


@contextlib.contextmanager
def forked_pool(processes: int) -> Iterator[Pool]:
    """A pool of children forked from a server that imported the CLI; one run each."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    with context.Pool(processes=processes, maxtasksperchild=1) as pool:
        yield pool


def run_cli(args: list[str], cwd: Path, env: dict[str, str], memory: int, cpu: int) -> Ran:
    """`storyboard ARGS` in this (forked) process, under `memory` bytes of address space and
    `cpu` seconds, in `cwd`, with `env` as its whole environment: its exit code and what it
    printed (every byte written to its stdout and stderr, its own children's included)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    from pipeline.cli import main

    started = _cpu_seconds()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(1), "wb"), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), encoding="utf-8")
        try:
            code = main(args)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:  # as an uncaught exception ends `python -m pipeline`
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        return Ran(code, _read(out), _read(err), _cpu_seconds() - started)


def _cpu_seconds() -> float:
    """User and system time of this process and of its children that ended: what the run
    cost the machine, the same whatever else the machine runs."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _read(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode(errors="replace")
