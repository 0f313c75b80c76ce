"""The real Runware client, through the real CLI, against the local server over HTTP: budgets,
keys, kills, races, uploads, clips unlike what was asked, the bundled example. Every build
ends with each clip in the cache or a one-line error naming the shot and the server's code,
and billed = delivered + kept (the faults of the server: test_runware_faults.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from pipeline.cache import JournalEntry
from pipeline.testing.media import read_seed
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import HANG, write
from tests.runware_support import (
    KEY,
    SIMPLE_COST,
    Said,
    assert_money_safe,
    build,
    cache_of,
    make_image,
    until,
)


def test_an_expired_upload_is_sent_again(project: Path, cli, server) -> None:
    spec = write(
        project / "specs" / "frames.yaml",
        "version: 1\nname: frames\ndefaults: {first_frame: assets/raincoat.jpg}\nshots:\n"
        "  - {id: a, prompt: the raincoat turns}\n  - {id: b, prompt: the raincoat drips}\n",
    )
    assert cli("build", spec, "--only", "a").code == 0
    server.set_faults(expire_images=1)
    result = cli("build", spec, "--only", "b")
    assert result.code == 0, result.err
    assert "invalidFrameImage" in result.err and "uploading the image again" in result.err
    stats = assert_money_safe(server, cache_of(project))
    assert stats["uploads"] == 2 and stats["accepted"] == 2


def test_bundled_example_end_to_end(project: Path, cli, server: RunwareServer) -> None:
    spec = project / "specs" / "arcade.yaml"
    result, summary = build(cli, spec, "-j", "4")
    assert result.code == 0, result.err
    stats = assert_money_safe(server, cache_of(project), takes=2)
    assert summary["rendered"] == 4 and stats["accepted"] == 4
    assert summary["spent"] == pytest.approx(stats["billed_cost"]) == pytest.approx(1.61)
    assert stats["uploads"] == 1  # the first frame, once, for both takes
    assert [s["status"] for s in summary["sequences"]] == ["built", "built"]
    human = cli("build", spec)
    assert human.code == 0 and "spent $0.00" in human.err  # nothing left to pay for
    lock = json.loads((project / "specs" / "arcade.lock").read_text())
    assert sorted(round(s["cost"], 2) for s in lock["shots"].values()) == [0.28, 0.28, 0.49, 0.56]
    assert all(s["video_uuid"] and s["seed"] for s in lock["shots"].values())


UNLIKE = """\
version: 1
name: unlike
defaults: {resolution: 768p, duration: 6}
shots:
  - {id: square, prompt: a lantern on a square card, first_frame: assets/square.jpg}
  - {id: plain, prompt: the sea at dusk}
sequences:
  - {id: film, shots: [square, plain], preset: ultrafast}
