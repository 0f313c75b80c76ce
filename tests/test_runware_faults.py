"""Every fault the local server injects, in every answer shape the protocol records, through
the real CLI over HTTP: each build ends with every clip in the cache or a one-line error
naming the shot and the server's code, billed = delivered + kept, and nothing paid twice;
safety refusals and tasks not visible yet; and the key in nothing the tool says or writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.testing.runware_server import FAULTS as FAULT_NAMES
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import write
from tests.runware_support import KEY, assert_money_safe, build, cache_of, shots_spec

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
    planned = json.loads(cli("plan", simple, "--json").out)["shots"]
    if "content policy" in failed[0]["error"]:  # the provider refused the request itself
        assert [r["status"] for r in planned].count("refused") == 1
        submits = server.stats()["submits"]
        again, summary = build(cli, simple, "-j", "3")
        assert again.code == 1 and server.stats()["submits"] == submits  # not sent again
        again, summary = build(cli, simple, "-j", "3", "--force", failed[0]["shot"])
    else:  # it may work another time: tried again (or collected, when it was paid)
        assert "refused" not in [r["status"] for r in planned]
        again, summary = build(cli, simple, "-j", "3")
    assert again.code == 0, again.err
    stats = assert_money_safe(server, cache_of(project))
    assert stats["billed_tasks"] == 3  # whatever happened, three clips were paid for


def test_a_task_unknown_to_the_server_for_a_while_after_acceptance_is_collected_once(
    project: Path, cli, server: RunwareServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """taskFailedOrNotFound for the first second after the submit (polls every 0.1 s at
    first), with the grace of the real API (5 minutes): waited for, said on screen,
    collected; one submit, one bill."""
    monkeypatch.delenv("RUNWARE_NOT_FOUND_GRACE")
    spec = write(project / "specs" / "one.yaml", shots_spec(1, name="one"))
    server.set_faults(hidden=1, hidden_seconds=1)
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
    film = "sequences:\n  - {id: film, shots: [s0], preset: ultrafast}\n"
    spec = write(project / "specs" / "one.yaml", shots_spec(1, name="one") + film)
    server.set_faults(safety_refusal=1, safety_code="nsfwContentDetected")
    result, summary = build(cli, spec, "--retries", "3")
    assert result.code == 1
    error = summary["shots"][0]["error"]
    assert error.startswith("shot 's0': the render failed: nsfwContentDetected: ")
    assert "\n" not in error and "Traceback" not in result.err
    stats = assert_money_safe(server, cache_of(project))
    assert stats["submits"] == 1 and stats["billed_cost"] == 0

    # The next build does not send it again: the refusal is a fact of the request.
    planned = cli("plan", spec, "--why")
    assert "refused (nsfwContentDetected); --force s0 to try again" in planned.out
    # Its film is blocked by it, and says so (not only that it is new).
    assert "blocked: the provider refused s0 before" in planned.out
    assert "$0.00" in planned.out  # nothing to pay for
    again, summary = build(cli, spec)
    assert again.code == 1 and server.stats()["submits"] == 1
    error = summary["shots"][0]["error"]
    assert "refused before (nsfwContentDetected), not sent again; --force s0 to try" in error
    # Forced, it is sent: a person decided the request may pass now.
    forced, summary = build(cli, spec, "--force", "s0")
    assert forced.code == 0 and server.stats()["submits"] == 2
    assert cli("plan", spec, "--json").out.count('"cached"') >= 1


def test_join_only_pays_for_nothing_whatever_else_it_is_told(
    project: Path, cli, server: RunwareServer
) -> None:
    text = shots_spec(2) + "sequences:\n  - {id: two, shots: [s0, s1], preset: ultrafast}\n"
    spec = write(project / "specs" / "simple.yaml", text)
    assert build(cli, spec)[0].code == 0
    paid = server.stats()["submits"]
    spec.write_text(
        shots_spec(3) + "sequences:\n  - {id: two, shots: [s0, s1], preset: ultrafast}\n"
        "  - {id: three, shots: [s0, s1, s2], preset: ultrafast}\n"
    )
    # --only and --force name renders; --join-only is told to pay for none, and it does not.
    result, summary = build(cli, spec, "--join-only", "--only", "s2", "--force", "s0")
    assert result.code == 0, result.err
    assert server.stats()["submits"] == paid and summary["spent"] == 0
    assert "--join-only renders nothing: --only and --force are not used" in result.err
    assert [s["sequence"] for s in summary["sequences"]] == ["two"]  # the film it can join


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


def test_an_api_that_cannot_be_reached_fails_the_build_before_any_submit(
    project: Path, cli, simple: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that takes the connection and answers nothing: the ping before the first
    submit is tried twice, then the whole build stops naming the host (not three renders,
    each retried with backoff, each pinging six times)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def hang_up() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    port = listener.getsockname()[1]
    monkeypatch.setenv("RUNWARE_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("RUNWARE_API_KEY", KEY)
    try:
        result, summary = build(cli, simple, "-j", "3")
    finally:
        listener.close()
    assert result.code == 1
    assert "Runware at 127.0.0.1 cannot be reached" in summary["error"]
    assert "nothing was submitted" in summary["error"]
    assert len(accepted) == 2  # the ping, twice; then no render tried at all
    assert summary["rendered"] == 0 and summary["failed"] + summary["skipped"] == 3
