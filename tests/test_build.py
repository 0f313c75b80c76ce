"""`storyboard build --preview`: real ffmpeg, real files, real processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import media
from pipeline import spec as spec_module
from pipeline.cache import Cache
from pipeline.expand import expand
from pipeline.graph import Graph
from pipeline.render import RenderJob, RenderResult
from pipeline.run.shots import ScheduleOptions, Scheduler
from pipeline.state import Ran
from tests.conftest import write

SMALL = """\
version: 1
name: small
defaults: {resolution: 768p, duration: 6}
matrix:
  light: [dawn, dusk]
shots:
  - id: one
    template: small/one.j2
  - id: two
    prompt: "a second shot without the light"
  - id: three
    template: small/three.j2
sequences:
  - id: s
    shots: [one, two, three]
"""


@pytest.fixture
def small(project: Path) -> Path:
    write(project / "templates" / "small" / "one.j2", "first shot in {{ light }}")
    write(project / "templates" / "small" / "three.j2", "third shot, {{ light }} again")
    return write(project / "specs" / "small.yaml", SMALL)


def build_json(cli, *args: str) -> dict:
    result = cli("build", *args, "--preview", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def clip_files(project: Path) -> list[Path]:
    return sorted((project / ".storyboard" / "clips").rglob("*.mp4"))


def test_build_twice_renders_each_shot_once(project: Path, cli, small: Path) -> None:
    first = build_json(cli, small, "-j", "3")
    assert first["rendered"] == 5 and first["failed"] == 0  # two + one/three per light
    assert len(clip_files(project)) == 5
    for clip in clip_files(project):
        info = media.validate(clip, 1366, 768, 6)
        assert info.fps == 25 and info.frames == 150
    second = build_json(cli, small)
    assert second["rendered"] == 0 and second["from_cache"] == 5
    plan = json.loads(cli("plan", small, "--preview", "--json").out)
    assert plan["totals"]["renders_needed"] == 0


def test_editing_a_template_rerenders_only_changed_prompts(project: Path, cli, small: Path) -> None:
    build_json(cli, small)
    write(project / "templates" / "small" / "three.j2", "third shot, {{ light }} once more")
    again = build_json(cli, small)
    assert again["rendered"] == 2
    assert {s["shot"] for s in again["shots"]} == {"three"}
    # A change that leaves the rendered prompt as it was renders nothing.
    write(project / "templates" / "small" / "one.j2", "{# note #}first   shot\nin {{ light }}\n")
    assert build_json(cli, small)["rendered"] == 0


def test_force_rerenders_only_the_named_shot(project: Path, cli, small: Path) -> None:
    build_json(cli, small)
    before = {p.name: p.stat().st_mtime_ns for p in clip_files(project)}
    forced = build_json(cli, small, "--force", "two")
    assert forced["rendered"] == 1 and forced["shots"][0]["shot"] == "two"
    after = {p.name: p.stat().st_mtime_ns for p in clip_files(project)}
    changed = [name for name in before if before[name] != after[name]]
    assert len(changed) == 1


def test_only_renders_only_named_shots(project: Path, cli, small: Path) -> None:
    result = build_json(cli, small, "--only", "one")
    assert result["rendered"] == 2 and {s["shot"] for s in result["shots"]} == {"one"}


def test_unknown_shot_name_is_a_user_error(project: Path, cli, small: Path) -> None:
    result = cli("build", small, "--preview", "--only", "nope")
    assert result.code == 2 and "no shot 'nope'" in result.err


def test_runware_without_key_suggests_preview(project: Path, cli, small: Path) -> None:
    result = cli("build", small)
    assert result.code == 2
    assert "RUNWARE_API_KEY is not set" in result.err and "--preview" in result.err


class WrongClipRenderer:
    """Writes a real clip of the wrong length: the scheduler must refuse it."""

    name = "preview"
    paid = False

    def __init__(self) -> None:
        self.calls = 0

    async def render(self, job: RenderJob) -> RenderResult:
        self.calls += 1
        media.run_ffmpeg(
            [
                "-f",
                "lavfi",
                "-i",
                "color=c=red:s=1366x768:r=25:d=2",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-f",
                "mp4",
                str(job.output),
            ],
            "draw a short clip",
        )
        return RenderResult(path=job.output)

    async def aclose(self) -> None:
        return None


class Silent:
    def shot_started(self, shot) -> None: ...

    def shot_phase(self, shot, phase, spent) -> None: ...

    def shot_finished(self, outcome, spent) -> None: ...

    def note(self, message) -> None: ...


def test_clip_failing_validation_never_enters_the_cache(project: Path, small: Path) -> None:
    graph = Graph.of(expand(spec_module.load(small), "preview"))
    shot = graph.renders()[0]
    cache = Cache(project / ".storyboard")
    renderer = WrongClipRenderer()
    scheduler = Scheduler(cache, renderer, ScheduleOptions(jobs=1), Silent(), graph, cache.frame)
    outcomes = asyncio.run(scheduler.run([shot.key]))
    assert outcomes[0].status == Ran.FAILED
    assert "is 1366x768, 2.00 s (1366x768, 6 s was asked for)" in (outcomes[0].error or "")
    assert cache.clips.get(shot.key) is None
    assert not cache.clips.path(shot.key).exists()
    assert list((project / ".storyboard" / "tmp").iterdir()) == []
    assert cache.journal.entries() == {}


def _spawn_build(project: Path, spec: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "build", str(spec), "--preview", "--json", *extra],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_builds_render_each_key_once(project: Path, small: Path) -> None:
    first = _spawn_build(project, small, "-j", "2")
    second = _spawn_build(project, small, "-j", "2")
    results = [json.loads(p.communicate(timeout=120)[0]) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0]
    rendered = [s["key"] for r in results for s in r["shots"] if s["status"] == "rendered"]
    assert len(rendered) == len(set(rendered)) == 5
    assert len(clip_files(project)) == 5


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_sigkill_mid_build_leaves_no_partial_clip(project: Path, cli, small: Path) -> None:
    process = _spawn_build(project, small, "-j", "2")
    _wait_for(lambda: len(clip_files(project)) >= 1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for clip in clip_files(project):  # whatever is in the cache is whole
        media.validate(clip)
    # A kill between the rename and the record write leaves a whole clip with no record: it
    # is rendered again (a paid one would be collected through the journal).
    plan = json.loads(cli("plan", small, "--preview", "--json").out)
    done = plan["totals"]["cached"]
    assert done < 5
    again = build_json(cli, small)
    assert again["rendered"] == 5 - done and again["from_cache"] == done
    assert len(clip_files(project)) == 5
    assert list((project / ".storyboard" / "tmp").iterdir()) == []


def test_ctrl_c_finishes_running_shots_and_exits_130(project: Path) -> None:
    spec = project / "specs" / "ballroom.yaml"
    process = _spawn_build(project, spec, "-j", "1")
    _wait_for(
        lambda: (
            (project / ".storyboard" / "journal").is_dir()
            and any((project / ".storyboard" / "journal").iterdir())
        )
    )
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert summary["rendered"] >= 1  # the running render was finished, not thrown away
    assert summary["rendered"] < 8
    assert "stopping" in err
    assert len(clip_files(project)) == summary["rendered"]
    assert not any((project / ".storyboard" / "journal").iterdir())


def test_failed_shot_exit_code_and_keep_going(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "bad.yaml",
        "version: 1\nname: bad\nshots:\n  - id: ok\n    prompt: fine prompt\n"
        "  - id: odd\n    prompt: fine prompt too\n    model: acme:1@1\n    width: 1366\n"
        "    height: 767\n",
    )
    result = cli("build", spec, "--preview", "-k", "--json", "-j", "1")
    summary = json.loads(result.out)
    # An odd height cannot be encoded as yuv420p: ffmpeg fails, the shot fails, the other is kept.
    assert result.code == 1
    statuses = {s["shot"]: s["status"] for s in summary["shots"]}
    assert statuses == {"ok": "rendered", "odd": "failed"}
    failed = next(s for s in summary["shots"] if s["status"] == "failed")
    assert failed["error"].startswith("shot 'odd': ffmpeg failed to draw the preview")
    assert "failed   odd" in result.err


def test_an_output_folder_that_cannot_be_written_is_refused_first(
    project: Path, cli, small: Path
) -> None:
    blocker = write(project / "not-a-folder", "a file")
    result = cli("build", small, "--preview", "-o", blocker)
    assert result.code == 2
    assert result.err.startswith(f"error: {blocker}/small/preview: films cannot be written")
    assert "choose a writable --output-dir" in result.err
    assert clip_files(project) == []  # refused before anything was rendered


def test_a_cache_folder_that_is_a_file_is_one_error(project: Path, cli, small: Path) -> None:
    blocker = write(project / "cache-file", "a file")
    for command in ("plan", "build"):
        result = cli(command, small, "--preview", "--cache-dir", blocker)
        assert result.code == 1, result.err
        assert result.err.startswith(f"error: {blocker}: the cache must be a folder")


def test_only_a_shot_that_matches_nothing_is_an_error(project: Path, cli, small: Path) -> None:
    result = cli("build", small, "--preview", "--only", "one@zzz")
    assert result.code == 2
    assert result.err.startswith(f"error: no shot 'one@zzz' in {small}")
    assert "shots: one, two, three" in result.err
    assert clip_files(project) == []


def test_prompts_spell_out_control_characters(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "esc.yaml",
        'version: 1\nname: esc\nshots:\n  - id: a\n    prompt: "red \\e[2J\\u202e text"\n',
    )
    result = cli("prompts", spec)
    assert result.code == 0
    assert "red \\x1b[2J\\u202e text" in result.out
    assert "\x1b" not in result.out and "\u202e" not in result.out


def test_what_killed_builds_left_half_written_is_removed(project: Path, cli, small: Path) -> None:
    dead = 2**22 + 1  # above the largest pid Linux gives out by default: never alive
    cache = project / ".storyboard"
    left = [
        write(cache / "tmp" / f"{dead}-1.mp4", "partial clip"),
        write(cache / "journal" / f".{'a' * 64}.json.{dead}.tmp", "{"),
        write(project / "specs" / f".small.preview.lock.{dead}.tmp", ""),
    ]
    work = project / "build" / "small" / "preview" / f".join-{dead}-x"
    work.mkdir(parents=True)
    live = write(cache / "tmp" / f"{os.getpid()}-1.mp4", "a live build's")
    assert cli("build", small, "--preview").code == 0
    assert [p for p in left if p.exists()] == [] and not work.exists()
    assert live.exists()
