"""What a shared machine does to a build: a full disk, a read-only cache, a build killed in
the middle of a join, an ffmpeg that never ends. Each ends in one clear message, nothing
half-written, nothing paid twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import media
from pipeline.cache import Cache
from pipeline.errors import MediaError
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import HANG, write
from tests.runware_support import KEY, assert_money_safe, shots_spec

FOREVER = ["-f", "lavfi", "-i", "testsrc=s=64x64", "-f", "null", "-"]


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, bool]]:
    """A 1 MB tmpfs, or (where mounting is not allowed) a folder whose builds run with a
    1 MB limit on the size of any file they write. Yields the folder and whether it is a
    tmpfs."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder))
    yield folder, mounted
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _build(project: Path, spec: Path, cache: Path, url: str, fsize: int | None = None):
    limit = ["prlimit", f"--fsize={fsize}", "--"] if fsize else []
    env = {
        **os.environ,
        "RUNWARE_API_KEY": KEY,
        "RUNWARE_BASE_URL": url,
        "RUNWARE_POLL_SECONDS": "0.2",
        "STORYBOARD_CACHE_DIR": str(cache),
    }
    command = [*limit, sys.executable, "-m", "pipeline", "build", str(spec), "--json"]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)


def test_a_full_disk_while_downloading_keeps_the_paid_task(
    project: Path, clip_dir: Path, small_disk: tuple[Path, bool]
) -> None:
    cache, mounted = small_disk
    spec = write(project / "specs" / "disk.yaml", shots_spec(1, name="disk"))
    # Clips as heavy as real renders (3 MB): bigger than the disk, when nothing else is.
    with RunwareServer(latency=0.3, api_keys={KEY}, clip_dir=clip_dir, clip_noise=1) as server:
        first = _build(project, spec, cache, server.url, fsize=None if mounted else 1 << 20)
        assert first.returncode == 1, first.stderr
        assert "Traceback" not in first.stderr
        problem = "No space left on device" if mounted else "File too large"
        assert f"the clip could not be written to {cache}" in first.stderr
        assert problem in first.stderr
        assert "stays in the journal" in first.stderr
        leftovers = [p for p in cache.rglob("*") if p.is_file() and p.suffix in (".mp4", ".tmp")]
        assert leftovers == []  # nothing half-written
        journal = Cache(cache).journal.entries()
        assert [e.task_uuid is not None for e in journal.values()] == [True]
        assert server.stats()["accepted"] == 1

        if mounted:
            assert _mount("-o", "remount,size=64m", str(cache))
        again = _build(project, spec, cache, server.url)
        assert again.returncode == 0, again.stderr
        summary = json.loads(again.stdout)
        assert summary["rendered"] == 0 and summary["collected"] == 1
        stats = assert_money_safe(server, Cache(cache))
        assert stats["accepted"] == 1 and stats["billed_tasks"] == 1  # no new submit
        assert not Cache(cache).journal.entries()


def _in_namespace_read_only(folder: Path, *command: str) -> list[str]:
    """`command` in a mount namespace of its own where `folder` is read-only."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    return ["unshare", "--mount", "--", "sh", "-c", script, str(folder), *command]


def test_a_read_only_cache_plans_and_builds_what_is_there(project: Path, cli) -> None:
    spec = write(project / "specs" / "ro.yaml", shots_spec(2, name="ro"))
    assert cli("build", spec, "--preview").code == 0
    cache = project / ".storyboard"
    probe = subprocess.run(_in_namespace_read_only(cache, "true"), capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no mount namespace on this machine")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = _in_namespace_read_only(cache, sys.executable, "-m", "pipeline", *args)
        return subprocess.run(command, cwd=project, capture_output=True, text=True)

    for args in (["plan", str(spec), "--preview"], ["status", str(spec), "--preview"]):
        result = run(*args)
        assert result.returncode == 0, result.stderr
    built = run("build", str(spec), "--preview")
    assert built.returncode == 0, built.stderr
    assert "cannot write to the cache (Read-only file system)" in built.stderr
    forced = run("build", str(spec), "--preview", "--force", "s0")
    assert forced.returncode == 1 and "Traceback" not in forced.stderr
    assert forced.stderr.startswith(f"error: {cache}: cannot write to the cache (Read-only")


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_build_killed_in_a_join_leaves_no_ffmpeg_and_no_work_folder(project: Path, cli) -> None:
    spec = write(project / "specs" / "join.yaml", shots_spec(2, name="join"))
    assert cli("build", spec, "--preview").code == 0  # the clips, then a film of them
    film = "sequences:\n  - id: film\n    shots: [s0, s1]\n"
    film += "    transition: {type: crossfade, duration: 1}\n"
    write(spec, shots_spec(2, name="join") + film + "    preset: slower\n    quality: 0\n")
    films = project / "build" / "join" / "preview"
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "build", str(spec), "--preview", "-q"],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = f".join-{process.pid}-"
    deadline = time.monotonic() + HANG
    while not _processes_mentioning(marker):
        assert time.monotonic() < deadline and process.poll() is None, "no join started"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + HANG
    while _processes_mentioning(marker):  # ffmpeg was told to die with its parent
        assert time.monotonic() < deadline, "ffmpeg outlived the build"
        time.sleep(0.05)
    assert [p.name for p in films.iterdir() if p.name.startswith(marker)]
    # The next build of a film in that folder removes what the killed join left. It joins at
    # the fastest setting: the slow one was there to be killed (11 s of CPU for the whole
    # join), and the leftovers are removed whichever film is joined next.
    write(spec, shots_spec(2, name="join") + film + "    preset: ultrafast\n")
    assert cli("build", spec, "--preview").code == 0
    assert sorted(p.name for p in films.iterdir() if p.name != "review") == ["film.mp4"]


def test_an_ffmpeg_that_never_ends_is_stopped() -> None:
    """Stopped at its limit, and gone. The runs are watched from here: a limit that did not
    hold would hang them, and the test fails after a minute instead of hanging."""
    said: list[str] = []

    def run_forever() -> None:
        for run in (
            lambda: media.run_ffmpeg(FOREVER, "run forever", timeout=0.5),
            lambda: asyncio.run(media.run_ffmpeg_async(FOREVER, "run forever", timeout=0.5)),
        ):
            try:
                run()
            except MediaError as exc:
                said.append(exc.message)

    runs = threading.Thread(target=run_forever, daemon=True)
    runs.start()
    runs.join(HANG)
    assert not runs.is_alive(), "an ffmpeg run was not stopped"
    assert said == ["ffmpeg took longer than 0.5 s to run forever: stopped"] * 2
    assert not _processes_mentioning("testsrc=s=64x64")
