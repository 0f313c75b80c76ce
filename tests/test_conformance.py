"""Every request storyboard can send, held against an oracle nobody here wrote: Runware's own
SDK (`runware-sdk`), whose `runware.types.task_map` holds one `...Params` TypedDict per
model, generated from Runware's published schemas. Each top-level key of each request must
be one its model's Params lists, each value of a `Literal` field one of its values, each
field the Params requires present. Nothing of the SDK runs: only its types are read."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from runware.types import task_map  # the test extra's oracle: a missing SDK fails, never skips

from pipeline import models
from pipeline.expand import expand
from pipeline.nodes import Node
from pipeline.spec import loads

ASSETS = Path(__file__).resolve().parent.parent / "specs" / "assets"
TASK_UUID = "3f0c8a52-6d0e-4b8e-9a55-0d1c7c0f4a11"


def _params_by_model() -> dict[str, type]:
    """The SDK's Params TypedDict of each model AIR (each names its model in its docstring)."""
    found: dict[str, type] = {}
    for name in dir(task_map):
        value = getattr(task_map, name)
        if not (name.endswith("Params") and isinstance(value, type)):
            continue
        named = re.search(r"curated model `([^`]+)`", value.__doc__ or "")
        if named:
            found[named.group(1)] = value
    return found


PARAMS = _params_by_model()


def _unwrapped(annotation: Any) -> tuple[Any, bool]:
    """The annotation inside NotRequired/Required, and whether the field is required."""
    origin = typing.get_origin(annotation)
    if origin is typing.NotRequired:
        return typing.get_args(annotation)[0], False
    if origin is typing.Required:
        return typing.get_args(annotation)[0], True
    return annotation, True


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether `value` is of the (JSON) type `annotation` says."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arm, value) for arm in typing.get_args(annotation))
    if origin is not None:
        annotation = origin
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is typing.Any or annotation is object:
        return True
    return isinstance(value, annotation)


def problems(request: dict[str, Any]) -> list[str]:
    """What the SDK's Params of the request's model says is wrong with it."""
    params = PARAMS.get(request["model"])
    if params is None:
        return [f"runware-sdk has no Params for {request['model']}"]
    hints = typing.get_type_hints(params, include_extras=True)
    found = []
    for name, value in request.items():
        if name not in hints:
            found.append(f"{request['model']}: {name} is not a field of {params.__name__}")
            continue
        annotation, _ = _unwrapped(hints[name])
        if not _accepts(annotation, value):
            found.append(f"{request['model']}: {name}={value!r} is not {annotation}")
    for name, hint in hints.items():
        if _unwrapped(hint)[1] and name not in request:
            found.append(f"{request['model']}: {params.__name__} requires {name}")
    return found


def _video_shots(air: str, info: models.ModelInfo) -> list[str]:
    """Storyboard shots that make every kind of request a video model can be sent: text to
    video, from a first (and last) frame, with sound, prompt rewriting on."""
    (width, height), prices = next(iter(info.prices.items()))
    duration = min(prices)
    base = f"model: '{air}', duration: {duration}, width: {width}, height: {height}, price: 1"
    shots = []
    if info.text_to_video:
        sized = f"model: '{air}', duration: {duration}, width: {width}, height: {height}"
        shots.append(f"{{id: t2v, prompt: a lighthouse at dusk, {sized}, price: 1}}")
    if info.image_to_video:
        last = ", last_frame: assets/raincoat.jpg" if "last" in info.frame_positions else ""
        shots.append(
            f"{{id: i2v, prompt: the keeper climbs, first_frame: assets/luthier.jpg{last}, {base}}}"
        )
    if info.audio == "optional":
        shots.append(
            f"{{id: sound, prompt: waves, audio: true, model: '{air}', duration: {duration}, "
            f"width: {width}, height: {height}, price: 1}}"
        )
    if info.rewrite_setting and info.text_to_video:
        shots.append(
            f"{{id: rewrite, prompt: a storm, prompt_optimizer: true, model: '{air}', "
            f"duration: {duration}, width: {width}, height: {height}, price: 1}}"
        )
    if info.accepts_seed and info.text_to_video:
        shots.append(
            f"{{id: seeded, prompt: a storm, seed: 7, model: '{air}', duration: {duration}, "
            f"width: {width}, height: {height}, price: 1}}"
        )
    return shots


def _image_stills(air: str, info: models.ModelInfo) -> list[str]:
    if info.size_rule is not None:
        width = height = info.size_rule.largest // info.size_rule.multiple * info.size_rule.multiple
    else:
        width, height = next(iter(info.prices))
    seed = ", seed: 3" if info.accepts_seed else ""
    return [
        f"{{id: key_art, prompt: a lighthouse, model: '{air}', width: {width}, "
        f"height: {height}{seed}}}"
    ]


