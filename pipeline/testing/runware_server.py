"""A local Runware-compatible server: the published protocol over HTTP on loopback, real MP4s.

    python -m pipeline.testing.runware_server [--port N] [--latency S] [--dialect docs]

Written from shared/runware-protocol.md, never from storyboard's client: it imports nothing
of storyboard outside pipeline/testing/, keeps its own table of what each model accepts and
costs, and answers in every shape the protocol records (chosen per run by a dialect), so a
wrong assumption in the client fails a test instead of being mirrored here.

It speaks `videoInference`, `imageInference`, `audioInference` and `upscale` (async
delivery), `getResponse`, `imageUpload`, `mediaStorage` and `ping`; bills each task that
succeeds at its model's price, serves its output at `videoURL`, `imageURL` or `audioURL`
(with no `status` in the docs dialect, whatever the task type), injects faults
(POST /_faults, or --fault NAME=N), and counts everything, per task and per request, at
GET /_stats. `transport()` gives the same server as an httpx transport, for tests that need
no socket. A person can use it to try a storyboard end to end offline:

    RUNWARE_BASE_URL=http://127.0.0.1:8765/v1 RUNWARE_API_KEY=local storyboard build spec.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import email.utils
import fcntl
import hashlib
import json
import random
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.testing.media import FPS, LOOKS, SEEDS, TINTS, image_size, paint, paint_image
from pipeline.testing.served_models import MODELS, PLATFORM_FIELDS, PROVIDERS, ServedModel
from pipeline.testing.served_tools import TOOLS, Job, Refused, check, make

UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
INFERENCE = ("videoInference", "imageInference", "audioInference", "upscale")


@dataclass(frozen=True)
class Dialect:
    """The answer shapes of one run: each published shape is one setting."""

    success_status: bool = True  # a finished item says "status": "success" (else only videoURL)
    failure_shape: str = "errors"  # "errors", "data_flat" (code/message) or "data_nested" (error:)
    error_task_uuid: bool = True  # entries of `errors` name the taskUUID they are about
    upload_shape: str = "list"  # imageUpload answers `data` as a "list" or one "object"
    retry_after_format: str = "seconds"  # a 429's Retry-After in "seconds", or an HTTP "date"
    i2v_aspect: bool = False  # image-to-video clips take the first frame's aspect ratio
    frame_offset: int = 0  # frames added to (or taken from) every clip
    # A task in the first half of its run is answered `status: "pending"` (an older docs
    # page shows it), then "processing".
    pending_status: bool = False

    def check(self) -> Dialect:
        choices = {
            "failure_shape": ("errors", "data_flat", "data_nested"),
            "upload_shape": ("list", "object"),
            "retry_after_format": ("seconds", "date"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        return self


DIALECTS = {
    # As Runware's SDKs expect: status on every item, failures in `errors`, uploads as a list.
    "sdk": Dialect(),
    # As the documentation pages show: a result with no status, failures nested in `data`,
    # an upload answered with an object, Retry-After as a date, clips at the image's aspect.
    "docs": Dialect(
        success_status=False,
        failure_shape="data_nested",
        upload_shape="object",
        retry_after_format="date",
        i2v_aspect=True,
        pending_status=True,
    ),
}


@dataclass
class Faults:
    """How many of the coming requests (or tasks, or answers, or downloads) to spoil."""

    http_500: int = 0  # answer POSTs with a bare 500
    http_429: int = 0  # answer POSTs with 429 and Retry-After
    retry_after: float = 1.0  # the seconds a 429 asks for
    insufficient_credit: int = 0  # refuse submits with HTTP 402 (the account has no credit)
    batch_poll_500: int = 0  # answer polls that ask about more than one task with a 500
    drop_submit: int = 0  # accept a videoInference, then drop the connection: the answer is lost
    drop_poll: int = 0  # drop a getResponse connection without answering
    error_envelope: int = 0  # refuse submits under the content policy (an error envelope)
    task_error: int = 0  # tasks that fail with timeoutProvider (worth trying again)
    content_policy: int = 0  # tasks the provider refuses under its content policy (final)
    # Tasks refused by the safety filter, answered in the top-level `errors` with
    # `safety_code` (one of the codes runware-python's errors.py classes as safety).
    safety_refusal: int = 0
    # Tasks that getResponse does not know (taskFailedOrNotFound) for `hidden_seconds` after
    # they were accepted; they render, and are billed, all the same.
    hidden: int = 0
    task_vanish: int = 0  # tasks that fail and are then answered as taskFailedOrNotFound
    never_finish: int = 0  # tasks that stay `processing` forever
    no_video_url: int = 0  # success answers without a videoURL
    bad_video_url: int = 0  # success answers whose videoURL has a port no URL can have
    nan_cost: int = 0  # success answers whose cost is NaN
    expire_images: int = 0  # forget every uploaded image before the next submit that uses one
    truncate: int = 0  # downloads cut short
    corrupt: int = 0  # downloads with garbage in the middle
    trickle: int = 0  # downloads sent a byte at a time, `trickle_interval` seconds apart
    bad_encoding: int = 0  # downloads that say `Content-Encoding: gzip` and are not gzip
    # Video tasks that succeed, are billed, and deliver a broken picture, as generated video
    # sometimes does: all black, frozen on its first frame, or flashing black and white.
    black_clip: int = 0
    frozen_clip: int = 0
    flashing_clip: int = 0
    trickle_interval: float = 5.0
    safety_code: str = "sensitiveContentDetected"
    hidden_seconds: float = 8.0

    def take(self, name: str) -> bool:
        """Spend one fault of this kind, if any is left."""
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False


SETTINGS = ("retry_after", "trickle_interval", "safety_code", "hidden_seconds")  # not counts
FAULTS = tuple(f.name for f in fields(Faults) if f.name not in SETTINGS)


@dataclass
class Task:
    uuid: str
    request: dict[str, Any]
    fingerprint: str
    submitted: float
    ready_at: float
    fate: str  # "success", "error", "policy", "safety", "vanish" or "never"
    size: tuple[int, int]  # what will be delivered
    frames: int  # 0: an image
    status: str = "processing"
    first: bytes | None = None  # the first frame image the clip starts from
    sound: bool = False
    tint: int = 0  # the prompt's: another prompt most often gives another picture
    video_uuid: str = ""
    seed: int = 0  # a clip's or image's is drawn on it: another take, another picture
    price: float = 0.0
    billed: bool = False
    polls: int = 0
    downloads: int = 0
    hidden_until: float = 0.0  # getResponse does not know it before this (monotonic)
    held: bool = False  # stays `processing` until the test releases it (`release`)
    job: Job | None = None  # a speech, music, upscale or lip-sync task's work
    look: str = ""  # a broken picture it delivers: "black", "frozen", "flashing"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, or the way it goes wrong."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection after `body` (nothing, or part of an answer)
    declared_length: int | None = None  # a Content-Length other than len(body)
    trickle: float = 0.0  # seconds between bytes of the body


def _json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(body).encode(), headers=headers or {})


class Rejection(Exception):
    """A task the API refuses: one error object, and the HTTP status it comes with."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error = {"code": code, "message": message, **extra}


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (a build killed, a download abandoned) is normal
    here: no traceback for it."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RunwareServer:
    """The server, in a background thread; a context manager for tests."""

    def __init__(
        self,
        port: int = 0,
        latency: float = 2.0,
        api_keys: set[str] | None = None,
        clip_dir: Path | None = None,
        dialect: Dialect | str = "sdk",
        clip_noise: int = 0,
    ) -> None:
        self._own_dir = clip_dir is None
        self.clip_dir = clip_dir or Path(tempfile.mkdtemp(prefix="runware-server-"))
        self.latency = latency
        self.price_factor = 1.0  # bill more (or less) than the table, as a price change would
        self.api_keys = set(api_keys or ())
        self.dialect = DIALECTS[dialect] if isinstance(dialect, str) else dialect.check()
        self.clip_noise = clip_noise
        self.faults = Faults()
        self.holding = False  # tasks accepted now are held until `release`
        self.takes: dict[tuple[Any, ...], int] = {}  # renders so far of a picture and prompt
        self.tasks: dict[str, Task] = {}
        self.images: dict[str, tuple[int, int] | None] = {}  # imageUUID -> its size
        self.image_bytes: dict[str, bytes] = {}  # imageUUID -> the image uploaded
        self.media: dict[str, Path] = {}  # mediaUUID -> the file stored (mediaStorage)
        self.videos: dict[str, Task] = {}
        self.lock = threading.Lock()
        self._reset_counters()
        self._paintings: dict[tuple[Any, ...], Future[Path]] = {}
        self._painter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paint")
        handler = type("BoundHandler", (Handler,), {"app": self})
        self.httpd = QuietServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> RunwareServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread = None
        self.httpd.server_close()
        self._painter.shutdown(wait=True)
        if self._own_dir:
            shutil.rmtree(self.clip_dir, ignore_errors=True)

    def __enter__(self) -> RunwareServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- control ----------------------------------------------------------------------------

    def set_faults(self, **settings: Any) -> None:
        """Fault counts by name, and dialect settings (`dialect=NAME` or single fields)."""
        with self.lock:
            for name, value in settings.items():
                if name == "dialect":
                    self.dialect = DIALECTS[value]
                elif name in {f.name for f in fields(Dialect)}:
                    self.dialect = replace(self.dialect, **{name: value}).check()
                elif name == "latency":
                    self.latency = float(value)
                elif hasattr(self.faults, name):
                    setattr(self.faults, name, value)
                else:
                    raise ValueError(f"unknown fault '{name}'; faults: {', '.join(FAULTS)}")

    def hold(self, on: bool = True) -> None:
        """Hold the tasks accepted from now on (or no more): each stays `processing` until
        `release`. A test then says when a render ends by what it has seen, not by a latency
        that a busy machine may overrun."""
        with self.lock:
            self.holding = on

    def release(self) -> int:
        """Let every held task finish (at its time, or now if that has passed): how many."""
        with self.lock:
            held = [task for task in self.tasks.values() if task.held]
            for task in held:
                task.held = False
            return len(held)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            self._advance()
            return self._stats()

    def reset(self) -> None:
        with self.lock:
            self._reset_counters()

    def transport(self) -> Any:
        """This server as an httpx transport: the same answers, no socket."""
        import httpx

        async def handle(request: httpx.Request) -> httpx.Response:
            port = request.url.port
            if port is not None and not 0 < port < 65536:
                raise OverflowError("port must be 0-65535.")  # as the socket layer says it
            body = await request.aread()
            reply = await asyncio.to_thread(
                self.respond, request.method, request.url.path, request.headers, body
            )
            if reply.drop and not reply.body:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            headers = {"Content-Type": reply.content_type, **reply.headers}
            headers["Content-Length"] = str(reply.declared_length or len(reply.body))
            content: Any = reply.body
            if reply.trickle:
                content = _trickled(reply.body, reply.trickle)
            return httpx.Response(reply.status, headers=headers, content=content)

        return httpx.MockTransport(handle)

    # -- HTTP -------------------------------------------------------------------------------

    def respond(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if method == "GET" and path == "/_stats":
            return _json_reply(200, self.stats())
        if method == "GET":
            match = re.fullmatch(r"/(videos|images|audios)/([0-9a-f-]{36})\.(mp4|png|mp3)", path)
            return self._download(match.group(2)) if match else Reply(404, b"not found")
        if path == "/_faults":
            try:
                self.set_faults(**json.loads(body or b"{}"))
            except (ValueError, TypeError, KeyError) as exc:
                return _json_reply(400, {"error": str(exc)})
            return _json_reply(200, self.stats()["faults_left"])
        if path == "/_reset":
            self.reset()
            return _json_reply(200, {"reset": True})
        if path.rstrip("/") not in ("/v1", ""):
            return _json_reply(404, {"errors": [{"code": "notFound", "message": "no endpoint"}]})
        return self._api(headers, body)

    def _api(self, headers: Mapping[str, str], body: bytes) -> Reply:
        with self.lock:
            self.counters["requests"] += 1
            if not self._authorised(headers):
                self.counters["auth_failures"] += 1
                error = {"code": "invalidApiKey", "message": "Invalid API key", "type": "auth"}
                return _json_reply(401, {"errors": [error]})
            for name in ("http_500", "http_429"):
                if self.faults.take(name):
                    self._served(name)
                    return self._http_fault(name)
        try:
            tasks = json.loads(body)
        except ValueError:
            return _json_reply(400, {"errors": [{"code": "invalidJSON", "message": "not JSON"}]})
        if not isinstance(tasks, list):
            error = {"code": "invalidJSON", "message": "the body must be an array of tasks"}
            return _json_reply(400, {"errors": [error]})
        kinds = [t.get("taskType") for t in tasks if isinstance(t, dict)]
        with self.lock:
            if "getResponse" in kinds:
                self.counters["poll_requests"] += 1
                if self.faults.take("drop_poll"):
                    self._served("drop_poll")
                    return Reply(0, drop=True)
                if kinds.count("getResponse") > 1 and self.faults.take("batch_poll_500"):
                    self._served("batch_poll_500")
                    return Reply(500, b"Internal Server Error", "text/plain")
            submits = sum(kinds.count(kind) for kind in INFERENCE)
            if submits and self.faults.take("insufficient_credit"):
                self._served("insufficient_credit")
                self.counters["submits"] += submits
                error = {
                    "code": "insufficientCredits",
                    "message": "Insufficient credits to run this task. Top up your balance.",
                }
                return _json_reply(402, {"errors": [error]})
            status, answer = self._tasks(tasks)
            drop = bool(submits) and status == 200 and self.faults.take("drop_submit")
            if drop:
                self._served("drop_submit")
        if drop:
            return Reply(0, drop=True)  # the task is accepted; the client never hears so
        return _json_reply(status, answer)

    def _http_fault(self, name: str) -> Reply:
        if name == "http_500":
            return Reply(500, b"Internal Server Error", "text/plain")
        seconds = self.faults.retry_after
        if self.dialect.retry_after_format == "date":
            value = email.utils.formatdate(time.time() + seconds, usegmt=True)
        else:
            value = f"{seconds:g}"
        error = {"code": "tooManyRequests", "message": "The queue is full, retry later"}
        return _json_reply(429, {"errors": [error]}, {"Retry-After": value})

    def _authorised(self, headers: Mapping[str, str]) -> bool:
        header = headers.get("Authorization") or headers.get("authorization") or ""
        if not header.startswith("Bearer "):
            return False
        key = header[len("Bearer ") :].strip()
        return bool(key) and (not self.api_keys or key in self.api_keys)

    # -- tasks ------------------------------------------------------------------------------

    def _tasks(self, tasks: list[Any]) -> tuple[int, dict[str, Any]]:
        """Answer a request's tasks: `data` for results, `errors` for refusals and failures."""
        data: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        statuses: list[int] = []
        self._advance()
        whole = False  # an upload answered with `data` as one object, not a list
        for task in tasks:
            try:
                answer = self._one(task)
            except Rejection as rejection:
                errors.append(rejection.error)
                statuses.append(rejection.status)
                self.counters["rejected"] += 1
                continue
            for item in answer:
                whole = item.pop("_whole_data", False) or whole
                (errors if item.pop("_in_errors", False) else data).append(item)
        body: dict[str, Any] = {}
        if data:
            body["data"] = data[0] if whole and len(data) == 1 else data
        if errors:
            body["errors"] = errors
        status = 200 if data or not errors else max(statuses, default=400)
        return status, body

    def _one(self, task: Any) -> list[dict[str, Any]]:
        if not isinstance(task, dict):
            raise Rejection(400, "invalidTask", "each task must be an object")
        kind = task.get("taskType")
        if kind == "ping":
            return [_pong(task)]
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str) or not UUID_PATTERN.match(task_uuid):
            raise Rejection(
                400, "invalidTaskUUID", "taskUUID must be a UUID v4", parameter="taskUUID"
            )
        if kind in INFERENCE:
            return [self._submit(task)]
        if kind == "getResponse":
            return [self._poll(task_uuid)]
        if kind == "imageUpload":
            return [self._upload(task)]
        if kind == "mediaStorage":
            return [self._store_media(task)]
        raise Rejection(400, "invalidTaskType", f"unknown taskType {kind!r}", parameter="taskType")

    def _submit(self, request: dict[str, Any]) -> dict[str, Any]:
        self.counters["submits"] += 1
        task_uuid = request["taskUUID"]
        self.submits_per_uuid[task_uuid] = self.submits_per_uuid.get(task_uuid, 0) + 1
        if task_uuid in self.tasks:
            self.counters["conflicts"] += 1
            raise Rejection(
                400,
                "conflictTaskUUID",
                "A task with this taskUUID already exists",
                parameter="taskUUID",
                taskUUID=task_uuid,
            )
        if self._uses_uploads(request) and self.faults.take("expire_images"):
            self._served("expire_images")
            self.images.clear()
        job = None
        tool = TOOLS.get(str(request.get("model")))
        if tool is not None:
            job, price = self._tool(request, tool)
            size, frames, sound = job.size, max(round(job.seconds * FPS), 1), True
        else:
            price, size, frames, sound = self._validate(request)
        if self.faults.take("error_envelope"):
            self._served("error_envelope")
            raise Rejection(
                400,
                "providerContentPolicyViolation",
                "The provider refused the prompt under its content policy",
                parameter="positivePrompt",
                taskUUID=task_uuid,
            )
        now = time.monotonic()
        if frames:
            frames += self.dialect.frame_offset
        shown = {k: v for k, v in request.items() if k != "taskUUID"}
        task = Task(
            uuid=task_uuid,
            request=request,
            fingerprint=hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest(),
            submitted=now,
            ready_at=now + self.latency,
            fate=self._fate(),
            size=size,
            frames=frames,
            price=round(price * self.price_factor, 4),
            first=self._first_image(request),
            sound=sound,
            tint=_tint(request.get("positivePrompt")),
            job=job,
            held=self.holding,
            look=self._look() if frames and job is None else "",
        )
        if job is None:
            task.seed = self._seed(task, request)
        if self.faults.take("hidden"):
            self._served("hidden")
            task.hidden_until = now + self.faults.hidden_seconds
        self.tasks[task_uuid] = task
        self.counters["accepted"] += 1
        running = sum(1 for t in self.tasks.values() if t.status == "processing")
        self.counters["max_concurrency"] = max(self.counters["max_concurrency"], running)
        self._paint(task)
        return {"taskType": request["taskType"], "taskUUID": task_uuid}

    def _tool(self, request: dict[str, Any], tool: Any) -> tuple[Job, float]:
        """A speech, music, upscale or lip-sync task checked as its model's page says."""
        if request["taskType"] != tool.task:
            raise Rejection(
                400, "invalidParameter", f"this model takes {tool.task} tasks", parameter="taskType"
            )
        try:
            price, job = check(request, tool, self.media)
        except Refused as refused:
            raise Rejection(
                400, refused.code, refused.message, parameter=refused.parameter
            ) from None
        return job, price

    def _store_media(self, task: dict[str, Any]) -> dict[str, Any]:
        """mediaStorage's upload: a data URI or base64 of any media, kept by mediaUUID."""
        if task.get("operation") != "upload":
            raise Rejection(400, "invalidParameter", "operation: upload", parameter="operation")
        given = task.get("media")
        data = _image_data(given) if isinstance(given, str) else None
        if not data:
            raise Rejection(400, "invalidMedia", "media is not a data URI", parameter="media")
        media_uuid = str(uuid.uuid4())
        path = self.clip_dir / f"media-{media_uuid}"
        path.write_bytes(data)
        self.media[media_uuid] = path
        self.counters["uploads"] += 1
        base = self.url.rsplit("/", 1)[0]
        return {
            "taskType": "mediaStorage",
            "taskUUID": task["taskUUID"],
            "mediaUUID": media_uuid,
            "mediaURL": f"{base}/media/{media_uuid}",
        }

    def _look(self) -> str:
        """The broken picture a video task delivers, if a fault asks for one."""
        for look in LOOKS:
            if self.faults.take(f"{look}_clip"):
                self._served(f"{look}_clip")
                return look
        return ""

    def _fate(self) -> str:
        for fault, fate in (
            ("task_error", "error"),
            ("content_policy", "policy"),
            ("safety_refusal", "safety"),
            ("task_vanish", "vanish"),
            ("never_finish", "never"),
        ):
            if self.faults.take(fault):
                self._served(fault)
                return fate
        return "success"

    def _validate(self, request: dict[str, Any]) -> tuple[float, tuple[int, int], int, bool]:
        """The checks the API makes, from each model's published schema; the price, the
        size delivered, the frames of the clip (0 for an image) and whether it has sound."""
        model = MODELS.get(str(request.get("model")))
        if model is None:
            raise Rejection(400, "invalidModel", "unknown model AIR", parameter="model")
        if request["taskType"] != model.task:
            raise Rejection(
                400,
                "invalidParameter",
                f"this model takes {model.task} tasks",
                parameter="taskType",
            )
        unknown = sorted(set(request) - PLATFORM_FIELDS - model.fields)
        if unknown:
            raise Rejection(
                400, "unknownParameter", f"unknown parameter '{unknown[0]}'", parameter=unknown[0]
            )
        for name in sorted(model.required):
            if name not in request:
                raise Rejection(400, "missingParameter", f"'{name}' is required", parameter=name)
        settings = _provider_settings(request, model)
        if request.get("deliveryMethod") != "async":
            raise Rejection(
                400, "invalidParameter", "deliveryMethod must be async", parameter="deliveryMethod"
            )
        frames = self._frame_images(request, model)
        size = self._asked_size(request, model, bool(frames))
        self._check_prompt(request, model, bool(frames))
        if model.task == "imageInference":
            return model.price(*size, 0, False), size, 0, False
        duration = request.get("duration")
        offered = model.sizes or {}
        durations = offered[size] if size in offered else {d for ds in offered.values() for d in ds}
        if not isinstance(duration, int | float) or isinstance(duration, bool):
            raise Rejection(400, "missingParameter", "'duration' is required", parameter="duration")
        if duration not in durations:
            raise Rejection(
                400,
                "unsupportedDuration",
                "duration is not supported at this size",
                parameter="duration",
                allowedValues=sorted(durations),
            )
        if "fps" in request and request["fps"] not in model.fps:
            raise Rejection(
                400, "invalidParameter", f"fps must be one of {list(model.fps)}", parameter="fps"
            )
        if not model.text_to_video and not frames:
            raise Rejection(
                400,
                "missingParameter",
                "this model needs a first frame image",
                parameter="inputs.frameImages",
            )
        sound = model.sound == "yes" or (
            model.sound == "optional" and settings.get(model.sound_setting) is True
        )
        delivered = self._delivered_size(request, model, size)
        price = model.price(*(size if size in offered else delivered), duration, sound)
        return price, delivered, round(duration * FPS), sound

    def _asked_size(
        self, request: dict[str, Any], model: ServedModel, framed: bool
    ) -> tuple[int, int]:
        given = "width" in request or "height" in request
        if "resolution" in request:
            if request["resolution"] not in model.resolutions:
                raise Rejection(
                    400,
                    "invalidParameter",
                    "resolution is not one this model takes",
                    parameter="resolution",
                    allowedValues=list(model.resolutions),
                )
            if given:
                raise Rejection(
                    400,
                    "invalidParameter",
                    "resolution cannot be used with width/height",
                    parameter="resolution",
                )
        if model.size_or_frames and framed:
            if given:
                raise Rejection(
                    400,
                    "invalidParameter",
                    "Provide exactly one of inputs.frameImages or width and height",
                    parameter=["width", "height"],
                )
            return self._image_dimensions(request) or (0, 0)
        for name in ("width", "height"):
            if not isinstance(request.get(name), int):
                raise Rejection(400, "missingParameter", f"'{name}' is required", parameter=name)
        size = (request["width"], request["height"])
        if not model.takes_size(*size):
            raise Rejection(
                400,
                "unsupportedDimensions",
                "width and height are not a supported pair",
                parameter=["width", "height"],
                allowedValues=[f"{w}x{h}" for w, h in model.sizes or {}],
            )
        return size

    def _check_prompt(self, request: dict[str, Any], model: ServedModel, framed: bool) -> None:
        prompt = request.get("positivePrompt")
        if prompt is None and not framed:
            raise Rejection(
                400,
                "missingParameter",
                "positivePrompt is required without a frame image",
                parameter="positivePrompt",
            )
        low, high = model.prompt_range
        if prompt is not None and not (low <= len(str(prompt)) <= high):
            raise Rejection(
                400,
                "invalidParameter",
                f"positivePrompt must be {low} to {high} characters",
                parameter="positivePrompt",
            )

    def _frame_images(self, request: dict[str, Any], model: ServedModel) -> list[str]:
        inputs = request.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise Rejection(400, "invalidParameter", "inputs must be an object", parameter="inputs")
        _closed(inputs, model.inputs, "inputs")
        frames = inputs.get("frameImages") or []
        if not isinstance(frames, list):
            raise Rejection(
                400, "invalidParameter", "inputs.frameImages must be a list",
                parameter="inputs.frameImages",
            )  # fmt: skip
        images = []
        for index, frame in enumerate(frames):
            if isinstance(frame, dict):
                _closed(frame, frozenset({"image", "frame"}), f"inputs.frameImages[{index}]")
            image = frame.get("image") if isinstance(frame, dict) else None
            where = f"inputs.frameImages[{index}].image"
            position = frame.get("frame", "first") if isinstance(frame, dict) else None
            if position not in model.frames:
                raise Rejection(
                    400,
                    "invalidParameter",
                    f"this model takes frame images at: {', '.join(model.frames) or 'none'}",
                    parameter=f"inputs.frameImages[{index}].frame",
                )
            if not isinstance(image, str) or not self._image_usable(image):
                raise Rejection(
                    400,
                    "invalidFrameImage",
                    "the frame image does not exist or has expired",
                    parameter=where,
                )
            images.append(image)
        return images

    def _first_image(self, request: dict[str, Any]) -> bytes | None:
        """The bytes of the first frame image, when it is given as an upload or data."""
        for frame in (request.get("inputs") or {}).get("frameImages") or []:
            if frame.get("frame", "first") != "first":
                continue
            image = frame["image"]
            if UUID_PATTERN.match(image):
                return self.image_bytes.get(image)
            if not image.startswith(("http://", "https://")):
                return _image_data(image)
        return None

    def _image_dimensions(self, request: dict[str, Any]) -> tuple[int, int] | None:
        for frame in (request.get("inputs") or {}).get("frameImages") or []:
            image = frame["image"]
            if UUID_PATTERN.match(image):
                return self.images.get(image)
            data = _image_data(image)
            return image_size(data) if data else None
        return None

    def _image_usable(self, image: str) -> bool:
        if image.startswith(("http://", "https://")):
            return True
        if UUID_PATTERN.match(image):
            return image in self.images
        return _decode_image(image) is not None

    def _uses_uploads(self, request: dict[str, Any]) -> bool:
        frames = (request.get("inputs") or {}).get("frameImages") or []
        return any(
            isinstance(f, dict) and UUID_PATTERN.match(str(f.get("image", ""))) for f in frames
        )

    def _delivered_size(
        self, request: dict[str, Any], model: ServedModel, asked: tuple[int, int]
    ) -> tuple[int, int]:
        """The asked size. A model that takes frame images instead of a size delivers the
        offered size nearest the image's aspect; in the dialect that does so, image-to-video
        clips take the first frame's aspect ratio at the asked short side (as Hailuo's
        image-to-video renders upstream)."""
        image = self._image_dimensions(request)
        if model.size_or_frames and image:
            # The offered size nearest the image's aspect, at the resolution asked, if any
            # (else the first listed: the model's default).
            aspect = image[0] / image[1]
            asked_short = str(request.get("resolution", "")).removesuffix("p")
            sizes = [s for s in model.sizes or {} if str(min(s)) == asked_short]
            return min(sizes or model.sizes or {}, key=lambda s: abs(s[0] / s[1] - aspect))
        if not self.dialect.i2v_aspect or not image:
            return asked
        short = min(asked)
        width, height = image
        if width >= height:
            return _even(short * width / height), short
        return short, _even(short * height / width)

    def _poll(self, task_uuid: str) -> dict[str, Any]:
        self.counters["polled_tasks"] += 1
        task = self.tasks.get(task_uuid)
        now = time.monotonic()
        if task is None or task.status == "vanished" or now < task.hidden_until:
            return self._error_item(
                task_uuid,
                "taskFailedOrNotFound",
                "No task found with this taskUUID, or the task failed",
                in_data=False,
            )
        task.polls += 1
        if task.status == "processing":
            elapsed = now - task.submitted
            share = elapsed / max(self.latency, 1e-6)
            if self.dialect.pending_status and share < 0.5:
                return {
                    "taskType": task.request["taskType"],
                    "taskUUID": task_uuid,
                    "status": "pending",
                }
            return {
                "taskType": task.request["taskType"],
                "taskUUID": task_uuid,
                "status": "processing",
                "progress": min(99, int(100 * share)),
            }
        if task.status == "error":
            return self._error_item(
                task_uuid, "timeoutProvider", "The provider did not answer in time"
            )
        if task.status == "policy":
            return self._error_item(
                task_uuid,
                "providerContentPolicyViolation",
                "The provider refused to render this request under its content policy",
            )
        if task.status == "safety":
            return self._error_item(
                task_uuid,
                self.faults.safety_code,
                "The request was refused by the safety filter",
                in_data=False,
            )
        return self._result(task)

    def _result(self, task: Task) -> dict[str, Any]:
        kind = task.request["taskType"]
        item: dict[str, Any] = {"taskType": kind, "taskUUID": task.uuid}
        if self.dialect.success_status:
            item["status"] = "success"
        noun, folder, suffix = (
            ("audio", "audios", "mp3")
            if task.job is not None and task.job.audio_only
            else ("video", "videos", "mp4")
            if kind in ("videoInference", "upscale")
            else ("image", "images", "png")
        )
        item[f"{noun}UUID"] = task.video_uuid
        if self.faults.take("no_video_url"):
            self._served("no_video_url")
        elif self.faults.take("bad_video_url"):
            self._served("bad_video_url")
            item[f"{noun}URL"] = f"http://127.0.0.1:99999/{folder}/{task.video_uuid}.{suffix}"
        else:
            base = self.url.rsplit("/", 1)[0]
            item[f"{noun}URL"] = f"{base}/{folder}/{task.video_uuid}.{suffix}"
        item["seed"] = task.seed
        if task.request.get("includeCost"):
            nan = self.faults.take("nan_cost")
            if nan:
                self._served("nan_cost")
            item["cost"] = float("nan") if nan else task.price
        return item

    def _error_item(
        self, task_uuid: str, code: str, message: str, in_data: bool = True
    ) -> dict[str, Any]:
        """A failed task in the dialect's shape; `_in_errors` says which list it goes in."""
        shape = self.dialect.failure_shape if in_data else "errors"
        task = self.tasks.get(task_uuid)
        kind = task.request["taskType"] if task else "videoInference"
        base = {"taskType": kind, "taskUUID": task_uuid, "status": "error"}
        if shape == "data_flat":
            return {**base, "code": code, "message": message}
        if shape == "data_nested":
            return {**base, "error": {"code": code, "message": message}}
        item = {**base, "code": code, "message": message, "_in_errors": True}
        if not self.dialect.error_task_uuid:
            del item["taskUUID"]
        return item

    def _upload(self, task: dict[str, Any]) -> dict[str, Any]:
        image = task.get("image")
        if not isinstance(image, str) or not image:
            raise Rejection(400, "missingParameter", "'image' is required", parameter="image")
        size = _decode_image(image)
        if size is None:
            raise Rejection(
                400, "invalidImage", "image is not a PNG, JPEG or WebP", parameter="image"
            )
        image_uuid = str(uuid.uuid4())
        self.images[image_uuid] = size
        self.image_bytes[image_uuid] = _image_data(image) or b""
        self.counters["uploads"] += 1
        answer = {
            "taskType": "imageUpload",
            "taskUUID": task["taskUUID"],
            "imageUUID": image_uuid,
            "imageURL": f"{self.url.rsplit('/', 1)[0]}/images/{image_uuid}",
        }
        if self.dialect.upload_shape == "object":
            answer["_whole_data"] = True
        return answer

    def _advance(self) -> None:
        """Finish the tasks whose time has come; bill the ones that succeed."""
        now = time.monotonic()
        for task in self.tasks.values():
            waiting = task.ready_at > now or task.fate == "never" or task.held
            if task.status != "processing" or waiting:
                continue
            task.status = {
                "error": "error",
                "policy": "policy",
                "safety": "safety",
                "vanish": "vanished",
            }.get(task.fate, "success")
            if task.status != "success":
                continue
            task.video_uuid = str(uuid.uuid4())
            if task.job is not None:
                asked = task.job.seed
                task.seed = asked if asked is not None else random.randrange(1, 2**31)
            task.billed = True
            self.videos[task.video_uuid] = task
            self.counters["billed_cost"] = round(self.counters["billed_cost"] + task.price, 6)

    # -- counters ---------------------------------------------------------------------------

    def _reset_counters(self) -> None:
        self.counted_from = time.monotonic()
        self.submits_per_uuid: dict[str, int] = {}
        self.counters: dict[str, Any] = {
            "requests": 0,
            "submits": 0,
            "accepted": 0,
            "conflicts": 0,
            "rejected": 0,
            "auth_failures": 0,
            "poll_requests": 0,
            "polled_tasks": 0,
            "uploads": 0,
            "downloads": 0,
            "billed_cost": 0.0,
            "max_concurrency": 0,
            "faults_served": {},
        }

    def _served(self, fault: str) -> None:
        served = self.counters["faults_served"]
        served[fault] = served.get(fault, 0) + 1

    def _stats(self) -> dict[str, Any]:
        tasks = list(self.tasks.values())
        billed_per_request: dict[str, int] = {}
        for task in tasks:
            if task.billed:
                name = task.fingerprint[:16]
                billed_per_request[name] = billed_per_request.get(name, 0) + 1
        return {
            **self.counters,
            "tasks": len(tasks),
            "billed_tasks": sum(1 for t in tasks if t.billed),
            "billed_per_request": billed_per_request,
            "submits_per_uuid": dict(self.submits_per_uuid),
            "downloaded_cost": round(sum(t.price for t in tasks if t.downloads), 6),
            "polls_per_task": {t.uuid: t.polls for t in tasks},
            "in_progress": sum(1 for t in tasks if t.status == "processing"),
            "held": sum(1 for t in tasks if t.held),
            "remote_span": self._remote_span(),
            "faults_left": asdict(self.faults),
            "dialect": asdict(self.dialect),
        }

    def _remote_span(self) -> float:
        """From the first submit to the last task done since the counters were reset."""
        recent = [t for t in self.tasks.values() if t.submitted >= self.counted_from]
        done = [t.ready_at for t in recent if t.status == "success"]
        if not recent or not done:
            return 0.0
        return round(max(done) - min(t.submitted for t in recent), 3)

    # -- clips ------------------------------------------------------------------------------

    def _seed(self, task: Task, request: dict[str, Any]) -> int:
        """The seed a clip or image is rendered with, and drawn on it: the one asked, else
        a new one for each render of one picture and prompt, as a provider draws one (so the
        takes of one request differ). Drawn from how many came before, not at random: the
        n-th take of a picture is the same in every test, and drawn once per session."""
        asked = request.get("seed")
        if isinstance(asked, int) and not isinstance(asked, bool):
            return asked
        seen = (_drawn_from(task), str(request.get("positivePrompt")))
        self.takes[seen] = self.takes.get(seen, 0) + 1
        made = hashlib.sha256(repr((_drawn_from(task), self.takes[seen])).encode()).digest()
        return int.from_bytes(made[:4], "big") % (SEEDS - 1) + 1

    def _paint(self, task: Task) -> Future[Path]:
        """Draw a task's clip (or image) in the background. Clips of one size and length
        with no first frame are one drawing, shared by every task."""
        if task.job is not None:
            if (task.uuid,) not in self._paintings:
                made = self.clip_dir / f"{task.job.kind}-{task.uuid}"
                self._paintings[(task.uuid,)] = self._painter.submit(make, task.job, made)
            return self._paintings[(task.uuid,)]
        width, height = task.size
        first = _first_digest(task)
        key = (*_drawn_from(task), task.seed)
        if key in self._paintings:
            return self._paintings[key]
        suffix = "png" if not task.frames else "mp4"
        extra = (f"-{first}" if first else f"-t{task.tint}") + ("-sound" if task.sound else "")
        extra += f"-s{task.seed}"
        extra += f"-{task.look}" if task.look else ""
        name = f"clip-{width}x{height}-{task.frames}f-n{self.clip_noise}{extra}.{suffix}"
        path = self.clip_dir / name
        if path.exists():
            done: Future[Path] = Future()
            done.set_result(path)
            self._paintings[key] = done
        elif not task.frames:
            self._paintings[key] = self._painter.submit(
                _drawn_once, paint_image, path, width, height, task.seed
            )
        else:
            image = None
            if task.first:
                image = self._first_file(first, task.first)
            self._paintings[key] = self._painter.submit(
                _drawn_once,
                paint,
                path,
                width,
                height,
                task.frames,
                self.clip_noise,
                image,
                task.sound,
                task.tint,
                task.seed,
                task.look,
            )
        return self._paintings[key]

    def _first_file(self, digest: str, data: bytes) -> Path:
        """A first frame image as a file ffmpeg reads, written once: the takes of one
        request are painted from it, and a painting may be reading it."""
        image = self.clip_dir / f"first-{digest}.img"
        if not image.exists():
            temp = image.with_name(f".{image.name}.{uuid.uuid4().hex}")
            temp.write_bytes(data)
            temp.replace(image)
        return image

    def _download(self, video_uuid: str) -> Reply:
        with self.lock:
            task = self.videos.get(video_uuid)
            if task is None:
                return Reply(404, b"not found", "text/plain")
            painting = self._paint(task)
        data = painting.result().read_bytes()
        with self.lock:
            self.counters["downloads"] += 1
            for fault in ("truncate", "corrupt", "trickle", "bad_encoding"):
                if self.faults.take(fault):
                    self._served(fault)
                    break
            else:
                fault = ""
                task.downloads += 1
            interval = self.faults.trickle_interval
        if fault == "truncate":
            return Reply(
                200, data[: len(data) // 2], "video/mp4", drop=True, declared_length=len(data)
            )
        if fault == "corrupt":
            middle = len(data) // 2
            noise = bytes(random.randrange(256) for _ in range(4096))
            return Reply(200, data[:middle] + noise + data[middle + 4096 :], "video/mp4")
        if fault == "trickle":
            return Reply(200, data, "video/mp4", trickle=interval)
        if fault == "bad_encoding":
            return Reply(200, data, "video/mp4", headers={"Content-Encoding": "gzip"})
        if task.job is not None and task.job.audio_only:
            return Reply(200, data, "audio/mpeg")
        return Reply(200, data, "video/mp4" if task.frames else "image/png")


def _pong(task: dict[str, Any]) -> dict[str, Any]:
    """The published ping (runware-python's PingParams: taskType and `ping: true`, nothing
    else) and its answer."""
    extra = sorted(set(task) - {"taskType", "ping"})
    if extra:
        raise Rejection(
            400, "unknownParameter", f"unknown parameter '{extra[0]}'", parameter=extra[0]
        )
    if task.get("ping") is not True:
        raise Rejection(400, "invalidParameter", "ping must be true", parameter="ping")
    return {"taskType": "ping", "pong": True}


def _first_digest(task: Task) -> str:
    return hashlib.sha256(task.first).hexdigest()[:16] if task.first else ""


def _drawn_from(task: Task) -> tuple[Any, ...]:
    """What a clip's or image's picture is drawn from, its seed aside."""
    width, height = task.size
    return (width, height, task.frames, _first_digest(task), task.sound, task.tint, task.look)


def _tint(prompt: Any) -> int:
    """A prompt's background tint: renders of different prompts differ, as real ones do,
    while clips stay few enough (TINTS per size) to draw once per test session."""
    return hashlib.sha256(str(prompt or "").encode()).digest()[0] % len(TINTS)


def _provider_settings(request: dict[str, Any], model: ServedModel) -> dict[str, Any]:
    """The request's settings for the model's own provider, checked as the API checks them:
    a key that is no provider, or another provider's, is refused; so is a setting the
    provider page does not list, and settings a model takes only with inputs it lacks."""
    given = request.get("providerSettings")
    if given is None:
        return {}
    provider = str(request["model"]).split(":", 1)[0]
    if not isinstance(given, dict):
        raise Rejection(
            400,
            "invalidParameter",
            "providerSettings must be an object",
            parameter="providerSettings",
        )
    for name in given:
        if name not in PROVIDERS:
            raise Rejection(
                400,
                "unknownProviderSettingsProvider",
                f"'{name}' is not a provider",
                parameter=f"providerSettings.{name}",
            )
        if name != provider:
            raise Rejection(
                400,
                "mismatchProviderSettingsProvider",
                f"providerSettings.{name} does not apply to a {provider} model",
                parameter=f"providerSettings.{name}",
            )
    inputs = request.get("inputs") or {}
    for needed in model.settings_need:
        if needed not in inputs:
            raise Rejection(
                400,
                "missingParameter",
                f"When providerSettings is provided, inputs.{needed} is required",
                parameter=f"inputs.{needed}",
            )
    settings = given.get(provider) or {}
    if not isinstance(settings, dict):
        raise Rejection(
            400, "invalidParameter", f"providerSettings.{provider} must be an object",
            parameter=f"providerSettings.{provider}",
        )  # fmt: skip
    for name, value in settings.items():
        where = f"providerSettings.{provider}.{name}"
        if name not in model.settings:
            raise Rejection(
                400, "unknownParameter", f"unknown parameter '{where}'", parameter=where
            )
        if not isinstance(value, bool):
            raise Rejection(400, "invalidParameter", f"{where} must be a boolean", parameter=where)
    return settings


def _closed(given: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """Refuse a key the published schema does not list, as Runware does: unknownParameter."""
    for name in sorted(given):
        if name not in allowed:
            raise Rejection(
                400, "unknownParameter", f"unknown parameter '{where}.{name}'",
                parameter=f"{where}.{name}",
            )  # fmt: skip


def _image_data(image: str) -> bytes | None:
    payload = image.split(",", 1)[1] if image.startswith("data:") else image
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _decode_image(image: str) -> tuple[int, int] | None:
    """The size of an image given as a data URI or bare base64; None if it is not one."""
    data = _image_data(image)
    return image_size(data) if data is not None else None


def _drawn_once(draw: Callable[..., Path], path: Path, *args: Any) -> Path:
    """`draw(path, *args)` unless `path` is there, under a lock on it: servers in other
    processes that share the clip folder (a test run's workers) draw each clip once between
    them."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            draw(path, *args)
    return path


async def _trickled(data: bytes, interval: float) -> AsyncIterator[bytes]:
    for index in range(len(data)):
        yield data[index : index + 1]
        await asyncio.sleep(interval)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: RunwareServer

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._send(self.app.respond("POST", self.path, dict(self.headers.items()), body))

    def do_GET(self) -> None:
        self._send(self.app.respond("GET", self.path, dict(self.headers.items()), b""))

    def _send(self, reply: Reply) -> None:
        if reply.drop and not reply.body:
            self._drop()
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(reply.declared_length or len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for chunk in _chunks(reply):
                self.wfile.write(chunk)
                self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        if reply.drop:
            self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _chunks(reply: Reply) -> Iterator[bytes]:
    if not reply.trickle:
        yield reply.body
        return
    for index in range(len(reply.body)):
        yield reply.body[index : index + 1]
        time.sleep(reply.trickle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.testing.runware_server",
        description="A local Runware-compatible server on 127.0.0.1 (see the module docstring).",
    )
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds each task takes")
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="a key to accept (repeatable; default: accept any non-empty key)",
    )
    parser.add_argument(
        "--dialect",
        choices=sorted(DIALECTS),
        default="sdk",
        help="answer shapes: as the SDKs expect (sdk) or as the docs pages show (docs)",
    )
    parser.add_argument(
        "--clip-noise", type=int, default=0, help="film grain in served clips (12: real weight)"
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=N",
        help=f"inject faults: {', '.join(FAULTS)}",
    )
    args = parser.parse_args(argv)
    server = RunwareServer(
        args.port, args.latency, set(args.api_key), dialect=args.dialect, clip_noise=args.clip_noise
    )
    for item in args.fault:
        name, _, count = item.partition("=")
        value: Any = count
        if name in ("retry_after", "trickle_interval", "hidden_seconds"):
            value = float(count or 1)
        elif name != "safety_code":
            value = int(count or 1)
        server.set_faults(**{name: value})
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    server.start()
    print(f"Runware-compatible server at {server.url}", flush=True)
    print(f"  RUNWARE_BASE_URL={server.url}  (stats: {server.url[:-3]}/_stats)", flush=True)
    try:
        stopped.wait()
    finally:
        server.stop()  # removes the clips it drew
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
