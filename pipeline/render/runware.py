"""The Runware renderer: MiniMax Hailuo 2.3 through the real API (see runware-protocol.md).

Never pay twice: the taskUUID is journaled before the submit is sent; a submit whose answer
was lost is sent again with the same taskUUID, and `conflictTaskUUID` then means "accepted";
a journaled task is polled, and only a task the server does not know is submitted anew.
The API key goes only into the Authorization header of API requests: never to the download
host, never into a message, log, cache entry, journal or lock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import mimetypes
import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from pipeline import media
from pipeline.cache import Cache
from pipeline.errors import AuthError, MediaError, RenderError
from pipeline.expand import Shot
from pipeline.render import RendererOptions, RenderJob, RenderResult

DEFAULT_BASE_URL = "https://api.runware.ai/v1"
AUTH_CODES = {"invalidApiKey", "missingApiKey", "unauthorized", "forbidden"}
FATAL_CODES = {"insufficientCredits", "insufficientBalance", "accountSuspended"}
IMAGE_GONE_CODES = {"invalidImage", "imageNotFound", "invalidImageUUID"}
POLL_BATCH = 100
POLL_WINDOW = 0.05  # polls due this close together share one request
DOWNLOAD_ATTEMPTS = 4


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter for transient HTTP failures."""

    attempts: int = 6
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.base * 2**attempt) * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Answer:
    status: int
    data: list[dict[str, Any]]
    errors: list[dict[str, Any]]


class TaskUnknown(Exception):
    """The server does not know a journaled taskUUID: it may be submitted anew."""


class ImageGone(Exception):
    """The server no longer knows an uploaded image (they expire): upload it again."""


def describe(error: dict[str, Any]) -> str:
    """`code: message (parameter: p; allowed: a, b)` from one error object."""
    text = f"{error.get('code', 'error')}: {error.get('message', '')}".rstrip(": ")
    details = []
    parameter = error.get("parameter")
    if parameter:
        details.append(
            f"parameter: {', '.join(parameter) if isinstance(parameter, list) else parameter}"
        )
    allowed = error.get("allowedValues")
    if allowed:
        details.append(f"allowed: {', '.join(str(a) for a in allowed)}")
    return text + (f" ({'; '.join(details)})" if details else "")


