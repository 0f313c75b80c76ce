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
from urllib.parse import urlsplit

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


def test_a_held_task_runs_until_it_is_released(runware: RunwareServer) -> None:
    runware.hold()
    held = submit(runware)
    assert poll(runware, held)["data"][0]["status"] == "processing"  # past its latency of 0
    assert runware.stats()["held"] == 1 and runware.stats()["billed_cost"] == 0
    runware.hold(False)
    free = submit(runware)
    assert poll(runware, free)["data"][0]["status"] == "success"
    assert poll(runware, held)["data"][0]["status"] == "processing"
    assert runware.release() == 1
    assert poll(runware, held)["data"][0]["status"] == "success"
    assert runware.stats()["held"] == 0


def test_ping_is_the_published_one(runware: RunwareServer) -> None:
    status, body = post(runware, {"taskType": "ping", "ping": True})
    assert status == 200 and body["data"] == [{"taskType": "ping", "pong": True}]
    status, body = post(runware, {"taskType": "ping", "ping": True, "taskUUID": str(uuid.uuid4())})
    assert status == 400 and body["errors"][0]["code"] == "unknownParameter"


def test_a_hidden_task_renders_and_is_billed_while_unknown(runware: RunwareServer) -> None:
    runware.set_faults(hidden=1, hidden_seconds=30)
    task_uuid = submit(runware)
    error = poll(runware, task_uuid)["errors"][0]
    assert error["code"] == "taskFailedOrNotFound"
    assert runware.stats()["billed_cost"] == pytest.approx(0.28)  # never collected, paid


def test_a_safety_refusal_comes_in_the_top_level_errors(runware: RunwareServer) -> None:
    runware.set_faults(safety_refusal=1, safety_code="promptBlocked", dialect="docs")
    body = poll(runware, submit(runware))
    assert "data" not in body and body["errors"][0]["code"] == "promptBlocked"


def test_a_task_may_be_pending_before_it_is_processing(clip_dir: Path) -> None:
    server = RunwareServer(latency=30, api_keys={KEY}, clip_dir=clip_dir, dialect="docs")
    try:
        assert poll(server, submit(server))["data"][0]["status"] == "pending"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("model", "settings", "inputs", "code"),
    [
        (
            "minimax:4@1",
            {"google": {"enhancePrompt": False}},
            None,
            "mismatchProviderSettingsProvider",
        ),
        ("minimax:4@1", {"acme": {"x": True}}, None, "unknownProviderSettingsProvider"),
        ("minimax:4@1", {"minimax": {"generateAudio": True}}, None, "unknownParameter"),
        ("klingai:kling-video@3-pro", {"klingai": {"sound": False}}, None, "missingParameter"),
        ("alibaba:wan@2.6", {"alibaba": {"promptExtend": "no"}}, None, "invalidParameter"),
        ("google:3@3", {"google": {"enhancePrompt": False, "generateAudio": True}}, None, None),
        ("alibaba:wan@2.6", {"alibaba": {"promptExtend": False, "audio": False}}, None, None),
    ],
)
def test_provider_settings_are_the_models_own(
    runware: RunwareServer, model: str, settings: dict, inputs: dict | None, code: str | None
) -> None:
    sizes = {"minimax:4@1": (1366, 768, 6), "klingai:kling-video@3-pro": (1920, 1080, 5)}
    width, height, duration = sizes.get(model, (1920, 1080, 10 if "wan" in model else 8))
    task = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": model,
        "positivePrompt": "a quiet harbour",
        "width": width,
        "height": height,
        "duration": duration,
        "deliveryMethod": "async",
        "providerSettings": settings,
    }
    if model.startswith("minimax"):
        task["fps"] = 25
    status, body = post(runware, task)
    if code is None:
        assert status == 200, body
        return
    assert status == 400 and body["errors"][0]["code"] == code, body


