"""The real Runware client and scheduler against the local server through its httpx transport:
every published answer shape and every fault, in milliseconds, no socket.

Each test ends with the money check: what the server billed is what the cache holds (clips
delivered, plus tasks kept journaled), and no request was billed twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pipeline import spec as spec_module
from pipeline.cache import Cache, JournalEntry
from pipeline.expand import expand
from pipeline.graph import Graph
from pipeline.nodes import Node
from pipeline.render.runware import PollTiming, RunwareRenderer
from pipeline.retry import Backoff
from pipeline.run.shots import (
    Outcome,
    ScheduleOptions,
    Scheduler,
    Spending,
)
from pipeline.state import Ran
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import write
from tests.runware_support import KEY, assert_money_safe, make_image, shots_spec

FAST = PollTiming(first=0.02, floor=0.02, ceiling=0.2, give_up_after=4, not_found_grace=0.3)
BACKOFF = Backoff(attempts=4, base=0.01, cap=0.05, seed=7)
SHAPES = ["errors", "data_flat", "data_nested"]


@pytest.fixture
def runware(clip_dir: Path) -> Iterator[RunwareServer]:
    """The server, used only through its transport."""
    server = RunwareServer(latency=0.05, api_keys={KEY}, clip_dir=clip_dir)
    server.set_faults(retry_after=0.05, trickle_interval=0.05)
    yield server
    server.stop()


@dataclass
class Run:
    outcomes: list[Outcome]
    spending: Spending
    notes: list[str]
    fatal: str | None
    cache: Cache

    def status(self) -> list[str]:
        return [o.status for o in self.outcomes]


class Notes:
    def __init__(self, notes: list[str]) -> None:
        self.notes = notes

    def shot_started(self, shot: Node) -> None: ...

    def shot_phase(self, shot: Node, phase: str, spent: float) -> None: ...

    def shot_finished(self, outcome: Outcome, spent: float) -> None: ...

    def note(self, message: str) -> None:
        self.notes.append(message)


def graph_of(project: Path, text: str) -> Graph:
    spec = write(project / "specs" / "t.yaml", text)
    return Graph.of(expand(spec_module.load(spec), "runware"))


def shots_of(project: Path, text: str) -> list[Node]:
    return graph_of(project, text).renders()


def render(
    project: Path,
    server: RunwareServer,
    text: str,
    *,
    jobs: int = 4,
    max_cost: float | None = None,
    download_timeout: float = 5.0,
    transport: httpx.AsyncBaseTransport | None = None,
    timing: PollTiming = FAST,
) -> Run:
    graph = graph_of(project, text)
    cache = Cache(project / ".storyboard")
    notes: list[str] = []

    async def go() -> Run:
        renderer = RunwareRenderer(
            cache,
            KEY,
            "http://runware.test/v1",
            timing=timing,
            backoff=BACKOFF,
            download_timeout=download_timeout,
            transport=transport or server.transport(),
            retry_after_cap=0.3,
            note=notes.append,
        )
        options = ScheduleOptions(
            jobs=jobs, keep_going=True, retries=2, backoff=BACKOFF, max_cost=max_cost
        )
        scheduler = Scheduler(cache, renderer, options, Notes(notes), graph, cache.frame)
        try:
            # A task left waiting for its 30-minute timeout would fail the test here.
            outcomes = await asyncio.wait_for(scheduler.run(list(graph.nodes)), 60)
        finally:
            await renderer.aclose()
        fatal = scheduler.fatal.message if scheduler.fatal else None
        return Run(outcomes, scheduler.spending, notes, fatal, cache)

    return asyncio.run(go())


def journal_task(project: Path, server: RunwareServer, shot: Node) -> str:
    """A task sent by a build that then died: accepted by the server, named in the journal."""
    task_uuid = str(uuid.uuid4())
    task = {**shot.request, "taskUUID": task_uuid}
    headers = {"Authorization": f"Bearer {KEY}"}
    reply = server.respond("POST", "/v1", headers, json.dumps([task]).encode())
    assert reply.status == 200, reply.body
    Cache(project / ".storyboard").journal.write(
        JournalEntry(
            key=shot.key, renderer="runware", label=shot.label, started=0.0, task_uuid=task_uuid
        )
    )
    return task_uuid


def test_results_without_status_are_collected(project: Path, runware: RunwareServer) -> None:
    runware.set_faults(dialect="docs")
    run = render(project, runware, shots_spec(3))
    assert run.status() == [Ran.RENDERED] * 3
    stats = assert_money_safe(runware, run.cache)
    assert stats["accepted"] == 3 and stats["billed_cost"] == pytest.approx(0.84)
    assert run.spending.spent == pytest.approx(0.84)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_refusal_is_final_and_names_the_servers_code(
    project: Path, runware: RunwareServer, shape: str
) -> None:
    runware.set_faults(failure_shape=shape, content_policy=1)
    run = render(project, runware, shots_spec(1))
    assert run.outcomes[0].status == Ran.FAILED
    assert run.outcomes[0].error == (
        "shot 's0': the render failed: providerContentPolicyViolation: "
        "The provider refused to render this request under its content policy "
        "(Runware's safety filter: refused every time, so not sent again)"
    )
    stats = assert_money_safe(runware, run.cache)
    assert stats["submits"] == 1  # never sent again: it would fail again
    assert run.cache.journal.entries() == {}  # nothing left to collect


@pytest.mark.parametrize("shape", SHAPES)
def test_a_provider_timeout_is_tried_again(
    project: Path, runware: RunwareServer, shape: str
) -> None:
    runware.set_faults(failure_shape=shape, task_error=1)
    run = render(project, runware, shots_spec(1))
    assert run.status() == [Ran.RENDERED]
    assert any("timeoutProvider" in n and "retry 1/2" in n for n in run.notes), run.notes
    stats = assert_money_safe(runware, run.cache)
    assert stats["accepted"] == 2 and stats["billed_tasks"] == 1


def test_a_failure_naming_no_task_is_traced_by_asking_alone(
    project: Path, runware: RunwareServer
) -> None:
    runware.set_faults(error_task_uuid=False, task_error=1)
    run = render(project, runware, shots_spec(4))
    assert run.status() == [Ran.RENDERED] * 4
    stats = assert_money_safe(runware, run.cache)
    assert stats["accepted"] == 5 and stats["billed_tasks"] == 4


def test_batched_polls_that_fail_are_asked_one_by_one(
    project: Path, runware: RunwareServer
) -> None:
    runware.set_faults(batch_poll_500=1000)
    run = render(project, runware, shots_spec(4))
    assert run.status() == [Ran.RENDERED] * 4
    stats = assert_money_safe(runware, run.cache)
    assert stats["faults_served"]["batch_poll_500"] >= 1 and stats["accepted"] == 4


def test_a_task_that_cannot_be_asked_about_stays_journaled(
    project: Path, runware: RunwareServer
) -> None:
    runware.set_faults(drop_poll=1000)
    run = render(project, runware, shots_spec(1))
    assert run.outcomes[0].status == Ran.FAILED
    assert "could not learn how the task went (4 polls failed" in (run.outcomes[0].error or "")
    assert len(run.cache.journal.entries()) == 1
    runware.set_faults(drop_poll=0)
    again = render(project, runware, shots_spec(1))
    assert again.outcomes[0].status == Ran.RENDERED and again.outcomes[0].collected
    stats = assert_money_safe(runware, again.cache)
    assert stats["accepted"] == 1


def test_a_new_task_the_server_then_does_not_know_is_tried_again(
    project: Path, runware: RunwareServer
) -> None:
    runware.set_faults(task_vanish=1)
    run = render(project, runware, shots_spec(2))
    assert run.status() == [Ran.RENDERED] * 2
    assert any("taskFailedOrNotFound" in n for n in run.notes), run.notes
    stats = assert_money_safe(runware, run.cache)
    assert stats["accepted"] == 3 and stats["billed_tasks"] == 2


def test_a_journaled_task_the_server_does_not_know_is_rendered_anew(
    project: Path, runware: RunwareServer
) -> None:
    shot = shots_of(project, shots_spec(1))[0]
    Cache(project / ".storyboard").journal.write(
        JournalEntry(
            key=shot.key, renderer="runware", label="s0", started=0, task_uuid=str(uuid.uuid4())
        )
    )
    run = render(project, runware, shots_spec(1))
    assert run.status() == [Ran.RENDERED]
    lost = [n for n in run.notes if "has not known its task for" in n]
    assert lost and lost[0].endswith("it is taken as lost: rendering it anew"), run.notes
    assert assert_money_safe(runware, run.cache)["accepted"] == 1


SAFETY_CODES = [
    "contentPolicyViolation",
    "providerContentPolicyViolation",
    "sensitiveContentDetected",
    "unsafeContentDetected",
    "nsfwContentDetected",
    "promptBlocked",
    "imageBlocked",
    "moderationFailed",
]


@pytest.mark.parametrize("code", SAFETY_CODES)
@pytest.mark.parametrize("shapes", [{}, {"error_task_uuid": False}], ids=["named", "anonymous"])
def test_a_safety_refusal_is_submitted_once(
    project: Path, runware: RunwareServer, code: str, shapes: dict
) -> None:
    """runware-python's safety codes, in the top-level `errors` of a poll (naming the task
    or not): final, never sent again, nothing left to collect."""
    runware.set_faults(safety_refusal=1, safety_code=code, **shapes)
    run = render(project, runware, shots_spec(1))
    assert run.status() == [Ran.FAILED]
    error = run.outcomes[0].error or ""
    assert error.startswith(f"shot 's0': the render failed: {code}: "), error
    assert "safety filter: refused every time, so not sent again" in error
    stats = assert_money_safe(runware, run.cache)
    assert stats["submits"] == 1 and stats["accepted"] == 1
    assert run.cache.journal.entries() == {}


def test_an_image_refused_by_the_safety_filter_is_not_uploaded_again(
    project: Path, runware: RunwareServer
) -> None:
    """`imageBlocked` names an image, as an expired upload does: it is a refusal all the
    same, not a reason to upload and submit again."""
    make_image(project / "specs" / "assets" / "frame.jpg", 683, 384)
    blocked = {"code": "imageBlocked", "message": "blocked", "parameter": "inputs.frameImages"}
    transport = RefusingTransport(runware.transport(), blocked)
    run = render(project, runware, IMAGE_SPEC, transport=transport)
    assert run.status() == [Ran.FAILED]
    assert "Runware refused the task: imageBlocked: blocked" in (run.outcomes[0].error or "")
    assert transport.submits == 1 and runware.stats()["uploads"] == 1


class RefusingTransport(httpx.AsyncBaseTransport):
    """The server's transport, whose submits are all refused with one error object."""

    def __init__(self, inner: httpx.AsyncBaseTransport, error: dict) -> None:
        self.inner, self.error, self.submits = inner, error, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(await request.aread() or b"[]")
        if any(t.get("taskType") == "videoInference" for t in body if isinstance(t, dict)):
            self.submits += 1
            return httpx.Response(400, json={"errors": [self.error]})
        return await self.inner.handle_async_request(request)