"""


def test_clips_unlike_what_was_asked_are_kept_and_joined(
    project: Path, cli, server: RunwareServer
) -> None:
    make_image(project / "specs" / "assets" / "square.jpg", 600, 600)
    spec = write(project / "specs" / "unlike.yaml", UNLIKE)
    server.set_faults(dialect="docs", frame_offset=-1)
    result, summary = build(cli, spec)
    assert result.code == 0, result.err
    warnings = {s["shot"]: s["warning"] for s in summary["shots"]}
    assert "768x768, 5.96 s (1366x768, 6 s was asked for)" in warnings["square"]
    assert "1366x768, 5.96 s" in warnings["plain"]
    film = summary["sequences"][0]
    assert film["status"] == "built" and film["duration"] == pytest.approx(11.92)
    lock = json.loads((project / "specs" / "unlike.lock").read_text())
    assert {s["duration"] for s in lock["shots"].values()} == {5.96}
    assert_money_safe(server, cache_of(project))
    rebuilt = cli("build", spec, "--json")
    assert json.loads(rebuilt.out)["rendered"] == 0  # kept means kept: never paid again


def test_printed_cost_is_what_the_server_billed(project: Path, cli, server, simple) -> None:
    result = cli("build", simple)
    assert result.code == 0, result.err
    assert f"spent ${server.stats()['billed_cost']:.2f}" in result.err
    assert f"${SIMPLE_COST:.2f}" in result.err


def test_max_cost_below_estimate_submits_nothing(project: Path, cli, server, simple) -> None:
    result = cli("build", simple, "--max-cost", "0.5")
    assert result.code == 2
    assert "would cost about $0.84, over the budget of $0.50" in result.err
    assert server.stats()["submits"] == 0


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "lots"])
def test_max_cost_must_be_a_positive_number(project: Path, cli, simple, value: str) -> None:
    result = cli("build", simple, "--max-cost", value)
    assert result.code == 2 and "--max-cost" in result.err


def test_max_cost_stops_new_submits_mid_build(project: Path, cli, server, simple) -> None:
    # The estimate ($0.84) fits the budget, but the provider now bills 50% more.
    server.price_factor = 1.5
    result, summary = build(cli, simple, "-j", "1", "--max-cost", "1.0")
    assert result.code == 1
    assert summary["rendered"] == 2 and summary["skipped"] == 1
    assert summary["spent"] == pytest.approx(0.84)
    skipped = next(s for s in summary["shots"] if s["status"] == "skipped")
    assert "budget" in skipped["error"]
    assert "would pass --max-cost $1.00: no new renders" in result.err
    assert server.stats()["submits"] == 2


FAST_TEN = """\
version: 1
name: fast
defaults: {model: "minimax:4@2", resolution: 768p, duration: 10, first_frame: assets/luthier.jpg}
shots:
  - {id: slow-pan, prompt: the luthier's hands in a slow pan}
"""


def test_a_render_of_unknown_price_needs_a_price_under_a_budget(
    project: Path, cli, server: RunwareServer
) -> None:
    spec = write(project / "specs" / "fast.yaml", FAST_TEN)
    planned = cli("plan", spec)
    assert planned.code == 0 and "no known price for slow-pan" in planned.out
    refused = cli("build", spec, "--max-cost", "5")
    assert refused.code == 2
    assert "1 render(s) have no known price, so a budget of $5.00 cannot hold: slow-pan" in (
        refused.err
    )
    assert "price:" in refused.err and server.stats()["submits"] == 0
    spec.write_text(FAST_TEN.replace("duration: 10,", "duration: 10, price: 0.5,"))
    result, summary = build(cli, spec, "--max-cost", "5")
    assert result.code == 0, result.err
    assert summary["spent"] == pytest.approx(server.stats()["billed_cost"]) == pytest.approx(0.48)


def test_fast_polls_are_for_a_local_server_only(project: Path, cli, simple, monkeypatch) -> None:
    monkeypatch.setenv("RUNWARE_API_KEY", KEY)
    monkeypatch.setenv("RUNWARE_POLL_SECONDS", "0.2")
    result = cli("build", simple)
    assert result.code == 2
    assert "RUNWARE_POLL_SECONDS=0.2 would poll api.runware.ai more than once a second" in (
        result.err
    )


def test_a_key_is_stripped_and_checked(project: Path, cli, server, simple, monkeypatch) -> None:
    monkeypatch.setenv("RUNWARE_API_KEY", f"{KEY}\r\n")  # pasted with its line end: fine
    assert cli("build", simple).code == 0
    monkeypatch.setenv("RUNWARE_API_KEY", f"{KEY[:8]} {KEY[8:]}")
    result = cli("build", simple, "--force", "s0")
    assert result.code == 2 and server.stats()["accepted"] == 3
    assert "RUNWARE_API_KEY has spaces or control characters inside it" in result.err
    assert KEY[8:] not in result.err


def test_invalid_key_one_error_no_submit(project: Path, cli, server, simple, monkeypatch) -> None:
    monkeypatch.setenv("RUNWARE_API_KEY", "sk-wrong")
    result = cli("build", simple, "-j", "3")
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert errors == ["error: Runware refused the API key (invalidApiKey: Invalid API key)"]
    stats = server.stats()
    assert stats["submits"] == 0 and stats["auth_failures"] == 1


def test_an_unreadable_journal_entry_is_an_error_naming_it(
    project: Path, cli, server, simple
) -> None:
    broken = write(project / ".storyboard" / "journal" / f"{'0' * 64}.json", "not json")
    result = cli("build", simple)
    assert result.code == 1
    assert f"error: {broken}: unreadable journal entry" in result.err
    assert "Traceback" not in result.err and server.stats()["submits"] == 0


def _spawn(project: Path, spec: Path, server: RunwareServer, *extra: str) -> subprocess.Popen:
    """A build in a child process: its JSON summary on stdout, unless `extra` asks for words
    (`--words`, which is not passed on)."""
    env = {**os.environ, "RUNWARE_BASE_URL": server.url, "RUNWARE_API_KEY": KEY}
    summary = [] if "--words" in extra else ["--json"]
    extra = tuple(e for e in extra if e != "--words")
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "build", str(spec), *summary, *extra],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_with_tasks_in_flight_then_rebuild(project: Path, cli, server, simple) -> None:
    server.hold()  # no task ends before the kill, however slow the machine
    process = _spawn(project, simple, server, "-j", "3")
    until(process, lambda: server.stats()["accepted"] == 3)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert server.stats()["downloads"] == 0  # all three were in flight
    server.hold(False)
    server.release()
    journal = cache_of(project).journal.entries()
    assert len(journal) == 3 and all(e.task_uuid for e in journal.values())
    result, summary = build(cli, simple, "-j", "3")
    assert result.code == 0, result.err
    stats = assert_money_safe(server, cache_of(project))
    assert stats["submits"] == 3 and stats["accepted"] == 3  # collected, not sent again
    assert summary["rendered"] == 0 and summary["collected"] == 3
    assert summary["spent"] == 0 and summary["collected_cost"] == pytest.approx(SIMPLE_COST)
    assert cache_of(project).journal.entries() == {}


def test_an_interrupt_and_its_resume_add_up_to_what_was_billed(
    project: Path, cli, server, simple
) -> None:
    """One render done, one cut short at the provider (paid), one never sent: the interrupted
    build says what it spent and what it left running; the next one what it only collected."""
    server.hold()  # each task ends when the test lets it
    process = _spawn(project, simple, server, "-j", "1", "--words")
    said = Said(process.stderr)
    until(process, lambda: server.stats()["accepted"] == 1)
    server.release()  # s0 is rendered; s1, sent next, is held
    until(process, lambda: "rendered s0" in said.text() and server.stats()["accepted"] == 2)
    process.send_signal(signal.SIGINT)  # no new renders...
    until(process, lambda: "stopping: no new renders" in said.text())
    process.send_signal(signal.SIGINT)  # ...and exit now: the running task stays journaled
    process.wait(HANG)
    err = said.all()
    assert process.returncode == 130, err
    server.hold(False)
    server.release()  # s1 ends at the provider: the next build collects it
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: 1 rendered, 0 from cache, 0 failed, 1 not started")
    assert "spent $0.28; 1 render(s) left running at the provider, about $0.28" in last
    assert "($0.56 in all)" in last
    # What it paid for and collected is in the lock at once, for git to name.
    lock = json.loads((project / "specs" / "simple.lock").read_text())
    assert [(s["shot"], s["cost"]) for s in lock["shots"].values()] == [("s0", 0.28)]
    assert lock["sequences"] == {}
    result = cli("build", simple)
    assert result.code == 0, result.err
    last = result.err.strip().splitlines()[-1]
    assert last.startswith(
        "done: 1 rendered, 1 collected (paid $0.28 by an earlier build), 1 from cache, 0 failed"
    )
    assert last.endswith("spent $0.28")
    stats = assert_money_safe(server, cache_of(project))
    assert stats["billed_cost"] == pytest.approx(0.28 + 0.28 + 0.28)  # what the two lines say


def test_builds_racing_on_one_cache_never_pay_twice(
    project: Path, server: RunwareServer, tmp_path: Path
) -> None:
    from pipeline.testing.kill_race import race

    outcome = race(server, tmp_path / "race", KEY, shots=6, latency=4.0, kill_after=2.5)
    assert outcome.billed_per_request == [1] * 6, outcome
    assert outcome.survivor_code == 0 and outcome.clips == 6, outcome


def test_each_take_of_one_request_is_another_picture(project: Path, cli, server) -> None:
    """The server draws each take of one request its own seed, as a provider does, and draws
    the seed on the picture: picking take 2 shows another clip."""
    spec = write(
        project / "specs" / "takes.yaml",
        "version: 1\nname: takes\ndefaults: {resolution: 768p, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a lighthouse at dusk, takes: 2}\n",
    )
    result = cli("build", spec)
    assert result.code == 0, result.err
    assert list(server.stats()["billed_per_request"].values()) == [2]  # one request, twice
    lock = json.loads((project / "specs" / "takes.lock").read_text())
    takes = sorted(lock["shots"].values(), key=lambda s: s["take"])
    assert [s["take"] for s in takes] == [1, 2] and takes[0]["seed"] != takes[1]["seed"]
    assert takes[0]["sha256"] != takes[1]["sha256"]
    cache = cache_of(project)
    clips = {r.sha256: cache.clips.path(r.key) for r in cache.clips.records()}
    frames = [_frame_at(clips[take["sha256"]], 1.0) for take in takes]
    band = [frame[-frame.shape[0] // 8 :].astype(int) for frame in frames]
    assert np.abs(band[0] - band[1]).mean() > 20  # another picture, not another encoding
    assert [read_seed(frame) for frame in frames] == [take["seed"] for take in takes]


def _frame_at(path: Path, seconds: float) -> np.ndarray:
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            if frame.time is not None and frame.time >= seconds:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"no frame at {seconds} s in {path}")


def test_server_validates_like_the_api(server: RunwareServer) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}

    def post(task: dict) -> dict:
        return httpx.post(server.url, json=[task], headers=headers).json()

    base = {
        "taskType": "videoInference",
        "taskUUID": "7c1f2e4a-1b2c-4d3e-8f90-123456789abc",
        "model": "minimax:4@1",
        "positivePrompt": "a quiet harbour",
        "width": 1920,
        "height": 1080,
        "duration": 10,
        "fps": 25,
        "deliveryMethod": "async",
    }
    error = post(base)["errors"][0]
    assert error["code"] == "unsupportedDuration" and error["allowedValues"] == [6]
    assert post({**base, "duration": 6, "seed": 1})["errors"][0]["code"] == "unknownParameter"
    assert post({**base, "taskUUID": "nope"})["errors"][0]["code"] == "invalidTaskUUID"
    assert post({**base, "duration": 6})["data"][0]["taskUUID"] == base["taskUUID"]
    assert post({**base, "duration": 6})["errors"][0]["code"] == "conflictTaskUUID"
    unknown = {"taskType": "getResponse", "taskUUID": "11111111-2222-4333-8444-555555555555"}
    assert post(unknown)["errors"][0]["code"] == "taskFailedOrNotFound"
    fast = {**base, "model": "minimax:4@2", "taskUUID": "2c1f2e4a-1b2c-4d3e-8f90-123456789abc"}
    assert post({**fast, "duration": 6})["errors"][0]["code"] == "missingParameter"  # needs a frame
    assert (
        httpx.post(server.url, json=[base], headers={"Authorization": "Bearer x"}).status_code
        == 401
    )


def test_submit_whose_answers_are_all_lost_is_confirmed_not_repeated(project: Path, server) -> None:
    import asyncio

    from pipeline import spec as spec_module
    from pipeline.expand import expand
    from pipeline.render import RenderJob
    from pipeline.render.runware import RunwareRenderer
    from pipeline.retry import Backoff

    spec = write(
        project / "specs" / "one.yaml",
        "version: 1\nname: one\nshots:\n  - {id: one, prompt: a single shot}\n",
    )
    shot = expand(spec_module.load(spec), "runware").shots[0]
    cache = cache_of(project)
    noted: list[str] = []

    async def scenario() -> None:
        renderer = RunwareRenderer(
            cache, KEY, server.url, backoff=Backoff(attempts=4, base=0.05, seed=1)
        )
        try:
            await renderer._may_submit()
            # The submit is accepted but its answer is lost, then every retry meets a 500.
            server.set_faults(drop_submit=1, http_500=3)
            job = RenderJob(shot=shot, output=cache.tmp.path(), note_task=noted.append)
            result = await renderer.render(job)
            assert result.info is not None and result.info.duration == 6.0
        finally:
            await renderer.aclose()

    asyncio.run(scenario())
    stats = server.stats()
    assert stats["accepted"] == 1 and len(noted) == 1
    assert stats["billed_cost"] == pytest.approx(0.28)


def test_journaled_task_unknown_to_server_is_submitted_anew(project, cli, server, simple) -> None:
    from pipeline import spec as spec_module
    from pipeline.expand import expand

    shot = expand(spec_module.load(simple), "runware").shots[0]
    cache_of(project).journal.write(
        JournalEntry(
            key=shot.key,
            renderer="runware",
            label=shot.label,
            started=0.0,
            task_uuid="0b3e35a6-5d0e-4f4e-9e56-3d1b2c3a4f5e",
        )
    )
    result, summary = build(cli, simple)
    assert result.code == 0, result.err
    stats = server.stats()
    assert stats["accepted"] == 3 and summary["rendered"] == 3


def test_a_matrix_over_two_models_renders_each_with_its_own(project: Path, cli, server) -> None:
    spec = write(
        project / "specs" / "models.yaml",
        "version: 1\nname: models\n"
        "defaults: {resolution: 768p, duration: 6, first_frame: assets/raincoat.jpg}\n"
        "matrix: {model: ['minimax:4@1', 'minimax:4@2']}\n"
        "shots:\n  - id: coat\n    prompt: the raincoat turns in the wind\n",
    )
    result, _ = build(cli, spec)
    assert result.code == 0, result.err
    stats = assert_money_safe(server, cache_of(project))
    # The server prices each task by the model it was sent: $0.28 and $0.24.
    assert stats["billed_tasks"] == 2 and stats["billed_cost"] == pytest.approx(0.52)
    lock = json.loads((project / "specs" / "models.lock").read_text())
    assert sorted(e["request"]["model"] for e in lock["shots"].values()) == [
        "minimax:4@1",
        "minimax:4@2",
    ]