def test_veo_from_a_frame_renders_at_the_resolution_asked(runware: RunwareServer) -> None:
    image = (REPO / "specs" / "assets" / "luthier.jpg").read_bytes()
    uri = "data:image/jpeg;base64," + base64.b64encode(image).decode()
    frames = {"frameImages": [{"image": uri, "frame": "first"}]}
    base = {
        "taskType": "videoInference",
        "model": "google:3@3",
        "positivePrompt": "the luthier looks up",
        "duration": 4,
        "deliveryMethod": "async",
        "inputs": frames,
    }
    sizes = {}
    for resolution in (None, "1080p"):
        task = {**base, "taskUUID": str(uuid.uuid4())}
        if resolution:
            task["resolution"] = resolution
        status, body = post(runware, task)
        assert status == 200, body
        sizes[resolution] = runware.tasks[task["taskUUID"]].size
    assert sizes == {None: (1280, 720), "1080p": (1920, 1080)}
    both = {**base, "taskUUID": str(uuid.uuid4()), "resolution": "1080p", "inputs": {}}
    both |= {"width": 1920, "height": 1080}
    assert post(runware, both)[1]["errors"][0]["parameter"] == "resolution"


def _audio(runware: RunwareServer, model: str, **fields: object) -> tuple[int, dict]:
    task = {
        "taskType": "audioInference",
        "taskUUID": str(uuid.uuid4()),
        "model": model,
        "outputType": "URL",
        "outputFormat": "MP3",
        "deliveryMethod": "async",
        "includeCost": True,
        **fields,
    }
    return post(runware, task)


SPEECH = {"text": "Good morning.", "voice": "English_expressive_narrator"}

# Each rule the protocol notes give for speech and music, as a request and what the server
# answers: None for accepted, else the error code and the parameter it names.
SOUND_RULES = [
    ("minimax:speech@2.8", {"speech": SPEECH}, None),
    (
        "minimax:speech@2.8",
        {"speech": {**SPEECH, "speed": 1.5, "volume": 2, "pitch": -3, "emotion": "whisper"}},
        None,
    ),
    (
        "minimax:speech@2.8",
        {"speech": SPEECH, "settings": {"languageBoost": "auto", "turbo": True}},
        None,
    ),
    ("minimax:speech@2.8", {"speech": SPEECH, "settings": {"speed": 1.5}}, "settings.speed"),
    ("minimax:speech@2.8", {"speech": {**SPEECH, "emotion": "neutral"}}, "speech.emotion"),
    ("minimax:speech@2.8", {"speech": {**SPEECH, "mood": "calm"}}, "speech.mood"),
    ("minimax:speech@2.8", {"speech": {**SPEECH, "pitch": 1.5}}, "speech.pitch"),
    ("minimax:speech@2.8", {"speech": SPEECH, "routing": {}}, "routing"),
    (
        "minimax:speech@2.8",
        {"speech": SPEECH, "outputFormat": "WAV", "audioSettings": {"bitrate": 128}},
        "audioSettings",
    ),
    ("minimax:music@2.6", {"positivePrompt": "guitar", "settings": {"instrumental": True}}, None),
    (
        "minimax:music@2.6",
        {"positivePrompt": "a song", "settings": {"lyricsOptimizer": True}},
        None,
    ),
    (
        "minimax:music@2.6",
        {"positivePrompt": "a song", "settings": {"instrumental": False, "lyrics": "[verse] la"}},
        None,
    ),
    ("minimax:music@2.6", {"positivePrompt": "a song", "settings": {}}, "settings.lyrics"),
    (
        "minimax:music@2.6",
        {"positivePrompt": "a song", "settings": {"instrumental": True, "lyrics": "la"}},
        "settings.lyrics",
    ),
    ("minimax:music@2.6", {"positivePrompt": "guitar", "duration": 30}, "duration"),
]


@pytest.mark.parametrize(("model", "fields", "refused"), SOUND_RULES)
def test_speech_and_music_are_checked_as_runware_publishes_them(
    runware: RunwareServer, model: str, fields: dict, refused: str | None
) -> None:
    status, body = _audio(runware, model, **fields)
    if refused is None:
        assert status == 200, body
        return
    assert status == 400 and body["errors"][0]["parameter"] == refused, body
    assert runware.stats()["accepted"] == 0  # refused at submit: nothing runs, nothing billed


