"""The real Runware client, through the real CLI, against the local server over HTTP, in each
dialect the protocol records. Every build ends with each clip in the cache or a one-line
error naming the shot and the server's code, and billed = delivered + kept."""

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

from pipeline.cache import Cache, JournalEntry
from pipeline.testing.runware_server import FAULTS as FAULT_NAMES
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import write
from tests.runware_support import KEY, assert_money_safe, local_runware, make_image, shots_spec

SIMPLE_COST = 3 * 0.28


@pytest.fixture
def server(
    project: Path, monkeypatch: pytest.MonkeyPatch, clip_dir: Path
) -> Iterator[RunwareServer]:
    with local_runware(monkeypatch, clip_dir, latency=0.3) as running:
        running.set_faults(retry_after=0.2)
        yield running


@pytest.fixture
def simple(project: Path) -> Path:
    text = shots_spec(3) + "sequences:\n  - {id: all, shots: [s0, s1, s2], preset: ultrafast}\n"
    return write(project / "specs" / "simple.yaml", text)


def build(cli, spec: Path, *args: str):
    result = cli("build", spec, "--json", *args)
    return result, json.loads(result.out) if result.out.strip() else None


def cache_of(project: Path) -> Cache:
    return Cache(project / ".storyboard")


SDK = {"dialect": "sdk"}
DOCS = {"dialect": "docs"}
# An `errors` entry that names no task (the failure of the whole request, as far as it says).
ANONYMOUS = {"dialect": "sdk", "error_task_uuid": False}
# (fault, count, the server's shapes, the failed shot's expected words or None for success).
# Faults of the transport look the same in every dialect: each runs in one; faults whose
# answer has a shape run in each shape.
FAULTS = [
    ("http_500", 3, SDK, None),
    ("http_429", 2, DOCS, None),  # Retry-After as an HTTP date
    ("drop_submit", 2, SDK, None),
    ("drop_poll", 2, DOCS, None),
    ("batch_poll_500", 1, SDK, None),
    ("truncate", 1, SDK, None),
    ("corrupt", 1, DOCS, None),
    ("task_error", 1, SDK, None),
    ("task_error", 1, DOCS, None),
    ("task_error", 1, ANONYMOUS, None),
    ("task_vanish", 1, DOCS, None),
    ("content_policy", 1, SDK, "the render failed: providerContentPolicyViolation"),
    ("content_policy", 1, DOCS, "the render failed: providerContentPolicyViolation"),
    ("content_policy", 1, ANONYMOUS, "the render failed: providerContentPolicyViolation"),
    ("error_envelope", 1, SDK, "Runware refused the task: providerContentPolicyViolation"),
    ("no_video_url", 1, SDK, "done but gave no videoURL"),
    # Without a status, an item lacking its videoURL reads as still running: asked again.
    ("no_video_url", 1, DOCS, None),
]


@pytest.mark.parametrize(
    ("fault", "count", "shapes", "failure"),
    FAULTS,
    ids=[f"{f[0]}-{'-'.join(str(v) for v in f[2].values())}" for f in FAULTS],
)
def test_every_fault_in_every_shape_ends_money_safe(
    project: Path,
    cli,
    server: RunwareServer,
    simple: Path,
    fault: str,
    count: int,
    shapes: dict,
    failure: str | None,
) -> None:
    server.set_faults(**shapes, **{fault: count})
    result, summary = build(cli, simple, "-j", "3", "-k")
    stats = assert_money_safe(server, cache_of(project))
    assert stats["faults_served"].get(fault) == count
    if fault in ("truncate", "corrupt"):
        assert stats["downloads"] == 3 + count  # fetched again, never rendered again
    if failure is None:
        assert result.code == 0, result.err
        assert summary["rendered"] == 3
        assert stats["billed_cost"] == pytest.approx(summary["spent"]) == pytest.approx(0.84)
        return
    assert result.code == 1
    failed = [s for s in summary["shots"] if s["status"] == "failed"]
    assert len(failed) == 1 and summary["rendered"] == 2
    assert failed[0]["error"].startswith(f"shot '{failed[0]['shot']}': ")
    assert failure in failed[0]["error"] and "\n" not in failed[0]["error"]
    again, summary = build(cli, simple, "-j", "3")
    assert again.code == 0, again.err
    stats = assert_money_safe(server, cache_of(project))
    assert stats["billed_tasks"] == 3  # whatever happened, three clips were paid for