class LosingTransport(httpx.AsyncBaseTransport):
    """The server's transport, which delivers every submit and loses every answer to it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.lost = inner, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(await request.aread() or b"[]")
        response = await self.inner.handle_async_request(request)
        if any(t.get("taskType") == "videoInference" for t in body if isinstance(t, dict)):
            self.lost += 1
            raise httpx.ReadError("the connection was reset")
        return response


def test_a_task_hidden_past_its_grace_is_taken_as_lost_and_said(
    project: Path, runware: RunwareServer
) -> None:
    """The grace (0.3 s here, 5 minutes by default) is what stands between a lag and a
    second bill: a task unknown for longer is submitted anew, and the first still renders."""
    runware.set_faults(hidden=1, hidden_seconds=60)
    run = render(project, runware, shots_spec(1))
    assert run.status() == [Ran.RENDERED]
    waiting = [n for n in run.notes if "does not show its task yet" in n]
    assert waiting and "waiting up to 0 s for it before rendering it anew" in waiting[0]
    assert any("it is taken as lost: rendering it anew" in n for n in run.notes), run.notes
    stats = runware.stats()
    assert stats["accepted"] == 2 and stats["billed_tasks"] == 2  # the price of a lost task


def test_a_journaled_task_sent_moments_ago_is_waited_for(
    project: Path, runware: RunwareServer
) -> None:
    """A build killed just after a submit, built again at once: the task is not visible yet,
    and it is collected, not sent again."""
    shot = shots_of(project, shots_spec(1))[0]
    runware.set_faults(hidden=1, hidden_seconds=0.5)
    task_uuid = journal_task(project, runware, shot)
    entry = Cache(project / ".storyboard").journal.read(shot.key)
    assert entry is not None and entry.task_uuid == task_uuid
    Cache(project / ".storyboard").journal.write(entry.model_copy(update={"started": time.time()}))
    timing = PollTiming(first=0.02, floor=0.02, ceiling=0.2, give_up_after=4, not_found_grace=5)
    run = render(project, runware, shots_spec(1), timing=timing)
    assert run.status() == [Ran.RENDERED] and run.outcomes[0].collected
    stats = assert_money_safe(runware, run.cache)
    assert stats["submits"] == 1 and stats["billed_tasks"] == 1
    assert any("does not show its task yet" in n for n in run.notes), run.notes


def test_a_submit_whose_answers_are_all_lost_is_waited_for(
    project: Path, runware: RunwareServer
) -> None:
    """Accepted, then every answer lost: the task is polled as an accepted one, not sent
    again under a new taskUUID."""
    transport = LosingTransport(runware.transport())
    run = render(project, runware, shots_spec(1), transport=transport)
    assert run.status() == [Ran.RENDERED]
    assert transport.lost == BACKOFF.attempts
    assert any("waiting for the task as if it was accepted" in n for n in run.notes), run.notes
    stats = assert_money_safe(runware, run.cache)
    assert stats["accepted"] == 1 and stats["billed_tasks"] == 1


IMAGE_SPEC = """\
version: 1
name: frames
defaults: {resolution: 768p, duration: 6}
shots:
  - {id: still, prompt: the lantern turns slowly, first_frame: assets/frame.jpg}
