"""The Runware renderer: MiniMax Hailuo 2.3 through the real API (see runware-protocol.md).

Never pay twice: the taskUUID is journaled before the submit is sent; a submit whose answer
was lost is sent again with the same taskUUID, and `conflictTaskUUID` then means "accepted";
a journaled task is polled, and only a task the server does not know is submitted anew.
Answers are read in every shape the protocol records: an output URL (`videoURL`, `audioURL`,
`imageURL`) means done whatever the `status` says or omits, for every task type; a failure
may come in `errors`, or in `data` with its code and message at the top or nested in
`error`, with or without the taskUUID it is about.
The API key goes only into the Authorization header of API requests: never to the download
host, never into a message, log, cache entry, journal or lock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import functools
import math
import mimetypes
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import httpx

from pipeline import media
from pipeline.cache import Cache
from pipeline.errors import (
    AccountError,
    AuthError,
    CacheError,
    ImageGone,
    MediaError,
    NotCollected,
    RefusedError,
    RenderError,
    StoryboardError,
    TaskUnknown,
    TransientError,
    Unreachable,
    UserError,
)
from pipeline.measure import ready
from pipeline.nodes import LipSync, Node, Upscale, placed
from pipeline.qc import watch_for
from pipeline.render import (
    CHECKING,
    DOWNLOADING,
    KINDS,
    RendererOptions,
    RenderJob,
    RenderResult,
    ignore,
)
from pipeline.retry import SAY_WAITS_FROM, Backoff

DEFAULT_BASE_URL = "https://api.runware.ai/v1"
AUTH_CODES = {"invalidApiKey", "missingApiKey", "unauthorized", "forbidden"}
CREDIT_CODES = {"insufficientCredits", "insufficientBalance", "accountSuspended"}
UNKNOWN_TASK = "taskFailedOrNotFound"
# Refusals by the safety filter, as runware-python's runware/errors.py lists them
# (`_SAFETY_CODES`): the same request is refused every time, so it is never sent again.
SAFETY_CODES = frozenset(
    {
        "contentPolicyViolation",
        "providerContentPolicyViolation",
        "sensitiveContentDetected",
        "unsafeContentDetected",
        "nsfwContentDetected",
        "promptBlocked",
        "imageBlocked",
        "moderationFailed",
    }
)
# Every failure that happens again if the same request is sent again: the safety codes, and
# the request-shape problems the SDK classes as validation (by name, then by form).
FINAL_CODES = SAFETY_CODES | frozenset(
    {
        "unknownParameter",
        "incompatibleParameters",
        "mismatchProviderSettingsProvider",
        "unknownProviderSettingsProvider",
        "validationFailed",
    }
)
FINAL_FORMS = re.compile(
    r"^(invalid|missing|unsupported|duplicate|conflict)|policy|moderat|nsfw|safety|unsafe|"
    r"blocked|notAllowed|tooLong|tooShort",
    re.IGNORECASE,
)
# An item carrying any of these is a finished task, whatever its `status` says or omits (the
# published result examples have none; runware-python's `_is_terminal` reads the URL).
OUTPUT_URLS = ("videoURL", "audioURL", "imageURL")
DONE_STATUSES = ("success", "completed")
POLL_BATCH = 100
POLL_WINDOW = 0.05  # polls due this close together share one request
DOWNLOAD_ATTEMPTS = 4
MEDIA_INPUTS = (Upscale, LipSync)  # renders whose inputs are uploaded as media, not images
RETRY_AFTER_CAP = 60.0  # the longest a 429's Retry-After is honoured
SLOW_DOWNLOAD_NOTE = 10.0  # seconds between notes about a download that is still going
MIN_POLL_SECONDS = 1.0  # against the real API: Runware advises 1 to 2 s, then backing off
MIN_NOT_FOUND_GRACE = 60.0  # against the real API: a shorter grace could pay twice
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class Reach:
    """How hard to try reaching the API before calling it unreachable."""

    attempts: int
    timeout: httpx.Timeout


# The ping before the first submit: an API that cannot be reached fails the build in seconds
# (two tries, each given a few seconds), not after every render's retries. A server that
# answers, even with 429 or 5xx, is reached: those are waited out as usual.
PING_REACH = Reach(attempts=2, timeout=httpx.Timeout(8.0, connect=4.0))


@dataclass(frozen=True)
class Answer:
    status: int
    data: list[dict[str, Any]]
    errors: list[dict[str, Any]]


def describe(error: dict[str, Any]) -> str:
    """`code: message (parameter: p; allowed: a, b)` from one error object."""
    text = f"{error.get('code') or 'error'}: {error.get('message') or ''}".rstrip(": ")
    details = []
    parameter = error.get("parameter")
    if parameter:
        details.append(
            f"parameter: {', '.join(map(str, parameter)) if isinstance(parameter, list) else parameter}"
        )
    allowed = error.get("allowedValues")
    if isinstance(allowed, list) and allowed:
        details.append(f"allowed: {', '.join(str(a) for a in allowed)}")
    return text + (f" ({'; '.join(details)})" if details else "")


def error_of(item: dict[str, Any]) -> dict[str, Any] | None:
    """The error a `data` item carries (nested under `error`, or at its top), or None."""
    nested = item.get("error")
    if isinstance(nested, dict):
        return {"taskUUID": item.get("taskUUID"), **nested}
    if item.get("status") in ("error", "failed") or item.get("code") or nested:
        return item
    return None


def is_final(code: str) -> bool:
    """Whether a failure will happen again if the same request is sent again."""
    return code in FINAL_CODES or bool(FINAL_FORMS.search(code))


def failed(code: str, message: str) -> RenderError:
    """A failed render as the provider's code says it: worth a new try (a provider timeout),
    or a refusal of the request itself, which no later build sends again unprompted."""
    return RefusedError(message, code=code) if is_final(code) else TransientError(message)


def refused(error: dict[str, Any]) -> str:
    """A failure as the user reads it: the server's code and message, and for a refusal by
    the safety filter, that it is final."""
    said = describe(error)
    if str(error.get("code") or "") in SAFETY_CODES:
        said += " (Runware's safety filter: refused every time, so not sent again)"
    return said


def _objects(value: Any) -> list[dict[str, Any]]:
    """`data` or `errors` as a list of objects: a single object counts as a list of one."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


