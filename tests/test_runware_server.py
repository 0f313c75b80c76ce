"""The local Runware server is an imitation of the provider, not of the client: it imports
nothing of the client, and answers in each shape the protocol records."""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.testing.runware_server import RunwareServer
from tests.conftest import REPO
from tests.runware_support import KEY

TESTING = REPO / "pipeline" / "testing"
HEADERS = {"Authorization": f"Bearer {KEY}"}


def test_the_server_imports_nothing_of_the_client() -> None:
    for path in sorted(TESTING.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name == "pipeline" or name.startswith("pipeline."):
                    assert name.startswith("pipeline.testing"), f"{path.name} imports {name}"
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pipeline.testing.runware_server, pipeline.testing.kill_race; "
            "print(' '.join(m for m in sys.modules if m.split('.')[0] == 'pipeline'))",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set(loaded.stdout.split())
    assert modules and all(m == "pipeline" or m.startswith("pipeline.testing") for m in modules)


@pytest.fixture
def runware(clip_dir: Path) -> Iterator[RunwareServer]:
    server = RunwareServer(latency=0.0, api_keys={KEY}, clip_dir=clip_dir)
    yield server
    server.stop()


def post(server: RunwareServer, *tasks: dict) -> tuple[int, dict]:
    reply = server.respond("POST", "/v1", HEADERS, json.dumps(list(tasks)).encode())
    return reply.status, json.loads(reply.body)


def submit(server: RunwareServer, **extra: object) -> str:
    task_uuid = str(uuid.uuid4())
    task = {
        "taskType": "videoInference",
        "taskUUID": task_uuid,
        "model": "minimax:4@1",
        "positivePrompt": "a quiet harbour",
        "width": 1366,
        "height": 768,
        "duration": 6,
        "fps": 25,
        "deliveryMethod": "async",
        "includeCost": True,
        **extra,
    }
    status, body = post(server, task)
    assert status == 200, body
    return task_uuid


def poll(server: RunwareServer, task_uuid: str) -> dict:
    return post(server, {"taskType": "getResponse", "taskUUID": task_uuid})[1]


def test_results_in_each_dialect(runware: RunwareServer) -> None:
    done = poll(runware, submit(runware))["data"][0]
    assert done["status"] == "success" and done["cost"] == 0.28 and done["videoURL"]
    runware.set_faults(dialect="docs")
    done = poll(runware, submit(runware))["data"][0]
    assert "status" not in done and done["videoURL"].endswith(".mp4")


@pytest.mark.parametrize(
    ("shapes", "where"),
    [
        ({"failure_shape": "errors"}, "errors"),
        ({"failure_shape": "data_flat"}, "data"),
        ({"failure_shape": "data_nested"}, "data"),
        ({"failure_shape": "errors", "error_task_uuid": False}, "errors"),
    ],
)
def test_failures_in_each_shape(runware: RunwareServer, shapes: dict, where: str) -> None:
    runware.set_faults(content_policy=1, **shapes)
    task_uuid = submit(runware)
    item = poll(runware, task_uuid)[where][0]
    assert item["status"] == "error"
    if shapes["failure_shape"] == "data_nested":
        assert item["error"]["code"] == "providerContentPolicyViolation" and "code" not in item
    else:
        assert item["code"] == "providerContentPolicyViolation"
    assert ("taskUUID" in item) == shapes.get("error_task_uuid", True) or where == "data"
    assert runware.stats()["billed_cost"] == 0  # a failed render is not billed


def test_uploads_as_a_list_or_one_object(runware: RunwareServer) -> None:
    image = (REPO / "specs" / "assets" / "luthier.jpg").read_bytes()
    task = {
        "taskType": "imageUpload",
        "taskUUID": str(uuid.uuid4()),
        "image": "data:image/jpeg;base64," + base64.b64encode(image).decode(),
    }
    assert isinstance(post(runware, task)[1]["data"], list)
    runware.set_faults(upload_shape="object")
    answer = post(runware, {**task, "taskUUID": str(uuid.uuid4())})[1]["data"]
    assert isinstance(answer, dict) and answer["imageUUID"]


def test_billing_is_counted_per_request(runware: RunwareServer) -> None:
    submit(runware)
    submit(runware)  # the same request again, under a new taskUUID: billed twice
    submit(runware, positivePrompt="another harbour")
    stats = runware.stats()
    assert sorted(stats["billed_per_request"].values()) == [1, 2]
    assert stats["billed_cost"] == pytest.approx(0.84)
