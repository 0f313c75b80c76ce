"""A local Runware-compatible server: the real protocol over HTTP on loopback, real MP4s.

    python -m pipeline.testing.runware_server [--port N] [--latency SECONDS] [--api-key KEY]

It speaks `videoInference` (async delivery), `getResponse`, `imageUpload` and `ping` with the
field names and envelopes of the real API (see shared/runware-protocol.md), validates requests
as the real API does for MiniMax Hailuo 2.3, bills the price table, and serves clips drawn by
the preview renderer at `videoURL`. Faults can be injected (POST /_faults, or --fault NAME=N)
and its counters read as JSON at GET /_stats. Tests and benchmarks drive the real client
against it; a person can use it to try a storyboard end to end offline:

    RUNWARE_BASE_URL=http://127.0.0.1:8765/v1 RUNWARE_API_KEY=local storyboard build spec.yaml
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import random
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.models import CATALOGUE, PROMPT_LIMIT
from pipeline.render.preview import Card, draw

UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
VIDEO_FIELDS = {
    "taskType", "taskUUID", "model", "positivePrompt", "width", "height", "duration", "fps",
    "inputs", "providerSettings", "webhookURL", "includeCost", "numberResults",
    "uploadEndpoint", "ttl", "outputType", "outputFormat", "outputQuality", "deliveryMethod",
    "safety",
}  # fmt: skip
FAULTS = (
    "http_500", "http_429", "drop_submit", "drop_poll", "error_envelope", "task_error",
    "truncate", "corrupt", "never_finish",
)  # fmt: skip


class Rejection(Exception):
    """A task the API refuses: one error object, and the HTTP status it comes with."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error = {"code": code, "message": message, **extra}


@dataclass
class Faults:
    """How many of the coming requests (or tasks, or downloads) to spoil, per kind."""

    http_500: int = 0  # answer POSTs with a bare 500
    http_429: int = 0  # answer POSTs with 429 and Retry-After
    retry_after: float = 1.0
    drop_submit: int = 0  # accept a videoInference, then drop the connection: the answer is lost
    drop_poll: int = 0  # drop a getResponse connection without answering
    error_envelope: int = 0  # refuse submits with a content-policy error envelope
    task_error: int = 0  # tasks that fail with timeoutProvider
    truncate: int = 0  # downloads cut short
    corrupt: int = 0  # downloads with garbage in the middle
    never_finish: int = 0  # tasks that stay `processing` forever

    def take(self, name: str) -> bool:
        """Spend one fault of this kind, if any is left."""
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False


@dataclass
class Task:
    uuid: str
    request: dict[str, Any]
    fingerprint: str
    submitted: float
    ready_at: float
    fate: str  # "success", "error" or "never"
    status: str = "processing"
    video_uuid: str = ""
    seed: int = 0
    cost: float = 0.0
    polls: int = 0


