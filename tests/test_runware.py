"""The real Runware client, through the real CLI, against the local Runware-compatible server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipeline.cache import Cache
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import write

KEY = "sk-test-9f3c1d0e-SECRET-b7a2"
SIMPLE = """\
version: 1
name: simple
defaults: {resolution: 768p, duration: 6}
shots:
  - id: one
    prompt: a lighthouse at dusk
  - id: two
    prompt: a gull over the waves
  - id: three
    prompt: rain on the lantern glass
sequences:
  - id: all
    shots: [one, two, three]
    preset: ultrafast
"""
SIMPLE_COST = 3 * 0.28


@pytest.fixture
def server(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunwareServer]:
    with RunwareServer(latency=0.4, api_keys={KEY}) as running:
        running.set_faults(retry_after=0.2)
        monkeypatch.setenv("RUNWARE_BASE_URL", running.url)
        monkeypatch.setenv("RUNWARE_API_KEY", KEY)
        yield running


@pytest.fixture
def simple(project: Path) -> Path:
    return write(project / "specs" / "simple.yaml", SIMPLE)


def build(cli, spec: Path, *args: str):
    result = cli("build", spec, "--json", *args)
    return result, json.loads(result.out) if result.out.strip() else None


def test_bundled_example_end_to_end(project: Path, cli, server: RunwareServer) -> None:
    spec = project / "specs" / "arcade.yaml"
    result, summary = build(cli, spec, "-j", "4")
    assert result.code == 0, result.err
    stats = server.stats()
    assert summary["rendered"] == 4 and stats["accepted"] == 4
    assert summary["spent"] == pytest.approx(stats["billed_cost"]) == pytest.approx(1.61)
    assert stats["uploads"] == 1  # the first frame, once, for both takes
    assert [s["status"] for s in summary["sequences"]] == ["built", "built"]
    human = cli("build", spec)
    assert human.code == 0 and "spent $0.00" in human.err  # nothing left to pay for
    lock = json.loads((project / "specs" / "arcade.lock").read_text())
    assert sorted(round(s["cost"], 2) for s in lock["shots"].values()) == [0.28, 0.28, 0.49, 0.56]
    assert all(s["video_uuid"] and s["seed"] for s in lock["shots"].values())


def test_printed_cost_is_what_the_server_billed(project: Path, cli, server, simple) -> None:
    result = cli("build", simple)
    assert result.code == 0, result.err
    assert f"spent ${server.stats()['billed_cost']:.2f}" in result.err
    assert f"${SIMPLE_COST:.2f}" in result.err


@pytest.mark.parametrize(
    ("fault", "count"),
    [
        ("http_500", 3),
        ("http_429", 2),
        ("drop_submit", 2),
        ("drop_poll", 2),
        ("task_error", 1),
        ("truncate", 1),
        ("corrupt", 1),
    ],
)
def test_transient_faults_end_in_success(
    project: Path, cli, server: RunwareServer, simple: Path, fault: str, count: int
) -> None:
    server.set_faults(**{fault: count})
    result, summary = build(cli, simple, "-j", "3")
    assert result.code == 0, result.err
    stats = server.stats()
    assert stats["faults_served"].get(fault) == count
    assert summary["rendered"] == 3
    # Never paid twice: one delivered task per shot, and only what was delivered is billed.
    assert stats["billed_cost"] == pytest.approx(stats["delivered_cost"])
    assert stats["billed_cost"] == pytest.approx(summary["spent"]) == pytest.approx(SIMPLE_COST)
    if fault != "task_error":
        assert stats["tasks_per_request"] == [1, 1, 1]
    if fault == "drop_submit":
        assert stats["conflicts"] == count  # the retry with the same taskUUID was recognised


def test_error_envelope_is_a_clear_per_shot_error(project: Path, cli, server, simple) -> None:
    server.set_faults(error_envelope=1)
    result, summary = build(cli, simple, "-j", "1", "-k")
    assert result.code == 1
    failed = [s for s in summary["shots"] if s["status"] == "failed"]
    assert len(failed) == 1
    message = failed[0]["error"]
    assert message.startswith(f"shot '{failed[0]['shot']}': Runware refused the task:")
    assert "providerContentPolicyViolation" in message and "parameter: positivePrompt" in message
    stats = server.stats()
    assert stats["billed_cost"] == pytest.approx(stats["delivered_cost"]) == pytest.approx(0.56)


def test_task_that_never_finishes_stays_journaled(project: Path, cli, server, simple) -> None:
    server.set_faults(never_finish=1)
    result, summary = build(cli, simple, "-j", "3", "-k", "--task-timeout", "2")
    assert result.code == 1
    failed = [s for s in summary["shots"] if s["status"] == "failed"]
    assert len(failed) == 1 and "no result after 2 s" in failed[0]["error"]
    journal = Cache(project / ".storyboard").journal()
    assert [e.label for e in journal.values()] == [failed[0]["shot"]]
    assert server.stats()["billed_cost"] == pytest.approx(0.56)
    status = json.loads(cli("status", simple, "--json").out)
    assert [r["name"] for r in status if r["status"] == "in flight"] == [failed[0]["shot"]]


def test_max_cost_below_estimate_submits_nothing(project: Path, cli, server, simple) -> None:
    result = cli("build", simple, "--max-cost", "0.5")
    assert result.code == 2
    assert "would cost about $0.84, over the budget of $0.50" in result.err
    assert server.stats()["submits"] == 0


def test_max_cost_stops_new_submits_mid_build(project: Path, cli, server, simple) -> None:
    # The estimate ($0.84) fits the budget, but the provider now bills 50% more.
    server.state.price_factor = 1.5
    result, summary = build(cli, simple, "-j", "1", "--max-cost", "1.0")
    assert result.code == 1
    assert summary["rendered"] == 2 and summary["skipped"] == 1
    assert summary["spent"] == pytest.approx(0.84)
    skipped = next(s for s in summary["shots"] if s["status"] == "skipped")
    assert "budget" in skipped["error"]
    assert "would pass --max-cost $1.00: no new renders" in result.err
    assert server.stats()["submits"] == 2


def test_invalid_key_one_error_no_submit(project: Path, cli, server, simple, monkeypatch) -> None:
    monkeypatch.setenv("RUNWARE_API_KEY", "sk-wrong")
    result = cli("build", simple, "-j", "3")
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert errors == ["error: Runware refused the API key (invalidApiKey: Invalid API key)"]
    stats = server.stats()
    assert stats["submits"] == 0 and stats["auth_failures"] == 1


def _spawn(project: Path, spec: Path, server: RunwareServer, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "RUNWARE_BASE_URL": server.url, "RUNWARE_API_KEY": KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "build", str(spec), "--json", *extra],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_with_tasks_in_flight_then_rebuild(project: Path, cli, server, simple) -> None:
    server.state.latency = 3.0
    process = _spawn(project, simple, server, "-j", "3")
    deadline = time.monotonic() + 30
    while server.stats()["accepted"] < 3:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert server.stats()["downloads"] == 0  # all three were in flight
    journal = Cache(project / ".storyboard").journal()
    assert len(journal) == 3 and all(e.task_uuid for e in journal.values())
    result, summary = build(cli, simple, "-j", "3")
    assert result.code == 0, result.err
    stats = server.stats()
    assert stats["submits"] == 3 and stats["tasks_per_request"] == [1, 1, 1]  # no duplicate
    assert (
        summary["rendered"] == 3
        and len(list((project / ".storyboard" / "clips").rglob("*.mp4"))) == 3
    )
    assert stats["billed_cost"] == pytest.approx(SIMPLE_COST)
    assert Cache(project / ".storyboard").journal() == {}


def test_journaled_task_unknown_to_server_is_submitted_anew(project, cli, server, simple) -> None:
    from pipeline import spec as spec_module
    from pipeline.cache import JournalEntry
    from pipeline.expand import expand

    shot = expand(spec_module.load(simple), "runware").shots[0]
    cache = Cache(project / ".storyboard")
    cache.journal_write(
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


def test_api_key_leaves_no_trace(project: Path, cli, server: RunwareServer, simple: Path) -> None:
    server.set_faults(http_500=1, drop_submit=1, error_envelope=1, truncate=1)
    outputs = []
    for args in (["-k", "-v"], ["-v"], []):
        result = cli("build", simple, *args)
        outputs += [result.out, result.err]
    outputs.append(cli("status", simple).out)
    outputs.append(cli("plan", simple, "--json").out)
    assert not any(KEY in text for text in outputs)
    for path in project.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


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
    assert (
        httpx.post(server.url, json=[base], headers={"Authorization": "Bearer x"}).status_code
        == 401
    )


def test_submit_whose_answers_are_all_lost_is_confirmed_not_repeated(project: Path, server) -> None:
    import asyncio

    from pipeline import spec as spec_module
    from pipeline.expand import expand
    from pipeline.render import RenderJob
    from pipeline.render.runware import RetryPolicy, RunwareRenderer

    spec = write(
        project / "specs" / "one.yaml",
        "version: 1\nname: one\nshots:\n  - {id: one, prompt: a single shot}\n",
    )
    shot = expand(spec_module.load(spec), "runware").shots[0]
    cache = Cache(project / ".storyboard")
    noted: list[str] = []

    async def scenario() -> None:
        renderer = RunwareRenderer(cache, KEY, server.url, retry=RetryPolicy(attempts=4, base=0.05))
        try:
            await renderer.check_key()
            # The submit is accepted but its answer is lost, then every retry meets a 500.
            server.set_faults(drop_submit=1, http_500=3)
            job = RenderJob(shot=shot, output=cache.temp_path(), note_task=noted.append)
            result = await renderer.render(job)
            assert result.info is not None and result.info.duration == 6.0
        finally:
            await renderer.aclose()

    asyncio.run(scenario())
    stats = server.stats()
    assert stats["accepted"] == 1 and len(noted) == 1
    assert stats["billed_cost"] == pytest.approx(0.28)