_BEARER = re.compile(r"(Bearer\s+)[^\s'\"\\]+", re.IGNORECASE)
REDACTED = "<RUNWARE_API_KEY>"


def redact(text: str, key: str) -> str:
    """`text` without the API key, and without any bearer token an error may quote."""
    if key:
        text = text.replace(key, REDACTED)
    return _BEARER.sub(rf"\g<1>{REDACTED}", text)


def checked_key(raw: str | None) -> str:
    """The API key as it goes into the Authorization header: stripped of the line end a paste
    brings, and refused (before anything is sent) if it is empty or holds spaces or control
    characters, which no header may carry."""
    key = (raw or "").strip()
    if not key:
        raise UserError(
            "RUNWARE_API_KEY is not set: the runware renderer needs an API key",
            "set RUNWARE_API_KEY, or build local animatics with --preview",
        )
    if not key.isprintable() or any(c.isspace() for c in key):
        raise UserError(
            "RUNWARE_API_KEY has spaces or control characters inside it",
            "copy the key again from the Runware dashboard",
        )
    return key


def _http_problem(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:  # anyio's task groups
        exc = exc.exceptions[0]
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    text = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RunwareApi:
    """POSTs of task lists to the API, with retries for what is worth retrying."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        backoff: Backoff,
        note: Callable[[str], None],
        retry_after_cap: float = RETRY_AFTER_CAP,
    ) -> None:
        self._client = client
        self._url = base_url
        self._key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._backoff = backoff
        self._note = note
        self._retry_after_cap = retry_after_cap

    async def post(
        self,
        tasks: list[dict[str, Any]],
        what: str,
        attempts: int | None = None,
        reach: Reach | None = None,
    ) -> Answer:
        """The answer to `tasks`; TransientError when none came (after `attempts` tries),
        AccountError for a refused key or account, RefusedError for a non-Runware 4xx;
        Unreachable when `reach` is given and the API cannot be reached in its tries."""
        attempts = attempts or self._backoff.attempts
        last = "no answer"
        sent: dict[str, Any] = {"timeout": reach.timeout} if reach is not None else {}
        unreached = 0
        for attempt in range(attempts):
            try:
                response = await self._client.post(
                    self._url, json=tasks, headers=self._headers, **sent
                )
            except httpx.TransportError as exc:
                # httpx may quote the request's headers: what it says leaves the renderer
                # only through `render` and `note`, which remove the key.
                last = _http_problem(exc)
                wait = self._backoff.delay(attempt)
                unreached += 1
                if reach is not None and unreached >= reach.attempts:
                    raise Unreachable(
                        f"Runware at {httpx.URL(self._url).host} cannot be reached ({last}): "
                        "nothing was submitted",
                        "check the network connection, or RUNWARE_BASE_URL; build again "
                        "when it answers",
                    ) from None
            else:
                if response.status_code == 429:
                    last = "HTTP 429 (the provider's queue is full)"
                    wait = self._retry_after(response, self._backoff.delay(attempt), what)
                elif response.status_code == 408 or response.status_code >= 500:
                    last = f"HTTP {response.status_code}"
                    wait = self._backoff.delay(attempt)
                else:
                    return self._answer(response, what)
            if attempt + 1 < attempts:
                if wait >= SAY_WAITS_FROM:
                    self._note(f"{what}: {last}; trying again in {wait:.0f} s")
                await asyncio.sleep(wait)
        raise TransientError(f"{what}: no good answer after {attempts} attempts ({last})")

    def _retry_after(self, response: httpx.Response, fallback: float, what: str) -> float:
        """Retry-After in seconds or as an HTTP date, honoured up to RETRY_AFTER_CAP."""
        value = response.headers.get("Retry-After", "").strip()
        if not value:
            return fallback
        try:
            asked = float(value)
        except ValueError:
            try:
                asked = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, IndexError):
                return fallback
        if not math.isfinite(asked):
            return fallback
        if asked > self._retry_after_cap:
            self._note(
                f"{what}: Runware asked to wait {asked:.0f} s (HTTP 429); "
                f"waiting {self._retry_after_cap:g} s, the most this tool waits at once"
            )
            return self._retry_after_cap
        return max(0.0, asked)

    def _answer(self, response: httpx.Response, what: str) -> Answer:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        errors = _objects(body.get("errors")) if isinstance(body, dict) else []
        codes = {str(e.get("code")) for e in errors}
        detail = describe(errors[0]) if errors else f"HTTP {status}"
        if status in (401, 403) or codes & AUTH_CODES:
            raise AuthError(
                f"Runware refused the API key ({detail})",
                "check RUNWARE_API_KEY; the build submitted nothing further",
            )
        if status == 402 or codes & CREDIT_CODES:
            raise AccountError(
                f"Runware refused the account ({detail})",
                "top up the account, then build again: renders already running were collected",
            )
        if not isinstance(body, dict):
            if 400 <= status < 500:
                raise RefusedError(
                    f"{what}: HTTP {status} without a Runware answer",
                    "is RUNWARE_BASE_URL the Runware API?",
                )
            raise TransientError(f"{what}: HTTP {status} without a Runware answer")
        return Answer(status, _objects(body.get("data")), errors)


@dataclass(frozen=True)
class PollTiming:
    """When to ask about running tasks. Runware advises 1 to 2 s first, then backing off."""

    first: float = 1.0  # the first poll of a new task, after its submit
    floor: float = 1.0  # never ask about one task more often than this
    ceiling: float = 5.0  # the longest pause between two polls of a running task
    task_timeout: float = 1800.0
    give_up_after: int = 8  # failed polls in a row before a task is left in the journal
    # How long a task Runware accepted may be unknown to getResponse before it is taken as
    # lost (and may be submitted anew): an accepted task renders and is billed, so a
    # taskFailedOrNotFound soon after acceptance means "not visible yet".
    not_found_grace: float = 300.0


@dataclass
class _Waiting:
    future: asyncio.Future[dict[str, Any]]
    label: str
    started: float
    due: float
    deadline: float
    interval: float
    seen: float  # the wall-clock time the task was last known to exist (accepted, or polled)
    failures: int = 0
    unseen_said: bool = False
    solo: bool = False  # asked about alone: an answer without taskUUID is then about it
    asking: bool = False


class Poller:
    """Polls every running task; tasks due together share one getResponse request.

    A task is first polled `first` seconds after its submit (a resumed one at once); then
    just after its reported progress says it will be done, or after an interval growing to
    `ceiling`; never more often than `floor`. A poll that fails is tried again with backoff
    (alone, if it asked about several tasks), and a task is given up, still journaled, only
    after `give_up_after` failures in a row.
    """

    def __init__(
        self,
        api: RunwareApi,
        timing: PollTiming,
        backoff: Backoff,
        on_account_error: Callable[[AccountError], None],
        note: Callable[[str], None] = ignore,
    ) -> None:
        self.api = api
        self.timing = timing
        self.backoff = backoff
        self.on_account_error = on_account_error
        self.note = note
        self.waiting: dict[str, _Waiting] = {}
        self.polls = 0
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._asking: set[asyncio.Task[None]] = set()
        self._shared: asyncio.Task[None] | None = None

    async def wait(
        self, task_uuid: str, label: str, fresh: bool, accepted: float | None = None
    ) -> dict[str, Any]:
        """The item of a finished task (an output URL, or a done status), or a RenderError
        saying why there is none. `accepted`: when the task was accepted (wall clock; now
        when not known), from which a task unknown to the server is given its grace."""
        now = time.monotonic()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[task_uuid] = _Waiting(
            future=future,
            label=label,
            started=now,
            due=now + (self.timing.first if fresh else 0.0),
            deadline=now + self.timing.task_timeout,
            interval=self.timing.floor,
            seen=time.time() if accepted is None else accepted,
        )
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        self._wake.set()
        try:
            return await future
        finally:
            self.waiting.pop(task_uuid, None)

    async def close(self) -> None:
        for task in [self._runner, *self._asking]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        while self.waiting:
            now = time.monotonic()
            # One shared poll at a time: tasks that fall due while it is out join the next,
            # so a wave of tasks costs a few requests, not one each. Solo polls go at once.
            idle = [
                w
                for w in self.waiting.values()
                if not w.asking and (w.solo or self._shared is None)
            ]
            ready = [u for u, w in self.waiting.items() if w in idle and w.due <= now + POLL_WINDOW]
            if not ready:
                self._wake.clear()
                timeout = min(w.due for w in idle) - now if idle else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            for batch in self._batches(ready):
                for task_uuid in batch:
                    self.waiting[task_uuid].asking = True
                asking = asyncio.create_task(self._poll(batch))
                self._asking.add(asking)
                asking.add_done_callback(self._asking.discard)
                if not self.waiting[batch[0]].solo:
                    self._shared = asking
                    asking.add_done_callback(self._shared_done)

    def _shared_done(self, task: asyncio.Task[None]) -> None:
        if self._shared is task:
            self._shared = None
        self._wake.set()

    def _batches(self, ready: list[str]) -> list[list[str]]:
        alone = [[u] for u in ready if self.waiting[u].solo]
        shared = [u for u in ready if not self.waiting[u].solo][:POLL_BATCH]
        return alone + ([shared] if shared else [])

    async def _poll(self, batch: list[str]) -> None:
        self.polls += 1
        tasks = [{"taskType": "getResponse", "taskUUID": u} for u in batch]
        try:
            answer = await self.api.post(tasks, "poll", attempts=1)
        except AccountError as exc:
            self.on_account_error(exc)
            for task_uuid in batch:
                self._settle(
                    task_uuid,
                    NotCollected(
                        f"shot '{self._label(task_uuid)}': {exc.message} while the task ran",
                        "the task stays in the journal: the next build collects it",
                    ),
                )
            return
        except RenderError as exc:
            for task_uuid in batch:
                self._poll_failed(task_uuid, exc.message, alone=len(batch) == 1)
            return
        finally:
            for task_uuid in batch:
                if task_uuid in self.waiting:
                    self.waiting[task_uuid].asking = False
            self._wake.set()
        self._read(batch, answer)

    def _read(self, batch: list[str], answer: Answer) -> None:
        asked = set(batch)
        answered: set[str] = set()
        anonymous: list[dict[str, Any]] = []
        for item in answer.data:
            task_uuid = item.get("taskUUID")
            if task_uuid in asked:
                answered.add(task_uuid)
                self._item(task_uuid, item)
        for error in answer.errors:
            task_uuid = error.get("taskUUID")
            if task_uuid in asked:
                answered.add(task_uuid)
                self._task_error(task_uuid, error)
            elif not task_uuid:
                anonymous.append(error)
        for task_uuid in batch:
            if task_uuid in answered or task_uuid not in self.waiting:
                continue
            if anonymous and len(batch) == 1:
                self._anonymous_error(task_uuid, anonymous[0])
            elif anonymous:
                # An error that names no task: ask about each task alone to learn whose it is.
                waiting = self.waiting[task_uuid]
                waiting.solo = True
                waiting.due = time.monotonic() + self.timing.floor
            else:
                self._reschedule(task_uuid, None)

    def _item(self, task_uuid: str, item: dict[str, Any]) -> None:
        if any(item.get(name) for name in OUTPUT_URLS) or item.get("status") in DONE_STATUSES:
            self._settle(task_uuid, item)  # done; the renderer judges what it delivered
            return
        error = error_of(item)
        if error is not None:
            self._task_error(task_uuid, error)
            return
        self.waiting[task_uuid].seen = time.time()
        self._reschedule(task_uuid, item.get("progress"))

    def _anonymous_error(self, task_uuid: str, error: dict[str, Any]) -> None:
        """An error without taskUUID in the answer to a poll about one task alone: the task's
        failure if it says a task failed (or is a refusal), else a failure of the request."""
        code = str(error.get("code") or "")
        if error.get("status") == "error" or code == UNKNOWN_TASK or code in SAFETY_CODES:
            self._task_error(task_uuid, error)
        else:
            self._poll_failed(task_uuid, describe(error), alone=True)

    def _task_error(self, task_uuid: str, error: dict[str, Any]) -> None:
        waiting = self.waiting[task_uuid]
        label = waiting.label
        code = str(error.get("code") or "")
        if code == UNKNOWN_TASK:
            self._not_found(task_uuid, waiting)
            return
        self._settle(
            task_uuid, failed(code, f"shot '{label}': the render failed: {refused(error)}")
        )

    def _not_found(self, task_uuid: str, waiting: _Waiting) -> None:
        """A task the server does not know: not visible yet, while its grace lasts (it was
        accepted, so it renders and is billed); lost, and safe to submit anew, after."""
        grace = self.timing.not_found_grace
        unseen = max(0.0, time.time() - waiting.seen)
        if time.monotonic() > waiting.deadline:
            self._settle(
                task_uuid,
                NotCollected(
                    f"shot '{waiting.label}': no result after {self.timing.task_timeout:.0f} s "
                    "(Runware does not show the task)",
                    "the task stays in the journal: the next build asks for it before paying",
                ),
            )
            return
        if unseen >= grace:
            self._settle(
                task_uuid,
                TaskUnknown(
                    f"shot '{waiting.label}': Runware has not known its task for "
                    f"{_duration(unseen)} (taskFailedOrNotFound): it is taken as lost"
                ),
            )
            return
        if not waiting.unseen_said:
            waiting.unseen_said = True
            self.note(
                f"shot '{waiting.label}': Runware does not show its task yet "
                f"({_duration(unseen)} after it was last known); waiting up to "
                f"{_duration(grace)} for it before rendering it anew"
            )
        waiting.failures = 0
        waiting.interval = min(max(waiting.interval * 1.5, self.timing.floor), self.timing.ceiling)
        waiting.due = time.monotonic() + waiting.interval

    def _poll_failed(self, task_uuid: str, problem: str, alone: bool) -> None:
        waiting = self.waiting.get(task_uuid)
        if waiting is None:
            return
        waiting.failures += 1
        waiting.solo = waiting.solo or not alone  # a task may be what breaks a shared poll
        now = time.monotonic()
        if waiting.failures >= self.timing.give_up_after or now > waiting.deadline:
            self._settle(
                task_uuid,
                NotCollected(
                    f"shot '{waiting.label}': could not learn how the task went "
                    f"({waiting.failures} polls failed; last: {problem})",
                    "the task stays in the journal: the next build asks for it before paying",
                ),
            )
            return
        waiting.due = now + max(self.backoff.delay(waiting.failures - 1), self.timing.floor)

    def _reschedule(self, task_uuid: str, progress: Any) -> None:
        waiting = self.waiting.get(task_uuid)
        if waiting is None:
            return
        now = time.monotonic()
        if now > waiting.deadline:
            self._settle(
                task_uuid,
                NotCollected(
                    f"shot '{waiting.label}': no result after {self.timing.task_timeout:.0f} s",
                    "the task stays in the journal: the next build collects it",
                ),
            )
            return
        waiting.failures = 0
        interval = min(waiting.interval * 1.5, self.timing.ceiling)
        if isinstance(progress, int | float) and 0 < progress < 100:
            elapsed = now - waiting.started
            # Aim just after the predicted end: coming late holds a paid slot idle.
            interval = min(elapsed * (100 - progress) / progress * 1.02 + 0.03, self.timing.ceiling)
        waiting.interval = max(interval, self.timing.floor)
        waiting.due = now + waiting.interval

    def _label(self, task_uuid: str) -> str:
        waiting = self.waiting.get(task_uuid)
        return waiting.label if waiting else task_uuid

    def _settle(self, task_uuid: str, outcome: dict[str, Any] | Exception) -> None:
        waiting = self.waiting.pop(task_uuid, None)
        if waiting is None or waiting.future.done():
            return
        if isinstance(outcome, Exception):
            waiting.future.set_exception(outcome)
        else:
            waiting.future.set_result(outcome)


@dataclass
class _AccountState:
    error: AccountError | None = None
    key_checked: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RunwareRenderer:
    """One per build: pooled HTTP clients, a shared poller, uploads remembered per image."""

    name = KINDS["runware"].name
    paid = KINDS["runware"].paid

    def __init__(
        self,
        cache: Cache,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timing: PollTiming | None = None,
        backoff: Backoff | None = None,
        download_timeout: float = 600.0,
        max_download_bytes: int = 1 << 30,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_after_cap: float = RETRY_AFTER_CAP,
        note: Callable[[str], None] = ignore,
    ) -> None:
        api_key = checked_key(api_key)
        self._key = api_key
        self.cache = cache
        self.base_url = base_url
        self.download_timeout = download_timeout
        self.max_download_bytes = max_download_bytes
        self.backoff = backoff or Backoff()
        self.note: Callable[[str], None] = lambda message: note(redact(message, api_key))
        timeout = httpx.Timeout(60.0, connect=15.0, pool=None)
        # Two pools: the API (which alone sees the key) and the download host (which never does).
        self.client = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            transport=transport,
        )
        self.downloads = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
            follow_redirects=True,
            transport=transport,
        )
        self.api = RunwareApi(
            self.client, base_url, api_key, self.backoff, self.note, retry_after_cap
        )
        self.account = _AccountState()
        self.poller = Poller(
            self.api, timing or PollTiming(), self.backoff, self._account_refused, self.note
        )
        self._upload_locks: dict[str, asyncio.Lock] = {}
        # Decoding clips to check them is CPU work: one thread per core, so that the event
        # loop (submits, polls) is never starved by a wave of finished downloads.
        self._checks = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
        # What the quality check measures with is loaded while the first task renders, not
        # when its clip arrives.
        self._checks.submit(ready)

    @classmethod
    def check_options(cls, options: RendererOptions) -> None:
        """Refuse, before anything starts, options this renderer cannot work with."""
        checked_key(options.api_key)
        poll = options.poll_seconds
        if not (math.isfinite(poll) and poll > 0):
            raise UserError(f"RUNWARE_POLL_SECONDS must be a positive number, not {poll}")
        try:
            host = httpx.URL(options.base_url or DEFAULT_BASE_URL).host
        except httpx.InvalidURL as exc:
            raise UserError(f"RUNWARE_BASE_URL={options.base_url}: not a URL ({exc})") from None
        if poll < MIN_POLL_SECONDS and host not in LOOPBACK:
            raise UserError(
                f"RUNWARE_POLL_SECONDS={poll:g} would poll {host} more than once a second",
                f"polls under {MIN_POLL_SECONDS:g} s are for a local server only",
            )
        grace = options.not_found_grace
        if grace < MIN_NOT_FOUND_GRACE and host not in LOOPBACK:
            raise UserError(
                f"RUNWARE_NOT_FOUND_GRACE={grace:g} would give up on a task {host} accepted "
                f"after {grace:g} s: an accepted task is paid for, and submitting it anew "
                "pays again",
                f"a grace under {MIN_NOT_FOUND_GRACE:g} s is for a local server only",
            )

    @classmethod
    def from_options(
        cls, cache: Cache, options: RendererOptions, note: Callable[[str], None]
    ) -> RunwareRenderer:
        return cls(
            cache,
            options.api_key or "",
            options.base_url or DEFAULT_BASE_URL,
            timing=PollTiming(
                first=options.poll_seconds,
                floor=options.poll_seconds,
                task_timeout=options.task_timeout,
                not_found_grace=options.not_found_grace,
            ),
            backoff=options.backoff,
            download_timeout=options.download_timeout,
            note=note,
        )

    async def aclose(self) -> None:
        await self.poller.close()
        await self.client.aclose()
        await self.downloads.aclose()
        self._checks.shutdown(wait=False, cancel_futures=True)

    async def render(self, job: RenderJob) -> RenderResult:
        """Node one shot. Every failure leaves here without the API key: this, and `note`,
        are the edges where what the client and httpx say becomes the project's words."""
        try:
            return await self._render(job)
        except StoryboardError as exc:  # the same error, its words without the key
            exc.message = redact(exc.message, self._key)
            exc.hint = redact(exc.hint, self._key) if exc.hint else exc.hint
            exc.args = (exc.message,)
            raise
        except Exception as exc:
            problem = redact(f"{type(exc).__name__}: {exc}", self._key)
            raise NotCollected(
                f"shot '{job.shot.label}': internal error: {problem}",
                "a task sent for it stays in the journal: the next build collects it",
            ) from None

    async def _render(self, job: RenderJob) -> RenderResult:
        shot = job.shot
        if job.resume_task is not None:
            task_uuid = job.resume_task
            item = await self.poller.wait(task_uuid, shot.label, False, job.resumed_at)
        else:
            await self._may_submit()
            accepted = time.time()
            task_uuid = await self._submit_new(job)
            item = await self.poller.wait(task_uuid, shot.label, True, accepted)
        cost = self._cost(item, shot)
        job.remote_done(cost)
        noun = shot.output.value  # what the result names its file by: videoURL, imageURL, audioURL
        url = item.get(f"{noun}URL")
        if not url:
            raise NotCollected(
                f"shot '{shot.label}': Runware reported the task done but gave no {noun}URL",
                "the task stays in the journal: the next build asks for it again",
            )
        info, frames = await self._download(str(url), job)
        seed = item.get("seed")
        return RenderResult(
            path=job.output,
            info=info,
            frames=frames,
            seed=int(seed) if isinstance(seed, int | float) and math.isfinite(seed) else None,
            cost=cost,
            remote_ids={"taskUUID": task_uuid, f"{noun}UUID": str(item.get(f"{noun}UUID") or "")},
        )

    # -- submitting ---------------------------------------------------------------------------

    async def _may_submit(self) -> None:
        """One ping before the first submit (a bad key stops the build having sent nothing);
        no submit at all once the account was refused."""
        async with self.account.lock:
            if self.account.error is not None:
                raise self.account.error
            if not self.account.key_checked:
                ping = [{"taskType": "ping", "ping": True}]
                try:
                    await self.api.post(ping, "ping", reach=PING_REACH)
                except AccountError as exc:  # refused, or unreachable: no render may go
                    self._account_refused(exc)
                    raise
                self.account.key_checked = True

    def _account_refused(self, error: AccountError) -> None:
        if self.account.error is None:
            self.account.error = error

    async def _submit_new(self, job: RenderJob) -> str:
        """Submit the shot under a new taskUUID, journaled first; re-upload expired images."""
        shot = job.shot
        for attempt in range(2):
            request = await self._request_for(shot)
            task_uuid = str(uuid.uuid4())
            job.note_task(task_uuid)  # durable before the submit leaves this machine
            try:
                await self._submit({**request, "taskUUID": task_uuid}, shot)
            except AccountError as exc:
                self._account_refused(exc)
                raise
            except TransientError as exc:
                # Every answer was lost: the task may have been accepted all the same, so it
                # is waited for as an accepted one, and only a task unknown for its whole
                # grace is submitted anew.
                self.note(f"{exc.message}: waiting for the task as if it was accepted")
                return task_uuid
            except ImageGone as gone:
                if attempt:
                    raise RefusedError(gone.message) from None
                self.note(f"{gone.message}: uploading the image again")
                for digest in shot.image_hashes:
                    self.cache.uploads.forget(digest, self.base_url)
                continue
            return task_uuid
        raise AssertionError("unreachable")

    async def _submit(self, task: dict[str, Any], shot: Node) -> None:
        """Send once; a lost answer is retried with the same taskUUID by RunwareApi.post."""
        task_uuid = task["taskUUID"]
        answer = await self.api.post([task], f"shot '{shot.label}': submit")
        errors = list(answer.errors)
        for item in answer.data:
            error = error_of(item)
            if error is not None:
                errors.append(error)
            elif item.get("taskUUID") == task_uuid:
                return
        for error in errors:
            if error.get("code") == "conflictTaskUUID":
                return  # the server has this task already (our earlier attempt): poll it
        if errors:
            error = errors[0]
            code = str(error.get("code") or "")
            if shot.images and _about_image(error) and code not in SAFETY_CODES:
                raise ImageGone(
                    f"shot '{shot.label}': Runware refused the image: {describe(error)}"
                )
            said = f"shot '{shot.label}': Runware refused the task: {refused(error)}"
            raise RefusedError(said, code=code if is_final(code) else "")
        raise TransientError(f"shot '{shot.label}': the submit was not acknowledged")

    async def _request_for(self, shot: Node) -> dict[str, Any]:
        """The shot's request with each `sha256:` input placeholder replaced by the UUID of
        its upload: frame images by imageUpload, clips and voices by mediaStorage."""
        request = dict(shot.request)
        media_input = isinstance(shot, MEDIA_INPUTS)
        for slot, (path, digest) in enumerate(zip(shot.images, shot.image_hashes, strict=True)):
            uploaded = await self._uploaded(path, digest, shot, media_input)
            request = placed(request, shot.place(slot), uploaded)
        return request

    async def _uploaded(
        self, path: os.PathLike[str], digest: str, shot: Node, media_input: bool = False
    ) -> str:
        """Upload an input once per content (per API endpoint) and remember its UUID: an
        image as an imageUpload, a clip or a sound as mediaStorage."""
        lock = self._upload_locks.setdefault(digest, asyncio.Lock())
        where = f"{self.base_url}#media" if media_input else self.base_url
        async with lock:
            known = await self.cache.uploads.find(digest, where)
            if known:
                return known
            data = await asyncio.to_thread(_data_uri, path)
            task_uuid = str(uuid.uuid4())
            if media_input:
                task = {"taskType": "mediaStorage", "taskUUID": task_uuid, "operation": "upload"}
                task["media"] = data
                what, field = "media upload", "mediaUUID"
            else:
                task = {"taskType": "imageUpload", "taskUUID": task_uuid, "image": data}
                what, field = "first frame upload", "imageUUID"
            answer = await self.api.post([task], f"shot '{shot.label}': {what}")
            found = next((d.get(field) for d in answer.data if d.get(field)), None)
            if not found:
                errors = answer.errors + [e for d in answer.data if (e := error_of(d))]
                detail = describe(errors[0]) if errors else f"the answer has no {field}"
                raise RefusedError(f"shot '{shot.label}': the {what} failed: {detail}")
            await self.cache.uploads.share(digest, where, str(found))
            return str(found)

    # -- collecting ---------------------------------------------------------------------------

    def _cost(self, item: dict[str, Any], shot: Node) -> float | None:
        """The reported cost, if it is a finite number of dollars, not negative."""
        value = item.get("cost")
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            self.note(
                f"warning: shot '{shot.label}': Runware reported a cost of {value!r}, which is "
                "not a price: refused; the budget counts the estimate instead"
            )
            return None
        return float(value)

    async def _download(self, url: str, job: RenderJob) -> tuple[media.ClipInfo, media.Taken]:
        """Stream the clip (or still) to disk and check that it decodes; retry the download,
        never the task. What it is (its size and length) is for the caller to judge."""
        shot = job.shot
        problem = ""
        for attempt in range(DOWNLOAD_ATTEMPTS):
            if attempt:
                self.note(f"shot '{shot.label}': {problem}; downloading it again")
                await asyncio.sleep(self.backoff.delay(attempt - 1))
            try:
                job.phase(DOWNLOADING)
                async with asyncio.timeout(self.download_timeout):
                    await self._fetch(url, job)
                job.phase(CHECKING)
                # Measured in the same pass for the quality check: it costs the take little.
                check = functools.partial(
                    media.check_render, job.output, shot.output, job.frames, watch=watch_for(shot)
                )
                return await asyncio.get_running_loop().run_in_executor(self._checks, check)
            except TimeoutError:
                problem = f"the download took longer than {self.download_timeout:g} s"
            except MediaError as exc:
                problem = exc.message
            except CacheError:
                raise
            except Exception as exc:  # httpx's errors, and what its network stack lets out
                problem = f"the download failed ({_http_problem(exc)})"
        raise NotCollected(
            f"shot '{shot.label}': the clip could not be collected: {problem}",
            "it was paid for and stays in the journal: build again to download it "
            "(nothing is paid twice)",
        )

    async def _fetch(self, url: str, job: RenderJob) -> None:
        written = 0
        started = said = time.monotonic()
        async with self.downloads.stream("GET", url) as response:
            response.raise_for_status()
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > self.max_download_bytes:
                raise MediaError(
                    f"the clip is {declared} bytes, over the {self.max_download_bytes} cap"
                )
            with _clip_file(job) as sink:
                async for chunk in response.aiter_bytes(1 << 16):
                    written += len(chunk)
                    if written > self.max_download_bytes:
                        raise MediaError(f"the clip passed the {self.max_download_bytes} byte cap")
                    _write(sink, chunk, job)
                    now = time.monotonic()
                    if now - said >= SLOW_DOWNLOAD_NOTE:
                        said = now
                        self.note(
                            f"shot '{job.shot.label}': downloading slowly: {written:,} bytes "
                            f"in {now - started:.0f} s (gives up after {self.download_timeout:g} s)"
                        )
        if declared and written != declared:
            raise MediaError(f"the download stopped at {written} of {declared} bytes")


def _duration(seconds: float) -> str:
    """`12 s`, `5 min`: a wait as people say it."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _disk_error(job: RenderJob, exc: OSError) -> CacheError:
    return CacheError(
        f"shot '{job.shot.label}': the clip could not be written to {job.output} "
        f"({exc.strerror or exc})",
        "it was paid for and stays in the journal: free disk space, then build again to "
        "download it (nothing is paid twice)",
    )


@contextlib.contextmanager
def _clip_file(job: RenderJob) -> Iterator[BinaryIO]:
    """The file a download goes into; a disk that refuses it stops the build."""
    try:
        sink = open(job.output, "wb")  # noqa: SIM115 (closed below, its errors turned)
    except OSError as exc:
        raise _disk_error(job, exc) from None
    try:
        yield sink
    finally:
        try:
            sink.close()
        except OSError as exc:
            raise _disk_error(job, exc) from None


def _write(sink: BinaryIO, chunk: bytes, job: RenderJob) -> None:
    try:
        sink.write(chunk)
    except OSError as exc:
        raise _disk_error(job, exc) from None


def _about_image(error: dict[str, Any]) -> bool:
    """Whether a refusal is about an input image (the code for an expired one is not
    documented: it is recognised by its code or parameter naming an image)."""
    parameter = error.get("parameter")
    names = " ".join(map(str, parameter)) if isinstance(parameter, list) else str(parameter or "")
    return "image" in f"{error.get('code') or ''} {names}".lower()


def _data_uri(path: os.PathLike[str]) -> str:
    with open(path, "rb") as handle:
        data = handle.read()
    kind = _sniffed(data[:4]) or mimetypes.guess_type(str(path))[0] or "image/png"
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _sniffed(head: bytes) -> str | None:
    """The type of a sound by its first bytes: the cache names every render `.mp4`."""
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return {b"fLaC": "audio/flac", b"RIFF": "audio/wav", b"OggS": "audio/ogg"}.get(head)