def test_a_task_unknown_to_the_server_for_8_s_after_acceptance_is_collected_once(
    project: Path, cli, server: RunwareServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """taskFailedOrNotFound for the first 8 s after the submit, with the grace of the real
    API (5 minutes): waited for, said on screen, collected; one submit, one bill."""
    monkeypatch.delenv("RUNWARE_NOT_FOUND_GRACE")
    spec = write(project / "specs" / "one.yaml", shots_spec(1, name="one"))
    server.set_faults(hidden=1, hidden_seconds=8)
    result, summary = build(cli, spec)
    assert result.code == 0, result.err
    assert "Runware does not show its task yet" in result.err
    assert "waiting up to 5 min for it before rendering it anew" in result.err
    stats = assert_money_safe(server, cache_of(project))
    assert stats["faults_served"] == {"hidden": 1}
    assert stats["submits"] == 1 and stats["billed_tasks"] == 1
    assert stats["billed_cost"] == pytest.approx(0.28) == summary["spent"]


def test_a_safety_refusal_is_one_submit_and_one_located_line(
    project: Path, cli, server: RunwareServer
) -> None:
    spec = write(project / "specs" / "one.yaml", shots_spec(1, name="one"))
    server.set_faults(safety_refusal=1, safety_code="nsfwContentDetected")
    result, summary = build(cli, spec, "--retries", "3")
    assert result.code == 1
    error = summary["shots"][0]["error"]
    assert error.startswith("shot 's0': the render failed: nsfwContentDetected: ")
    assert "\n" not in error and "Traceback" not in result.err
    stats = assert_money_safe(server, cache_of(project))
    assert stats["submits"] == 1 and stats["billed_cost"] == 0


def test_a_task_that_never_finishes_stays_journaled(project: Path, cli, server, simple) -> None:
    server.set_faults(never_finish=1)
    result, summary = build(cli, simple, "-j", "3", "-k", "--task-timeout", "2")
    assert result.code == 1
    failed = [s for s in summary["shots"] if s["status"] == "failed"]
    assert len(failed) == 1 and "no result after 2 s" in failed[0]["error"]
    journal = cache_of(project).journal.entries()
    assert [e.label for e in journal.values()] == [failed[0]["shot"]]
    assert_money_safe(server, cache_of(project))
    status = json.loads(cli("status", simple, "--json").out)
    assert [r["name"] for r in status if r["status"] == "in flight"] == [failed[0]["shot"]]


def test_no_credit_is_one_error_and_stops_submits(project: Path, cli, server, simple) -> None:
    server.set_faults(insufficient_credit=5)
    result, summary = build(cli, simple, "-j", "1")
    assert result.code == 1
    assert summary["error"].startswith("Runware refused the account (insufficientCredits:")
    assert [s["status"] for s in summary["shots"]] == ["failed", "skipped", "skipped"]
    stats = assert_money_safe(server, cache_of(project))
    assert stats["faults_served"] == {"insufficient_credit": 1} and stats["accepted"] == 0


def test_a_cost_that_is_not_a_price_is_said_and_estimated(
    project: Path, cli, server, simple
) -> None:
    server.set_faults(nan_cost=1)
    result = cli("build", simple, "--max-cost", "5")
    assert result.code == 0, result.err
    assert "reported a cost of nan, which is not a price: refused" in result.err
    assert "spent $0.84" in result.err  # two reported, one counted at its estimate


def test_a_slow_download_is_said_and_cut_at_its_deadline(
    project: Path, cli, server, simple
) -> None:
    server.set_faults(trickle=1, trickle_interval=0.05)
    result = cli("build", simple, "--download-timeout", "0.5")
    assert result.code == 0, result.err
    assert "the download took longer than 0.5 s; downloading it again" in result.err
    assert server.stats()["accepted"] == 3


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
    with pytest.raises(SystemExit) as exit_info:
        cli("build", simple, "--max-cost", value)
    assert exit_info.value.code == 2


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
    server.set_faults(latency=3.0)
    process = _spawn(project, simple, server, "-j", "3")
    deadline = time.monotonic() + 30
    while server.stats()["accepted"] < 3:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert server.stats()["downloads"] == 0  # all three were in flight
    journal = cache_of(project).journal.entries()
    assert len(journal) == 3 and all(e.task_uuid for e in journal.values())
    result, summary = build(cli, simple, "-j", "3")
    assert result.code == 0, result.err
    stats = assert_money_safe(server, cache_of(project))
    assert stats["submits"] == 3 and stats["accepted"] == 3  # collected, not sent again
    assert summary["rendered"] == 3 and summary["collected"] == 3
    assert summary["spent"] == 0 and summary["collected_cost"] == pytest.approx(SIMPLE_COST)
    assert cache_of(project).journal.entries() == {}


def test_builds_racing_on_one_cache_never_pay_twice(
    project: Path, server: RunwareServer, tmp_path: Path
) -> None:
    from pipeline.testing.kill_race import race

    outcome = race(server, tmp_path / "race", KEY, shots=6, latency=4.0, kill_after=2.5)
    assert outcome.billed_per_request == [1] * 6, outcome
    assert outcome.survivor_code == 0 and outcome.clips == 6, outcome


def test_the_key_is_in_nothing_the_tool_prints_or_writes(
    project: Path, cli, server: RunwareServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every fault of the local server, then a key the provider refuses and a malformed one:
    the key is in no output, message, journal, failure note, lock, record or review page."""
    spec = write(
        project / "specs" / "leak.yaml",
        shots_spec(2, name="leak")
        + "  - {id: framed, prompt: the raincoat turns, first_frame: assets/raincoat.jpg}\n"
        + "sequences:\n  - {id: all, shots: [s0, s1, framed], preset: ultrafast}\n",
    )
    server.set_faults(trickle_interval=0.5, hidden_seconds=0.5, **dict.fromkeys(FAULT_NAMES, 1))
    printed = []
    limits = ("--task-timeout", "2", "--download-timeout", "1", "--retries", "1")
    for _ in range(8):  # until every fault was served: some wait for the one before
        result = cli("build", spec, "-k", "-v", "-j", "3", *limits, "--force", "s0", "framed")
        printed += [result.out, result.err]
        if set(server.stats()["faults_served"]) >= set(FAULT_NAMES):
            break
    assert set(server.stats()["faults_served"]) >= set(FAULT_NAMES)
    for command in (["status"], ["plan", "--json"], ["review"], ["prompts"]):
        result = cli(*command, spec)
        printed += [result.out, result.err]
    for key, code in ((f"{KEY[:8]}\r{KEY[8:]}", 2), ("sk-wrong-key", 1)):
        monkeypatch.setenv("RUNWARE_API_KEY", key)
        result = cli("build", spec, "--force", "s1")
        assert result.code == code, result.err
        printed += [result.out, result.err]
    secret = KEY[3:]  # a part of the key is a leak too
    assert not [text for text in printed if secret in text]
    written = [p for p in project.rglob("*") if p.is_file()]
    assert any(p.name == "index.html" for p in written) and any(
        p.parent.name == "failures" for p in written
    )
    assert not [p for p in written if secret.encode() in p.read_bytes()]


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