SOUND = """\
voices:
  - {id: plain, text: Good morning., voice: English_expressive_narrator}
  - id: shaped
    text: Every morning starts here.
    voice: English_expressive_narrator
    speed: 1.2
    volume: 2
    pitch: -3
    emotion: whisper
music:
  - {id: bed, prompt: warm acoustic guitar}
  - {id: seeded, prompt: warm acoustic guitar, seed: 42}
  - {id: sung, prompt: a folk song, lyrics: "[verse] morning comes"}
  - {id: written, prompt: a folk song, instrumental: false}
"""
FINISHED = """\
  - {id: hero, prompt: steam rises, upscale: 1080p}
  - {id: barista, prompt: a barista speaks, lipsync: {voice: plain}}
sequences:
  - {id: spot, shots: [hero, barista], voice: {voice: shaped}, audio: {music: bed}}
  - {id: sung, shots: [hero], audio: {music: sung}}
  - {id: seeded, shots: [hero], audio: {music: seeded}}
  - {id: written, shots: [hero], audio: {music: written}}
"""


def every_request(tmp_path: Path) -> list[Node]:
    """The renders of storyboards that make every kind of request the catalogue allows."""
    catalogue = models.catalogue()
    shots = [line for air, info in catalogue.models.items() if not info.is_image
             for line in _video_shots(air, info)]  # fmt: skip
    stills = [line for air, info in catalogue.models.items() if info.is_image
              for line in _image_stills(air, info)]  # fmt: skip
    renders: list[Node] = []
    for index, shot in enumerate(shots):
        text = f"version: 1\nname: v{index}\nshots:\n  - {shot}\n"
        renders += expand(loads(text, ASSETS.parent / f"v{index}.yaml"), "runware").shots
    for index, still in enumerate(stills):
        text = (
            f"version: 1\nname: s{index}\nstills:\n  - {still}\n"
            "shots:\n  - {id: from_still, prompt: the light turns, first_frame: {still: key_art}}\n"
        )
        renders += expand(loads(text, ASSETS.parent / f"s{index}.yaml"), "runware").shots
    text = f"version: 1\nname: sound\n{SOUND}shots:\n{FINISHED}"
    renders += expand(loads(text, ASSETS.parent / "sound.yaml"), "runware").shots
    return renders


def test_every_request_is_what_runwares_own_sdk_types_allow(tmp_path: Path) -> None:
    renders = every_request(tmp_path)
    kinds = {(r.model, r.kind) for r in renders}
    every_air = set(models.catalogue().models) | set(models.catalogue().tools)
    assert {air for air, _ in kinds} == every_air  # every model the catalogue knows
    found = [p for r in renders for p in problems({**r.request, "taskUUID": TASK_UUID})]
    assert found == []
    requests = {r.label: r.request for r in renders}
    assert requests["shaped"]["speech"] == {
        "text": "Every morning starts here.",
        "voice": "English_expressive_narrator",
        "speed": 1.2,
        "volume": 2,
        "pitch": -3,
        "emotion": "whisper",
    }
    assert "settings" not in requests["shaped"]
    assert requests["sung"]["settings"] == {
        "instrumental": False,
        "lyrics": "[verse] morning comes",
    }
    assert requests["written"]["settings"] == {"instrumental": False, "lyricsOptimizer": True}
    assert requests["seeded"]["seed"] == 42
    assert requests["hero/upscale"]["inputs"].keys() == {"video"}


@pytest.mark.parametrize(
    ("request_fields", "wrong"),
    [
        ({"settings": {"speed": 1.2}}, None),  # nested: the SDK types say dict; the server checks
        ({"targetResolution": "1080p"}, "targetResolution is not a field"),
        ({"fps": 30}, "fps=30 is not"),
        ({"seed": 3}, "seed is not a field"),
    ],
)
def test_the_oracle_catches_a_wrong_request(request_fields: dict, wrong: str | None) -> None:
    """The check itself fails on what it must catch (a check that cannot fail proves nothing)."""
    request = {
        "taskType": "videoInference",
        "taskUUID": TASK_UUID,
        "model": "minimax:4@1",
        "positivePrompt": "a lighthouse",
        "width": 1366,
        "height": 768,
        "duration": 6,
        "fps": 25,
        **request_fields,
    }
    found = problems(request)
    if wrong is None:
        assert found == [
            f"minimax:4@1: settings is not a field of {PARAMS['minimax:4@1'].__name__}"
        ]
    else:
        assert any(wrong in p for p in found), found
