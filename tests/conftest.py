"""Shared fixtures: a project folder with the bundled examples, and a way to run the CLI."""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.nodes import Clip, Node

REPO = Path(__file__).resolve().parent.parent
# How long a test waits for what a process should soon do: only a hang takes this long, on
# a machine however busy. No test asserts how fast anything is.
HANG = 60.0

# The test modules, their assertions rewritten, are cached as pytest caches them by default,
# also where PYTHONDONTWRITEBYTECODE is set: else every worker of every run rewrites them all
# again (2 s of CPU a worker).
sys.dont_write_bytecode = False


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (pyproject.toml): half again as many workers as cores. A worker spends
    about two fifths of its time waiting (on a local server's tasks and polls, a child
    process, a browser), which another worker fills; PYTEST_XDIST_AUTO_NUM_WORKERS still
    decides when set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(2, (cores or 1) * 3 // 2)


def pytest_sessionstart(session: pytest.Session) -> None:
    """The package compiled once: about 200 tests run the CLI as a command in a child
    process, which otherwise compiles every module again (0.1 s each) wherever
    PYTHONDONTWRITEBYTECODE keeps Python from caching them."""
    compileall.compile_dir(REPO / "pipeline", quiet=1)


def tracked_files(*folders: str) -> list[str]:
    """The files of `folders` the repository tracks: what a user's builds left there (locks,
    films) must never change a test's result."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *folders],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if listed.returncode == 0 and listed.stdout:
        return [name for name in listed.stdout.decode().split("\0") if name]
    # Not a git checkout: everything but what a build writes.
    return [
        str(path.relative_to(REPO))
        for folder in folders
        for path in sorted((REPO / folder).rglob("*"))
        if path.is_file() and not path.name.endswith(".lock")
    ]


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the bundled storyboards, templates and assets, with its own cache."""
    root = tmp_path / "project"
    root.mkdir()
    for name in tracked_files("specs", "templates"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    (root / ".storyboard").mkdir()
    monkeypatch.delenv("STORYBOARD_CACHE_DIR", raising=False)
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
    monkeypatch.delenv("RUNWARE_BASE_URL", raising=False)
    monkeypatch.delenv("RUNWARE_POLL_SECONDS", raising=False)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run `storyboard ARGS...` in this process; returns exit code, stdout and stderr."""

    def run(*args: str) -> Result:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: --help, a usage error
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_process(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    """Run the real console command in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def a_shot(key: str, **fields: Any) -> Node:
    """A render built by hand for the tests of the decision core: a 6 s Hailuo clip of
    `key` (its id and label too), with `fields` changed."""
    made = {
        "key": key,
        "shot_id": key,
        "label": key,
        "variant": "",
        "shot_vars": (),
        "take": 1,
        "takes": 1,
        "picked": True,
        "model": "minimax:4@1",
        "width": 1366,
        "height": 768,
        "duration": 6,
        "fps": 25,
        "prompt": "p",
        "request": {},
        "images": (),
        "image_hashes": (),
        "price": 0.28,
        "index": 0,
    }
    return Clip(**{**made, **fields})


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def build_once(root: Path, name: str, text: str, *args: str) -> Path:
    """The storyboard `text` built (as a preview) in `root`, for tests to copy. What names
    this folder is dropped: each copy records (and checks) its own."""
    root.joinpath(".storyboard").mkdir(parents=True)
    spec = write(root / "specs" / f"{name}.yaml", text)
    assert main(["build", str(spec), "--preview", "-q", *args]) == 0
    shutil.rmtree(root / ".storyboard" / "storyboards")
    (root / ".storyboard" / "outputs.json").unlink()
    return root


def copy_built(built: Path, project: Path, name: str) -> Path:
    """A copy of what `build_once` made, into `project`: its cache, films, storyboard, lock."""
    shutil.rmtree(project / ".storyboard")
    shutil.copytree(built / ".storyboard", project / ".storyboard")
    shutil.copytree(built / "build", project / "build")
    for file in (f"{name}.yaml", f"{name}.preview.lock"):
        shutil.copy2(built / "specs" / file, project / "specs" / file)
    return project / "specs" / f"{name}.yaml"


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where local Runware servers keep the clips they draw: drawn once per session, for
    every worker of the session (a clip is drawn under a lock on its name: once)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Each worker's base folder is in the session's own.
        shared = tmp_path_factory.getbasetemp().parent / "runware-clips"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("runware-clips")


@pytest.fixture
def server(project: Path, monkeypatch: pytest.MonkeyPatch, clip_dir: Path):
    """A local Runware server the CLI of this test talks to: tasks of 0.15 s, first asked
    about after 0.1 s, when they are two thirds done (as a real task is still running at its
    first poll)."""
    from tests.runware_support import local_runware

    with local_runware(monkeypatch, clip_dir, latency=0.15, poll=0.1) as running:
        running.set_faults(retry_after=0.2)
        yield running


@pytest.fixture
def simple(project: Path) -> Path:
    """A storyboard of three shots and a film of them."""
    from tests.runware_support import shots_spec

    text = shots_spec(3) + "sequences:\n  - {id: all, shots: [s0, s1, s2], preset: ultrafast}\n"
    return write(project / "specs" / "simple.yaml", text)