class RunwareApi:
    """POSTs of task lists to the API, with retries for what is worth retrying."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: str, retry: RetryPolicy):
        self._client = client
        self._url = base_url
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._retry = retry

    async def post(self, tasks: list[dict[str, Any]], what: str) -> Answer:
        last = "no answer"
        wait = 0.0
        for attempt in range(self._retry.attempts):
            await asyncio.sleep(wait)
            wait = self._retry.delay(attempt)
            try:
                response = await self._client.post(self._url, json=tasks, headers=self._headers)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.status_code == 429:
                wait = _retry_after(response, wait)
                last = "HTTP 429 (the provider's queue is full)"
                continue
            if response.status_code == 408 or response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            return self._answer(response, what)
        raise RenderError(
            f"{what}: no good answer after {self._retry.attempts} attempts ({last})", transient=True
        )

    def _answer(self, response: httpx.Response, what: str) -> Answer:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RenderError(
                f"{what}: HTTP {response.status_code} without a Runware envelope", transient=True
            )
        data = [d for d in body.get("data") or [] if isinstance(d, dict)]
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        codes = {str(e.get("code")) for e in errors}
        if response.status_code in (401, 403) or codes & AUTH_CODES:
            detail = describe(errors[0]) if errors else f"HTTP {response.status_code}"
            raise AuthError(
                f"Runware refused the API key ({detail})",
                "check RUNWARE_API_KEY; the build stopped before any further submit",
            )
        if response.status_code == 402 or codes & FATAL_CODES:
            detail = describe(errors[0]) if errors else "HTTP 402"
            raise RenderError(f"Runware refused the account ({detail})", fatal=True)
        return Answer(response.status_code, data, errors)


def _retry_after(response: httpx.Response, fallback: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, min(float(value), 300.0))
    except ValueError:
        return fallback


@dataclass
class _Waiting:
    future: asyncio.Future[dict[str, Any]]
    label: str
    due: float
    interval: float
    deadline: float
    started: float


@dataclass
class Poller:
    """Polls every running task; tasks due together share one getResponse request.

    A task is first polled after `first_delay`; then when its reported progress says it should
    be done, or after an interval growing from `min_interval` to `max_interval`.
    """

    api: RunwareApi
    first_delay: float
    min_interval: float
    max_interval: float
    task_timeout: float
    waiting: dict[str, _Waiting] = field(default_factory=dict)
    polls: int = 0

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    async def wait(self, task_uuid: str, label: str) -> dict[str, Any]:
        """The success item of a task; RenderError when it fails, TaskUnknown if unknown."""
        now = time.monotonic()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[task_uuid] = _Waiting(
            future, label, now + self.first_delay, self.min_interval, now + self.task_timeout, now
        )
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        self._wake.set()
        try:
            return await future
        finally:
            self.waiting.pop(task_uuid, None)

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _run(self) -> None:
        while self.waiting:
            now = time.monotonic()
            due = min(w.due for w in self.waiting.values())
            if due > now:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), due - now)
                continue
            batch = [u for u, w in self.waiting.items() if w.due <= now + POLL_WINDOW]
            await self._poll(batch[:POLL_BATCH])

    async def _poll(self, batch: list[str]) -> None:
        tasks = [{"taskType": "getResponse", "taskUUID": u} for u in batch]
        self.polls += 1
        try:
            answer = await self.api.post(tasks, "poll")
        except RenderError as exc:
            if exc.fatal:
                for task_uuid in batch:
                    self._settle(task_uuid, exc)
                return
            # The tasks run on, and are paid for: keep asking until their time is up.
            for task_uuid in batch:
                self._reschedule(task_uuid, None, backoff=True)
            return
        seen: set[str] = set()
        for item in answer.data:
            task_uuid = str(item.get("taskUUID"))
            if task_uuid not in self.waiting:
                continue
            seen.add(task_uuid)
            status = item.get("status")
            if status == "success":
                self._settle(task_uuid, item)
            elif status == "error":
                self._settle(task_uuid, self._failure(task_uuid, item))
            else:
                self._reschedule(task_uuid, item.get("progress"))
        for error in answer.errors:
            task_uuid = str(error.get("taskUUID"))
            if task_uuid not in self.waiting:
                continue
            seen.add(task_uuid)
            if error.get("code") == "taskFailedOrNotFound" and error.get("status") != "error":
                self._settle(task_uuid, TaskUnknown(task_uuid))
            else:
                self._settle(task_uuid, self._failure(task_uuid, error))
        for task_uuid in batch:
            if task_uuid not in seen and task_uuid in self.waiting:
                self._reschedule(task_uuid, None)

    def _failure(self, task_uuid: str, error: dict[str, Any]) -> RenderError:
        label = self.waiting[task_uuid].label
        # A failed generation is not billed: rendering it again (a new task) is safe.
        return RenderError(f"shot '{label}': the render failed: {describe(error)}", transient=True)

    def _reschedule(self, task_uuid: str, progress: Any, backoff: bool = False) -> None:
        waiting = self.waiting.get(task_uuid)
        if waiting is None:
            return
        now = time.monotonic()
        if now > waiting.deadline:
            self._settle(
                task_uuid,
                RenderError(
                    f"shot '{waiting.label}': no result after {self.task_timeout:.0f} s",
                    "the task stays in the journal: the next build collects it",
                    keep_journal=True,
                ),
            )
            return
        interval = min(waiting.interval * 1.5, self.max_interval)
        if backoff:
            interval = min(waiting.interval * 2, 60.0)
        elif isinstance(progress, int | float) and 0 < progress < 100:
            elapsed = now - waiting.started
            predicted = elapsed * (100 - progress) / progress
            # Aim just after the predicted end. Coming early costs one more (shared) poll; coming
            # late holds a paid slot idle, so the margin is small, and a task found at 98%
            # is asked again as soon as it should be done, not after `min_interval`.
            interval = min(max(predicted * 1.02 + 0.03, POLL_WINDOW), self.max_interval)
        waiting.interval = interval
        waiting.due = now + interval

    def _settle(self, task_uuid: str, outcome: dict[str, Any] | Exception) -> None:
        waiting = self.waiting.pop(task_uuid, None)
        if waiting is None or waiting.future.done():
            return
        if isinstance(outcome, Exception):
            waiting.future.set_exception(outcome)
        else:
            waiting.future.set_result(outcome)


class RunwareRenderer:
    """One per build: a pooled HTTP client, a shared poller, uploads remembered per image."""

    name = "runware"

    def __init__(
        self,
        cache: Cache,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        poll_interval: float = 2.0,
        first_poll: float = 1.0,
        task_timeout: float = 1800.0,
        retry: RetryPolicy | None = None,
        max_download_bytes: int = 1 << 30,
    ) -> None:
        if not api_key:
            raise AuthError("RUNWARE_API_KEY is not set", "set it, or use --preview")
        self.cache = cache
        self.base_url = base_url
        self.max_download_bytes = max_download_bytes
        timeout = httpx.Timeout(60.0, connect=15.0, pool=None)
        # Two pools: the API (which alone sees the key) and the download host (which never does).
        self.client = httpx.AsyncClient(
            timeout=timeout, limits=httpx.Limits(max_connections=16, max_keepalive_connections=16)
        )
        self.downloads = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
            follow_redirects=True,
        )
        self.api = RunwareApi(self.client, base_url, api_key, retry or RetryPolicy())
        self.poller = Poller(
            self.api,
            first_delay=first_poll,
            min_interval=min(0.25, poll_interval),
            max_interval=poll_interval,
            task_timeout=task_timeout,
        )
        self._upload_locks: dict[str, asyncio.Lock] = {}
        # Decoding clips to check them is CPU work: one thread per core, so that the event
        # loop (submits, polls) is never starved by a wave of finished downloads.
        self._checks = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
        self._checked = asyncio.Lock()
        self._key_ok = False
        self._key_error: AuthError | None = None

    @classmethod
    def from_options(cls, cache: Cache, options: RendererOptions) -> RunwareRenderer:
        return cls(
            cache,
            options.api_key or "",
            options.base_url or DEFAULT_BASE_URL,
            poll_interval=options.poll_interval,
            first_poll=options.first_poll,
            task_timeout=options.task_timeout,
            retry=RetryPolicy(base=options.retry_base),
        )

    async def aclose(self) -> None:
        await self.poller.close()
        await self.client.aclose()
        await self.downloads.aclose()
        self._checks.shutdown(wait=False, cancel_futures=True)

    async def check_key(self) -> None:
        """One ping before the first submit: a bad key stops the build having sent nothing."""
        async with self._checked:
            if self._key_error is not None:
                raise self._key_error
            if not self._key_ok:
                try:
                    await self.api.post(
                        [{"taskType": "ping", "taskUUID": str(uuid.uuid4())}], "ping"
                    )
                except AuthError as exc:
                    self._key_error = exc
                    raise
                self._key_ok = True

    async def render(self, job: RenderJob) -> RenderResult:
        shot = job.shot
        await self.check_key()
        task_uuid = job.resume_task
        item = None
        if task_uuid is not None:
            try:
                item = await self.poller.wait(task_uuid, shot.label)
            except TaskUnknown:
                task_uuid = None  # the server never took it: submitting is safe
        if item is None:
            task_uuid = await self._submit_new(job)
            item = await self.poller.wait(task_uuid, shot.label)
        cost = item.get("cost")
        job.remote_done(float(cost) if isinstance(cost, int | float) else None)
        self._check_item(item, shot, task_uuid)
        info = await self._download(item, job)
        seed = item.get("seed")
        return RenderResult(
            path=job.output,
            info=info,
            seed=int(seed) if isinstance(seed, int | float) else None,
            cost=float(cost) if isinstance(cost, int | float) else None,
            remote_ids={"taskUUID": str(task_uuid), "videoUUID": str(item.get("videoUUID"))},
        )

    async def _submit_new(self, job: RenderJob) -> str:
        """Submit the shot under a new taskUUID, journaled first; re-upload expired images."""
        shot = job.shot
        for attempt in range(2):
            request = await self._request_for(shot)
            task_uuid = str(uuid.uuid4())
            job.note_task(task_uuid)  # durable before the submit leaves this machine
            try:
                await self._submit({**request, "taskUUID": task_uuid}, shot)
            except RenderError as exc:
                if exc.fatal or not exc.transient:
                    raise
                # Every answer was lost: the task may have been accepted all the same.
                if await self._known(task_uuid, shot):
                    return task_uuid
                raise
            except ImageGone as gone:
                if attempt:
                    raise RenderError(str(gone)) from None
                for digest in shot.image_hashes:
                    self.cache.upload_forget(digest, self.base_url)
                continue
            return task_uuid
        raise AssertionError("unreachable")

    async def _known(self, task_uuid: str, shot: Shot) -> bool:
        """Whether the server has a task: after a submit whose answers were all lost."""
        probe = [{"taskType": "getResponse", "taskUUID": task_uuid}]
        try:
            answer = await self.api.post(probe, f"shot '{shot.label}': check the submit")
        except RenderError as exc:
            if exc.fatal:
                raise
            raise RenderError(
                f"shot '{shot.label}': the submit could not be confirmed ({exc.message})",
                "the task stays in the journal: the next build asks for it before paying again",
                keep_journal=True,
            ) from None
        unknown = any(e.get("code") == "taskFailedOrNotFound" for e in answer.errors)
        return not unknown and any(d.get("taskUUID") == task_uuid for d in answer.data)

    async def _submit(self, task: dict[str, Any], shot: Shot) -> None:
        """Send once; a lost answer is retried with the same taskUUID by RunwareApi.post."""
        answer = await self.api.post([task], f"shot '{shot.label}': submit")
        if any(d.get("taskUUID") == task["taskUUID"] for d in answer.data):
            return
        for error in answer.errors:
            if error.get("code") == "conflictTaskUUID":
                return  # the server has this task already (our earlier attempt): poll it
            if error.get("code") in IMAGE_GONE_CODES and shot.images:
                raise ImageGone(f"shot '{shot.label}': {describe(error)}")
        if answer.errors:
            raise RenderError(
                f"shot '{shot.label}': Runware refused the task: {describe(answer.errors[0])}"
            )
        raise RenderError(f"shot '{shot.label}': the submit was not acknowledged", transient=True)

    def _check_item(self, item: dict[str, Any], shot: Shot, task_uuid: str | None) -> None:
        if item.get("taskUUID") != task_uuid or not item.get("videoURL"):
            raise RenderError(f"shot '{shot.label}': the result does not match the task asked for")

    async def _download(self, item: dict[str, Any], job: RenderJob) -> media.ClipInfo:
        """Stream the clip to disk (size-capped) and check it; retry the download, never the task."""
        shot = job.shot
        url = str(item["videoURL"])
        problem = ""
        for attempt in range(DOWNLOAD_ATTEMPTS):
            if attempt:
                await asyncio.sleep(min(0.5 * 2**attempt, 8.0))
            try:
                await self._fetch(url, job)
                return await asyncio.get_running_loop().run_in_executor(
                    self._checks, media.validate, job.output, shot.width, shot.height, shot.duration
                )
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                problem = f"download failed ({type(exc).__name__})"
            except MediaError as exc:
                problem = exc.message
        raise RenderError(
            f"shot '{shot.label}': the clip could not be collected: {problem}",
            "it was paid for and stays in the journal: the next build downloads it again",
            keep_journal=True,
        )

    async def _fetch(self, url: str, job: RenderJob) -> None:
        written = 0
        async with self.downloads.stream("GET", url) as response:
            response.raise_for_status()
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > self.max_download_bytes:
                raise MediaError(
                    f"the clip is {declared} bytes, over the {self.max_download_bytes} cap"
                )
            with open(job.output, "wb") as sink:
                async for chunk in response.aiter_bytes(1 << 16):
                    written += len(chunk)
                    if written > self.max_download_bytes:
                        raise MediaError(f"the clip passed the {self.max_download_bytes} byte cap")
                    sink.write(chunk)
        if declared and written != declared:
            raise MediaError(f"the download stopped at {written} of {declared} bytes")

    async def _request_for(self, shot: Shot) -> dict[str, Any]:
        """The shot's request with each `sha256:` image placeholder replaced by an imageUUID."""
        request = dict(shot.request)
        frames = (request.get("inputs") or {}).get("frameImages")
        if not frames:
            return request
        resolved = []
        for frame, path, digest in zip(frames, shot.images, shot.image_hashes, strict=True):
            image_uuid = await self._uploaded(path, digest, shot)
            resolved.append({**frame, "image": image_uuid})
        request["inputs"] = {**request["inputs"], "frameImages": resolved}
        return request

    async def _uploaded(self, path: os.PathLike[str], digest: str, shot: Shot) -> str:
        """Upload an image once per content (per API endpoint) and remember its imageUUID."""
        lock = self._upload_locks.setdefault(digest, asyncio.Lock())
        async with lock:
            known = self.cache.upload_get(digest, self.base_url)
            if known:
                return known
            data = await asyncio.to_thread(_data_uri, path)
            task = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": data}
            answer = await self.api.post([task], f"shot '{shot.label}': image upload")
            image_uuid = next((d.get("imageUUID") for d in answer.data if d.get("imageUUID")), None)
            if not image_uuid:
                detail = describe(answer.errors[0]) if answer.errors else "no imageUUID"
                raise RenderError(f"shot '{shot.label}': the first frame upload failed: {detail}")
            self.cache.upload_put(digest, self.base_url, str(image_uuid))
            return str(image_uuid)


def _data_uri(path: os.PathLike[str]) -> str:
    kind = mimetypes.guess_type(str(path))[0] or "image/png"
    with open(path, "rb") as handle:
        return f"data:{kind};base64,{base64.b64encode(handle.read()).decode()}"