"""


def test_an_upload_answered_with_one_object(project: Path, runware: RunwareServer) -> None:
    make_image(project / "specs" / "assets" / "frame.jpg", 683, 384)
    runware.set_faults(upload_shape="object")
    run = render(project, runware, IMAGE_SPEC)
    assert run.status() == [Ran.RENDERED]
    stats = assert_money_safe(runware, run.cache)
    assert stats["uploads"] == 1 and stats["accepted"] == 1


def test_an_expired_image_is_uploaded_again(project: Path, runware: RunwareServer) -> None:
    make_image(project / "specs" / "assets" / "frame.jpg", 683, 384)
    assert render(project, runware, IMAGE_SPEC).status() == [Ran.RENDERED]
    runware.set_faults(expire_images=1)
    run = render(project, runware, IMAGE_SPEC.replace("turns slowly", "flickers"))
    assert run.status() == [Ran.RENDERED]
    assert any("invalidFrameImage" in n and "uploading the image again" in n for n in run.notes)
    stats = assert_money_safe(runware, run.cache)
    assert stats["uploads"] == 2 and stats["accepted"] == 2


def test_a_clip_at_the_first_frames_aspect_ratio_is_kept(
    project: Path, runware: RunwareServer
) -> None:
    make_image(project / "specs" / "assets" / "frame.jpg", 600, 600)
    runware.set_faults(dialect="docs")
    run = render(project, runware, IMAGE_SPEC)
    outcome = run.outcomes[0]
    assert outcome.status == Ran.RENDERED and outcome.record is not None
    assert (outcome.record.width, outcome.record.height) == (768, 768)
    assert "768x768" in (outcome.warning or "") and "kept (it was paid for)" in outcome.warning
    stats = assert_money_safe(runware, run.cache)
    assert stats["downloads"] == 1 and stats["accepted"] == 1


@pytest.mark.parametrize("offset", [1, -1])
def test_a_clip_a_frame_off_is_kept(project: Path, runware: RunwareServer, offset: int) -> None:
    runware.set_faults(frame_offset=offset)
    run = render(project, runware, shots_spec(1))
    outcome = run.outcomes[0]
    assert outcome.status == Ran.RENDERED and outcome.record is not None
    assert outcome.record.duration == pytest.approx(6 + offset / 25)
    stats = assert_money_safe(runware, run.cache)
    assert stats["downloads"] == 1 and stats["accepted"] == 1


def test_no_credit_stops_submits_and_collects_what_runs(
    project: Path, runware: RunwareServer
) -> None:
    first = shots_of(project, shots_spec(3))[0]
    journal_task(project, runware, first)
    runware.set_faults(insufficient_credit=10)
    run = render(project, runware, shots_spec(3), jobs=1)
    assert run.status() == [Ran.RENDERED, Ran.FAILED, Ran.SKIPPED]
    assert run.outcomes[0].collected
    assert run.outcomes[1].error == (
        "Runware refused the account (insufficientCredits: "
        "Insufficient credits to run this task. Top up your balance.)"
    )
    assert run.fatal == run.outcomes[1].error
    stats = assert_money_safe(runware, run.cache)
    assert stats["accepted"] == 1 and stats["faults_served"]["insufficient_credit"] == 1


def test_a_success_without_video_url_keeps_the_task(project: Path, runware: RunwareServer) -> None:
    runware.set_faults(no_video_url=1)
    run = render(project, runware, shots_spec(1))
    assert run.outcomes[0].status == Ran.FAILED
    assert "done but gave no videoURL" in (run.outcomes[0].error or "")
    entry = next(iter(run.cache.journal.entries().values()))
    assert entry.cost == pytest.approx(0.28)  # paid, and known to be
    assert run.spending.spent == pytest.approx(0.28)
    assert_money_safe(runware, run.cache)
    again = render(project, runware, shots_spec(1))
    assert again.status() == [Ran.RENDERED] and again.outcomes[0].collected
    assert again.spending.spent == 0 and again.spending.collected == pytest.approx(0.28)
    stats = assert_money_safe(runware, again.cache)
    assert stats["accepted"] == 1


def test_a_cost_that_is_not_a_price_counts_at_the_estimate(
    project: Path, runware: RunwareServer
) -> None:
    runware.set_faults(nan_cost=1)
    run = render(project, runware, shots_spec(1), max_cost=1.0)
    outcome = run.outcomes[0]
    assert outcome.status == Ran.RENDERED and outcome.record is not None
    assert outcome.record.cost is None
    assert any("reported a cost of nan, which is not a price" in n for n in run.notes)
    assert run.spending.estimated == pytest.approx(0.28) and run.spending.spent == 0


def test_a_long_retry_after_is_capped_and_said(project: Path, runware: RunwareServer) -> None:
    runware.set_faults(http_429=1, retry_after=100000)
    run = render(project, runware, shots_spec(1))
    assert run.status() == [Ran.RENDERED]
    assert any("asked to wait 100000 s (HTTP 429); waiting 0.3 s" in n for n in run.notes)


def test_retry_after_as_an_http_date(project: Path, runware: RunwareServer) -> None:
    runware.set_faults(http_429=1, retry_after=1, retry_after_format="date")
    run = render(project, runware, shots_spec(1))
    assert run.status() == [Ran.RENDERED]
    assert runware.stats()["faults_served"] == {"http_429": 1}


def test_a_trickling_download_is_cut_at_its_deadline(project: Path, runware: RunwareServer) -> None:
    runware.set_faults(trickle=1)
    run = render(project, runware, shots_spec(1), download_timeout=0.5)
    assert run.status() == [Ran.RENDERED]
    assert any("the download took longer than 0.5 s; downloading it again" in n for n in run.notes)
    stats = assert_money_safe(runware, run.cache)
    assert stats["accepted"] == 1


def test_a_clip_that_never_arrives_whole_stays_journaled_at_its_cost(
    project: Path, runware: RunwareServer
) -> None:
    runware.set_faults(truncate=4)
    run = render(project, runware, shots_spec(1), max_cost=1.0)
    outcome = run.outcomes[0]
    assert outcome.status == Ran.FAILED
    assert "the download stopped at" in (outcome.error or "")
    assert run.spending.spent == pytest.approx(0.28)  # spent, whatever became of the clip
    assert next(iter(run.cache.journal.entries().values())).cost == pytest.approx(0.28)
    assert_money_safe(runware, run.cache)
    again = render(project, runware, shots_spec(1))
    assert again.status() == [Ran.RENDERED] and again.outcomes[0].collected
    assert assert_money_safe(runware, again.cache)["accepted"] == 1


def test_collecting_what_an_earlier_build_paid_for_is_not_charged_again(
    project: Path, runware: RunwareServer
) -> None:
    journal_task(project, runware, shots_of(project, shots_spec(2))[0])
    # The budget fits one new render: the task collected was paid by the build that sent it.
    run = render(project, runware, shots_spec(2), max_cost=0.3)
    assert run.status() == [Ran.RENDERED, Ran.RENDERED]
    assert run.spending.spent == pytest.approx(0.28)
    assert run.spending.collected == pytest.approx(0.28)
    assert assert_money_safe(runware, run.cache)["accepted"] == 2


def test_an_unreadable_journal_entry_stops_the_build(project: Path, runware: RunwareServer) -> None:
    shot = shots_of(project, shots_spec(1))[0]
    broken = write(project / ".storyboard" / "journal" / f"{shot.key}.json", '{"key": ')
    run = render(project, runware, shots_spec(1))
    assert run.status() == [Ran.FAILED]
    assert run.fatal is not None and str(broken) in run.fatal
    assert runware.stats()["submits"] == 0
    assert broken.read_text() == '{"key": '  # left as it was


class QuotingTransport(httpx.AsyncBaseTransport):
    """The server's transport, whose first API requests fail with an error that quotes the
    request's Authorization header (as some network stacks and proxies do)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, error: type[Exception], count: int):
        self.inner, self.error, self.count = inner, error, count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.count and request.url.path == "/v1":
            self.count -= 1
            raise self.error(
                f"reset while sending Authorization: {request.headers['Authorization']}"
            )
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("error", [httpx.ConnectError, RuntimeError])
def test_an_error_quoting_the_key_is_redacted(
    project: Path, runware: RunwareServer, error: type[Exception]
) -> None:
    """Transport errors (retried) and faults of the tool itself (the shot fails): the key
    is in no note and no failure; the redacted text still says what happened."""
    transport = QuotingTransport(runware.transport(), error, count=BACKOFF.attempts)
    run = render(project, runware, shots_spec(1), transport=transport)
    said = run.notes + [o.error or "" for o in run.outcomes]
    assert not [text for text in said if KEY in text or KEY[8:] in text]
    assert any("Bearer <RUNWARE_API_KEY>" in text for text in said), said
    assert_money_safe(runware, run.cache)


def test_a_video_url_no_client_can_use_is_collected_later(
    project: Path, runware: RunwareServer
) -> None:
    runware.set_faults(bad_video_url=1)
    first = render(project, runware, shots_spec(1))
    assert first.status() == [Ran.FAILED]
    assert "the clip could not be collected: the download failed" in (first.outcomes[0].error or "")
    assert first.cache.journal.entries()  # paid for: kept to collect
    again = render(project, runware, shots_spec(1))
    assert again.status() == [Ran.RENDERED] and again.outcomes[0].collected
    assert assert_money_safe(runware, again.cache)["billed_tasks"] == 1


def test_a_download_that_lies_about_its_encoding_is_fetched_again(
    project: Path, runware: RunwareServer
) -> None:
    runware.set_faults(bad_encoding=1)
    run = render(project, runware, shots_spec(1))
    assert run.status() == [Ran.RENDERED]
    assert any("downloading it again" in note for note in run.notes), run.notes
    stats = assert_money_safe(runware, run.cache)
    assert stats["downloads"] == 2 and stats["faults_served"] == {"bad_encoding": 1}