@dataclass
class State:
    """Everything the server knows; one lock guards it all."""

    clip_dir: Path
    latency: float = 2.0
    price_factor: float = 1.0  # bill more (or less) than the price table, as a price change would
    api_keys: set[str] = field(default_factory=set)
    faults: Faults = field(default_factory=Faults)
    tasks: dict[str, Task] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    videos: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.reset_counters()

    def reset_counters(self) -> None:
        self.counted_from = time.monotonic()
        self.counters = {
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

    def served(self, fault: str) -> None:
        served = self.counters["faults_served"]
        served[fault] = served.get(fault, 0) + 1


class RunwareServer:
    """The server, in a background thread; a context manager for tests."""

    def __init__(
        self,
        port: int = 0,
        latency: float = 2.0,
        api_keys: set[str] | None = None,
        clip_dir: Path | None = None,
    ) -> None:
        self._own_dir = clip_dir is None
        folder = clip_dir or Path(tempfile.mkdtemp(prefix="runware-server-"))
        self.state = State(folder, latency=latency, api_keys=set(api_keys or ()))
        self._renders: dict[tuple[int, int, int], Future[Path]] = {}
        self._painter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paint")
        handler = type("BoundHandler", (Handler,), {"server_state": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> RunwareServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._painter.shutdown(wait=True)
        if self._own_dir:
            shutil.rmtree(self.state.clip_dir, ignore_errors=True)

    def __enter__(self) -> RunwareServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def set_faults(self, **counts: float) -> None:
        with self.state.lock:
            for name, value in counts.items():
                if not hasattr(self.state.faults, name):
                    raise ValueError(f"unknown fault '{name}'; faults: {', '.join(FAULTS)}")
                setattr(self.state.faults, name, value)

    def stats(self) -> dict[str, Any]:
        with self.state.lock:
            self._advance()
            return self._stats()

    # -- protocol ---------------------------------------------------------------------------

    def handle_tasks(self, tasks: list[Any]) -> tuple[int, dict[str, Any]]:
        """Answer a request's tasks: `data` for results, `errors` for refusals and failures."""
        data: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        statuses: list[int] = []
        with self.state.lock:
            self._advance()
            for task in tasks:
                try:
                    data.extend(self._one(task))
                except Rejection as rejection:
                    errors.append(rejection.error)
                    statuses.append(rejection.status)
                    self.state.counters["rejected"] += 1
                except PendingErrors as pending:
                    errors.extend(pending.errors)
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
        if errors:
            body["errors"] = errors
        status = 200 if data or not errors else max(statuses, default=400)
        return status, body

    def _one(self, task: Any) -> list[dict[str, Any]]:
        if not isinstance(task, dict):
            raise Rejection(400, "invalidTask", "each task must be an object")
        kind = task.get("taskType")
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str) or not UUID_PATTERN.match(task_uuid):
            raise Rejection(
                400, "invalidTaskUUID", "taskUUID must be a UUID v4", parameter="taskUUID"
            )
        if kind == "videoInference":
            return [self._submit(task)]
        if kind == "getResponse":
            return self._poll(task_uuid)
        if kind == "imageUpload":
            return [self._upload(task)]
        if kind == "ping":
            return [{"taskType": "ping", "pong": True}]
        raise Rejection(400, "invalidTaskType", f"unknown taskType {kind!r}", parameter="taskType")

    def _submit(self, request: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        state.counters["submits"] += 1
        task_uuid = request["taskUUID"]
        if task_uuid in state.tasks:
            state.counters["conflicts"] += 1
            raise Rejection(
                400,
                "conflictTaskUUID",
                "A task with this taskUUID already exists",
                parameter="taskUUID",
                taskUUID=task_uuid,
            )
        price = self._validate(request)
        if state.faults.take("error_envelope"):
            state.served("error_envelope")
            raise Rejection(
                400,
                "providerContentPolicyViolation",
                "The provider refused the prompt under its content policy",
                parameter="positivePrompt",
                taskUUID=task_uuid,
            )
        fate = "success"
        if state.faults.take("task_error"):
            fate = "error"
            state.served("task_error")
        elif state.faults.take("never_finish"):
            fate = "never"
            state.served("never_finish")
        now = time.monotonic()
        shown = {k: v for k, v in request.items() if k != "taskUUID"}
        fingerprint = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()
        state.tasks[task_uuid] = Task(
            uuid=task_uuid,
            request=request,
            fingerprint=fingerprint,
            submitted=now,
            ready_at=now + state.latency,
            fate=fate,
            cost=round(price * state.price_factor, 4),
        )
        state.counters["accepted"] += 1
        running = sum(1 for t in state.tasks.values() if t.status == "processing")
        state.counters["max_concurrency"] = max(state.counters["max_concurrency"], running)
        self._paint(request["width"], request["height"], request["duration"])
        return {"taskType": "videoInference", "taskUUID": task_uuid}

    def _validate(self, request: dict[str, Any]) -> float:
        """The checks the real API makes for Hailuo 2.3; the price of the clip."""
        unknown = sorted(set(request) - VIDEO_FIELDS)
        if unknown:
            raise Rejection(
                400, "unknownParameter", f"unknown parameter '{unknown[0]}'", parameter=unknown[0]
            )
        model = CATALOGUE.get(str(request.get("model")))
        if model is None:
            raise Rejection(400, "invalidModel", "unknown model AIR", parameter="model")
        for name in ("width", "height", "duration"):
            if not isinstance(request.get(name), int):
                raise Rejection(400, "missingParameter", f"'{name}' is required", parameter=name)
        size = (request["width"], request["height"])
        if size not in model.prices:
            allowed = [f"{w}x{h}" for w, h in model.prices]
            raise Rejection(
                400,
                "unsupportedDimensions",
                "width and height are not a supported pair",
                parameter=["width", "height"],
                allowedValues=allowed,
            )
        price = model.price(size[0], size[1], request["duration"])
        if price is None:
            raise Rejection(
                400,
                "unsupportedDuration",
                "duration is not supported at this size",
                parameter="duration",
                allowedValues=sorted(model.prices[size]),
            )
        if request.get("fps", 25) not in model.fps:
            raise Rejection(400, "invalidParameter", "fps must be 25", parameter="fps")
        if request.get("deliveryMethod") != "async":
            raise Rejection(
                400, "invalidParameter", "deliveryMethod must be async", parameter="deliveryMethod"
            )
        frames = (request.get("inputs") or {}).get("frameImages") or []
        for frame in frames:
            image = frame.get("image") if isinstance(frame, dict) else None
            if not isinstance(image, str) or not self._image_known(image):
                raise Rejection(
                    400, "invalidImage", "frame image not found", parameter="inputs.frameImages"
                )
        prompt = request.get("positivePrompt")
        if prompt is None and not frames:
            raise Rejection(
                400,
                "missingParameter",
                "positivePrompt is required without a frame image",
                parameter="positivePrompt",
            )
        if prompt is not None and not (2 <= len(str(prompt)) <= PROMPT_LIMIT):
            raise Rejection(
                400,
                "invalidParameter",
                f"positivePrompt must be 2 to {PROMPT_LIMIT} characters",
                parameter="positivePrompt",
            )
        if not model.text_to_video and not frames:
            raise Rejection(
                400,
                "missingParameter",
                "this model needs a first frame image",
                parameter="inputs.frameImages",
            )
        return price

    def _image_known(self, image: str) -> bool:
        if image.startswith(("http://", "https://", "data:image/")):
            return True
        if UUID_PATTERN.match(image):
            return image in self.state.images
        try:
            base64.b64decode(image, validate=True)
        except ValueError:
            return False
        return True

    def _poll(self, task_uuid: str) -> list[dict[str, Any]]:
        state = self.state
        state.counters["polled_tasks"] += 1
        task = state.tasks.get(task_uuid)
        if task is None:
            raise PendingErrors(
                [
                    {
                        "code": "taskFailedOrNotFound",
                        "message": "No task found with this taskUUID",
                        "taskUUID": task_uuid,
                        "parameter": "taskUUID",
                    }
                ]
            )
        task.polls += 1
        if task.status == "processing":
            elapsed = time.monotonic() - task.submitted
            progress = min(99, int(100 * elapsed / max(state.latency, 1e-6)))
            return [
                {
                    "taskType": "videoInference",
                    "taskUUID": task_uuid,
                    "status": "processing",
                    "progress": progress,
                }
            ]
        if task.status == "error":
            raise PendingErrors(
                [
                    {
                        "code": "timeoutProvider",
                        "message": "The provider did not answer in time",
                        "taskUUID": task_uuid,
                        "taskType": "videoInference",
                        "status": "error",
                    }
                ]
            )
        return [
            {
                "taskType": "videoInference",
                "taskUUID": task_uuid,
                "status": "success",
                "videoUUID": task.video_uuid,
                "videoURL": f"{self.url.rsplit('/', 1)[0]}/videos/{task.video_uuid}.mp4",
                "seed": task.seed,
                "cost": task.cost,
            }
        ]

    def _upload(self, task: dict[str, Any]) -> dict[str, Any]:
        image = task.get("image")
        if not isinstance(image, str) or not image:
            raise Rejection(400, "missingParameter", "'image' is required", parameter="image")
        payload = image.split(",", 1)[1] if image.startswith("data:") else image
        try:
            base64.b64decode(payload, validate=True)
        except ValueError:
            raise Rejection(400, "invalidImage", "image is not base64", parameter="image") from None
        image_uuid = str(uuid.uuid4())
        self.state.images[image_uuid] = hashlib.sha256(payload.encode()).hexdigest()
        self.state.counters["uploads"] += 1
        return {
            "taskType": "imageUpload",
            "taskUUID": task["taskUUID"],
            "imageUUID": image_uuid,
            "imageURL": f"{self.url.rsplit('/', 1)[0]}/images/{image_uuid}",
        }

    def _advance(self) -> None:
        """Finish the tasks whose time has come; bill the ones that succeed."""
        now = time.monotonic()
        for task in self.state.tasks.values():
            if task.status != "processing" or task.ready_at > now or task.fate == "never":
                continue
            if task.fate == "error":
                task.status = "error"
                continue
            task.status = "success"
            task.video_uuid = str(uuid.uuid4())
            task.seed = random.randrange(1, 2**31)
            request = task.request
            self.state.videos[task.video_uuid] = (
                request["width"],
                request["height"],
                request["duration"],
            )
            self.state.counters["billed_cost"] = round(
                self.state.counters["billed_cost"] + task.cost, 6
            )

    def _stats(self) -> dict[str, Any]:
        tasks = self.state.tasks.values()
        per_uuid: dict[str, int] = {}
        per_request: dict[str, int] = {}
        for task in tasks:
            per_uuid[task.uuid] = per_uuid.get(task.uuid, 0) + 1
            per_request[task.fingerprint] = per_request.get(task.fingerprint, 0) + 1
        return {
            **self.state.counters,
            "tasks": len(per_uuid),
            "tasks_per_request": sorted(per_request.values(), reverse=True),
            "polls_per_task": {t.uuid: t.polls for t in tasks},
            "delivered_cost": round(sum(t.cost for t in tasks if t.status == "success"), 6),
            "in_progress": sum(1 for t in tasks if t.status == "processing"),
            "remote_span": self._remote_span(),
            "faults_left": asdict(self.state.faults),
        }

    def _remote_span(self) -> float:
        """From the first submit to the last task done since the counters were reset."""
        recent = [t for t in self.state.tasks.values() if t.submitted >= self.state.counted_from]
        done = [t.ready_at for t in recent if t.status == "success"]
        if not recent or not done:
            return 0.0
        return round(max(done) - min(t.submitted for t in recent), 3)

    # -- clips ------------------------------------------------------------------------------

    def _paint(self, width: int, height: int, duration: int) -> None:
        """Draw one clip per size and duration, in the background, shared by every task."""
        key = (width, height, duration)
        if key not in self._renders:
            self._renders[key] = self._painter.submit(self._draw, width, height, duration)

    def _draw(self, width: int, height: int, duration: int) -> Path:
        path = self.state.clip_dir / f"clip-{width}x{height}-{duration}.mp4"
        card = Card(
            width, height, duration, 25, "local Runware server", "a simulated render", "5eed"
        )
        draw(card, path)
        return path

    def clip_bytes(self, video_uuid: str) -> bytes | None:
        with self.state.lock:
            size = self.state.videos.get(video_uuid)
            if size is None:
                return None
            self._paint(*size)
            future = self._renders[size]
        return future.result().read_bytes()


class PendingErrors(Exception):
    """Error objects that belong in the `errors` list of an otherwise normal answer."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("errors")
        self.errors = errors


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: RunwareServer

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        app = self.server_state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/_faults":
            try:
                app.set_faults(**json.loads(raw or b"{}"))
            except (ValueError, TypeError) as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(200, app.stats()["faults_left"])
            return
        if self.path == "/_reset":
            with app.state.lock:
                app.state.reset_counters()
            self._json(200, {"reset": True})
            return
        if self.path.rstrip("/") not in ("/v1", ""):
            self._json(404, {"errors": [{"code": "notFound", "message": "no such endpoint"}]})
            return
        state = app.state
        with state.lock:
            state.counters["requests"] += 1
            if not self._authorised():
                state.counters["auth_failures"] += 1
                denied = True
            else:
                denied = False
            fault = None
            if not denied:
                for name in ("http_500", "http_429"):
                    if state.faults.take(name):
                        fault = name
                        state.served(name)
                        break
            retry_after = state.faults.retry_after
        if denied:
            self._json(
                401,
                {
                    "errors": [
                        {"code": "invalidApiKey", "message": "Invalid API key", "type": "auth"}
                    ]
                },
            )
            return
        if fault == "http_500":
            self._send(500, b"Internal Server Error", "text/plain")
            return
        if fault == "http_429":
            self._json(
                429,
                {"errors": [{"code": "tooManyRequests", "message": "queue full"}]},
                headers={"Retry-After": f"{retry_after:g}"},
            )
            return
        try:
            tasks = json.loads(raw)
        except ValueError:
            self._json(400, {"errors": [{"code": "invalidJSON", "message": "body is not JSON"}]})
            return
        if not isinstance(tasks, list):
            self._json(400, {"errors": [{"code": "invalidJSON", "message": "body must be a list"}]})
            return
        kinds = {t.get("taskType") for t in tasks if isinstance(t, dict)}
        if "getResponse" in kinds:
            with state.lock:
                state.counters["poll_requests"] += 1
                drop = state.faults.take("drop_poll")
                if drop:
                    state.served("drop_poll")
            if drop:
                self._drop()
                return
        status, body = app.handle_tasks(tasks)
        if "videoInference" in kinds and status == 200:
            with state.lock:
                drop = state.faults.take("drop_submit")
                if drop:
                    state.served("drop_submit")
            if drop:
                self._drop()  # the task is accepted; the client never hears so
                return
        self._json(status, body)

    def do_GET(self) -> None:
        app = self.server_state
        if self.path == "/_stats":
            self._json(200, app.stats())
            return
        match = re.fullmatch(r"/videos/([0-9a-f-]{36})\.mp4", self.path)
        data = app.clip_bytes(match.group(1)) if match else None
        if data is None:
            self._send(404, b"not found", "text/plain")
            return
        with app.state.lock:
            app.state.counters["downloads"] += 1
            truncate = app.state.faults.take("truncate")
            corrupt = not truncate and app.state.faults.take("corrupt")
            if truncate:
                app.state.served("truncate")
            if corrupt:
                app.state.served("corrupt")
        if corrupt:
            middle = len(data) // 2
            data = (
                data[:middle]
                + bytes(random.randrange(256) for _ in range(4096))
                + data[middle + 4096 :]
            )
        if truncate:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._drop()
            return
        self._send(200, data, "video/mp4")

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        key = header[len("Bearer ") :].strip()
        keys = self.server_state.state.api_keys
        return bool(key) and (not keys or key in keys)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(
        self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


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
        "--fault",
        action="append",
        default=[],
        metavar="NAME=N",
        help=f"inject faults: {', '.join(FAULTS)}",
    )
    args = parser.parse_args(argv)
    server = RunwareServer(args.port, args.latency, set(args.api_key))
    for item in args.fault:
        name, _, count = item.partition("=")
        server.set_faults(**{name: float(count) if name == "retry_after" else int(count or 1)})
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