def _stored(runware: RunwareServer, path: Path) -> str:
    media = base64.b64encode(path.read_bytes()).decode()
    task = {"taskType": "mediaStorage", "taskUUID": str(uuid.uuid4()), "operation": "upload"}
    status, body = post(runware, {**task, "media": f"data:video/mp4;base64,{media}"})
    assert status == 200, body
    return body["data"][0]["mediaUUID"]


def _finish(runware: RunwareServer, task: dict) -> dict:
    status, body = post(runware, task)
    assert status == 200, body
    return poll(runware, task["taskUUID"])["data"][0]


def test_an_upscale_takes_no_size_and_a_lipsync_bills_the_whole_voice(
    runware: RunwareServer, tmp_path: Path
) -> None:
    from pipeline.testing.media import paint

    clip = paint(tmp_path / "clip.mp4", 640, 360, 50)  # 2 s
    video = _stored(runware, clip)
    upscale = {
        "taskType": "upscale",
        "taskUUID": str(uuid.uuid4()),
        "model": "bytedance:50@1",
        "inputs": {"video": video, "targetResolution": "1080p"},
        "deliveryMethod": "async",
    }
    status, body = post(runware, upscale)
    assert status == 400 and body["errors"][0]["parameter"] == "inputs.targetResolution"
    del upscale["inputs"]["targetResolution"]
    done = _finish(runware, {**upscale, "includeCost": True})
    assert done["cost"] == pytest.approx(2 * 0.0072)  # the service picked 1080p for 360p

    spoken = _finish(
        runware,
        {
            "taskType": "audioInference",
            "taskUUID": str(uuid.uuid4()),
            "model": "minimax:speech@2.8",
            "speech": {"text": "x" * 65, "voice": "English_expressive_narrator"},  # 5 s
            "deliveryMethod": "async",
        },
    )
    audio = tmp_path / "voice.mp3"
    audio.write_bytes(runware.respond("GET", urlsplit(spoken["audioURL"]).path, {}, b"").body)
    voice = _stored(runware, audio)
    lipsync = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": "sync:lipsync-2@1",
        "inputs": {"video": video, "audios": [{"id": "voice", "source": voice}]},
        "providerSettings": {"sync": {"syncMode": "cut_off"}},
        "deliveryMethod": "async",
        "includeCost": True,
    }
    done = _finish(runware, lipsync)
    assert done["cost"] == pytest.approx(0.044 * 5.0, abs=0.044 * 0.1)  # 5 s of voice, not 2


@pytest.mark.parametrize("dialect", ["sdk", "docs"])
def test_every_task_type_answers_in_each_dialect(
    runware: RunwareServer, tmp_path: Path, dialect: str
) -> None:
    """Clips, stills, voices, music, upscales and lip-syncs: with `status: success` as the SDKs
    expect, or none at all as the docs pages show, the output at its URL either way."""
    from pipeline.testing.media import paint

    runware.set_faults(dialect=dialect)
    video = _stored(runware, paint(tmp_path / "clip.mp4", 640, 360, 25))
    voice = _stored(runware, REPO / "specs" / "assets" / "score.m4a")
    tasks = {
        "videoURL": [
            {"taskType": "videoInference", "model": "minimax:4@1", "positivePrompt": "a harbour",
             "width": 1366, "height": 768, "duration": 6, "fps": 25},
            {"taskType": "upscale", "model": "bytedance:50@1", "inputs": {"video": video}},
            {"taskType": "videoInference", "model": "sync:lipsync-2@1",
             "inputs": {"video": video, "audios": [{"id": "v", "source": voice}]}},
        ],
        "imageURL": [
            {"taskType": "imageInference", "model": "bfl:2@1", "positivePrompt": "a harbour",
             "width": 1024, "height": 576},
        ],
        "audioURL": [
            {"taskType": "audioInference", "model": "minimax:speech@2.8", "speech": SPEECH},
            {"taskType": "audioInference", "model": "minimax:music@2.6",
             "positivePrompt": "guitar", "settings": {"instrumental": True}},
        ],
    }  # fmt: skip
    for url, kinds in tasks.items():
        for task in kinds:
            done = _finish(
                runware, {**task, "taskUUID": str(uuid.uuid4()), "deliveryMethod": "async"}
            )
            assert done[url] and ("status" in done) == (dialect == "sdk"), done
