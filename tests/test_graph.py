"""Shots that start from other renders' frames, stills, and the catalogue of models: the real
client and CLI against the local Runware server, whose model table is its own."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline import media, models
from pipeline.cache import Cache
from pipeline.expand import expand
from pipeline.spec import load
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import write
from tests.runware_support import KEY, assert_money_safe, local_runware, make_image

CHAIN = """version: 1
name: chain
shots:
  - id: a
    prompt: {a}
  - id: b
    prompt: the keeper climbs the spiral stair
    first_frame: {{shot: a, frame: last}}
  - id: c
    prompt: {c}
    first_frame: {{shot: b}}
sequences:
  - {{id: film, shots: [a, b, c], preset: ultrafast}}
"""


@pytest.fixture
def server(
    project: Path, monkeypatch: pytest.MonkeyPatch, clip_dir: Path
) -> Iterator[RunwareServer]:
    with local_runware(monkeypatch, clip_dir, latency=0.2, poll=0.1) as running:
        yield running


def built(cli, spec: Path, *args: str) -> dict:
    result = cli("build", spec, "--json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def rendered(summary: dict) -> list[str]:
    return sorted(s["shot"] for s in summary["shots"] if s["status"] == "rendered")


def frames_of(cache: Cache, key: str, wanted: tuple[int, ...]) -> list[np.ndarray]:
    """The frames at these indexes (negative from the end) of a cached clip, as pixels."""
    with av.open(str(cache.root / cache.clips.get(key).path)) as container:
        frames = list(container.decode(video=0))
    return [frames[i].to_ndarray(format="rgb24").astype(np.int16) for i in wanted]


def far_pixels(one: np.ndarray, other: np.ndarray) -> float:
    """The share of pixels that differ by more than compression does."""
    return float((np.abs(one - other).max(axis=2) > 40).mean())


def test_a_chain_renders_what_an_edit_reaches_and_starts_where_the_last_ended(
    project: Path, cli, server: RunwareServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def decoded_again(*_: object) -> None:
        raise AssertionError("a frame was taken by decoding its clip a second time")

    # Each clip's last frame is taken while the clip is checked: decoded once.
    monkeypatch.setattr(media, "extract_frame", decoded_again)
    spec = project / "specs" / "chain.yaml"
    write(spec, CHAIN.format(a="a lighthouse at dusk", c="the lamp turns on"))
    plan = json.loads(cli("plan", spec, "--json").out)
    assert [r["key_known"] for r in plan["shots"]] == [True, False, False]
    assert plan["shots"][2]["after"][0]["shot"] == "b"
    assert plan["totals"]["cost_needed"] == pytest.approx(3 * 0.28)  # the upper bound, once
    # --only takes what it starts from, however far up.
    assert rendered(built(cli, spec, "--only", "c")) == ["a", "b", "c"]
    assert server.stats()["submits"] == 3
    cache = Cache(project / ".storyboard")
    lock = json.loads((project / "specs" / "chain.lock").read_text())
    key = {entry["shot"]: k for k, entry in lock["shots"].items()}
    (a_first, a_before_last, a_last), (b_first,) = (
        frames_of(cache, key["a"], (0, -2, -1)),
        frames_of(cache, key["b"], (0,)),
    )
    assert far_pixels(a_last, b_first) < 0.001  # B starts on A's last frame...
    assert far_pixels(a_before_last, b_first) > 0.001  # ...not on the one before it
    assert far_pixels(a_first, b_first) > 0.01
    assert built(cli, spec)["sequences"][0]["status"] == "current"  # joined by the --only build
    assert server.stats()["submits"] == 3

    write(spec, CHAIN.format(a="a lighthouse at dusk", c="the lamp flickers on"))
    assert rendered(built(cli, spec)) == ["c"]
    assert server.stats()["submits"] == 4
    write(spec, CHAIN.format(a="a lighthouse at dawn", c="the lamp flickers on"))
    status = cli("status", spec).out
    assert re.search(r"b\b.*waits", status) and re.search(r"c\b.*waits", status), status
    assert rendered(built(cli, spec)) == ["a", "b", "c"]
    assert server.stats()["submits"] == 7
    assert_money_safe(server, cache)
    # gc keeps a dependent clip by the key its upstream frame gives it, lock or no lock.
    (project / "specs" / "chain.lock").unlink()
    current = {r["key"] for r in json.loads(cli("plan", spec, "--json").out)["shots"]}
    unused = {r["key"] for r in json.loads(cli("gc", "--json").out)["unused"]}
    assert len(unused) == 4 and not unused & current  # the first a, b and the two old c


STILL = """version: 1
name: keyed
stills:
  - id: key_art
    prompt: a red sneaker on a white plinth, studio light
    width: 1024
    height: 576
shots:
  - id: spin
    prompt: the sneaker turns slowly on the plinth
    first_frame: {still: key_art}
sequences:
  - {id: ad, shots: [spin], preset: ultrafast}
"""


def test_a_still_then_a_shot_costs_and_shows_both(project: Path, cli, server) -> None:
    spec = write(project / "specs" / "keyed.yaml", STILL)
    refused = cli("build", spec, "--max-cost", "0.30")
    assert refused.code == 2 and "about $0.32, over the budget of $0.30" in refused.err
    assert server.stats()["submits"] == 0
    summary = built(cli, spec, "--max-cost", "0.32")
    assert rendered(summary) == ["key_art", "spin"]
    assert summary["spent"] == pytest.approx(0.32)
    stats = assert_money_safe(server, Cache(project / ".storyboard"))
    assert stats["billed_cost"] == pytest.approx(0.32)
    lock = json.loads((project / "specs" / "keyed.lock").read_text())
    still = next(e for e in lock["shots"].values() if e["shot"] == "key_art")
    assert still["request"]["taskType"] == "imageInference" and still["image_uuid"]
    assert still["cost"] == pytest.approx(0.04)
    page = Path(cli("review", spec).out.strip()).read_text()
    start = page.index('alt="key_art take 1"')
    art = page[start : page.index("</article>", start)]
    assert "<span>still</span>" in art and "$0.04" in art
    assert "spent <b>$0.32" in page
    assert "from key_art" in page


def test_a_failed_still_fails_its_shots_without_a_submit(project: Path, cli, server) -> None:
    spec = write(project / "specs" / "keyed.yaml", STILL)
    server.set_faults(content_policy=1)
    result = cli("build", spec, "--json")
    assert result.code == 1
    summary = json.loads(result.out)
    outcome = {s["shot"]: s for s in summary["shots"]}
    assert outcome["key_art"]["status"] == "failed"
    assert outcome["spin"]["status"] == "failed"
    assert "starts from key_art, whose render failed" in outcome["spin"]["error"]
    assert server.stats()["submits"] == 1  # the still's: nothing for the shot


BAD = {
    "a cycle": (
        "  - {id: a, prompt: one two, first_frame: {shot: b}}\n"
        "  - {id: b, prompt: three four, first_frame: {shot: a, frame: first}}\n",
        "shots wait on each other's frames: a -> b -> a",
    ),
    "a field the model does not take": (
        "  - {id: a, prompt: one two, model: 'klingai:kling-video@3-pro', seed: 3,\n"
        "     width: 1920, height: 1080, duration: 5}\n",
        "klingai:kling-video@3-pro (Kling 3.0 Pro) takes no seed",
    ),
    "an unknown still": (
        "  - {id: a, prompt: one two, first_frame: {still: poster}}\n",
        "shot 'a' starts from unknown still 'poster'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_graph_or_field_is_one_located_error(project: Path, cli, case: str) -> None:
    shots, message = BAD[case]
    spec = write(project / "specs" / "bad.yaml", f"version: 1\nname: bad\nshots:\n{shots}")
    result = cli("plan", spec)
    assert result.code == 2
    first = result.err.splitlines()[0]
    assert re.match(rf"{re.escape(str(spec))}:\d+:\d+: ", first), first
    assert message in first
    if case == "a field the model does not take":
        hint = result.err.splitlines()[1]
        assert "it takes: duration, height, negative_prompt, prompt, width, first_frame" in hint


def _one_request(project: Path, air: str, info: models.ModelInfo) -> dict:
    """The request storyboard sends for a shot (or still) of this model at its first size."""
    if info.is_image:
        width, height = (1024, 576) if info.size_rule else next(iter(info.prices))
        seed = "seed: 5, " if info.accepts_seed else ""
        body = (
            f"stills:\n  - {{id: s, prompt: a red door, model: '{air}', {seed}"
            f"width: {width}, height: {height}}}\n"
        )
        body = "shots:\n  - {id: x, prompt: a blue door}\n" + body
    else:
        (width, height), durations = next(iter(info.prices.items()))
        extra = "first_frame: assets/f.jpg, " if not info.text_to_video else ""
        extra += "seed: 5, " if info.accepts_seed else ""
        extra += "audio: true, " if info.audio == "optional" else ""
        body = (
            f"shots:\n  - {{id: s, prompt: a red door, model: '{air}', {extra}"
            f"width: {width}, height: {height}, duration: {min(durations)}}}\n"
        )
    spec = write(project / "specs" / "one.yaml", f"version: 1\nname: one\n{body}")
    shots = expand(load(spec), "runware").shots
    return next(s for s in shots if s.shot_id == "s").request


def test_one_request_per_catalogue_model_is_accepted(project: Path) -> None:
    make_image(project / "specs" / "assets" / "f.jpg", 1366, 768)
    image = media.check_image((project / "specs" / "assets" / "f.jpg").read_bytes())
    assert image.width == 1366
    data = (
        "data:image/jpeg;base64,"
        + __import__("base64")
        .b64encode((project / "specs" / "assets" / "f.jpg").read_bytes())
        .decode()
    )
    with RunwareServer(latency=0.0, api_keys={KEY}) as server:
        for air, info in models.catalogue().models.items():
            request = _one_request(project, air, info)
            for frame in request.get("inputs", {}).get("frameImages", []):
                frame["image"] = data
            task = {**request, "taskUUID": str(uuid.uuid4())}
            answer = _post(server, [task])
            assert answer.get("data", [{}])[0].get("taskUUID") == task["taskUUID"], (air, answer)
            if info.accepts_seed:
                assert request["seed"] == 5
            # The server's own table refuses what a model does not take.
            wrong = {**task, "taskUUID": str(uuid.uuid4()), "madeUpField": 1}
            assert _post(server, [wrong])["errors"][0]["code"] == "unknownParameter"
            if "width" in request:
                odd = {**task, "taskUUID": str(uuid.uuid4()), "width": 1000, "height": 999}
                assert _post(server, [odd])["errors"][0]["code"] == "unsupportedDimensions"
        assert server.stats()["accepted"] == len(models.catalogue().models)


def _post(server: RunwareServer, tasks: list[dict]) -> dict:
    body = json.dumps(tasks).encode()
    reply = server.respond("POST", "/v1", {"Authorization": f"Bearer {KEY}"}, body)
    return json.loads(reply.body)


def test_a_vertical_kling_shot_with_sound_makes_a_vertical_film_with_sound(
    project: Path, cli, server
) -> None:
    spec = write(
        project / "specs" / "tall.yaml",
        "version: 1\nname: tall\n"
        "defaults: {model: 'klingai:kling-video@3-standard', width: 720, height: 1280,\n"
        "           duration: 3, audio: true}\n"
        "shots:\n  - {id: up, prompt: a dancer leaps}\n"
        "  - {id: down, prompt: she lands, first_frame: {shot: up}}\n"
        "sequences:\n  - {id: reel, shots: [up, down], preset: ultrafast}\n",
    )
    plan = json.loads(cli("plan", spec, "--json").out)
    assert plan["totals"]["cost_needed"] == pytest.approx(6 * 0.126, abs=0.005)  # with sound
    summary = built(cli, spec)
    assert server.stats()["billed_cost"] == pytest.approx(6 * 0.126)
    film = media.probe(Path(summary["sequences"][0]["path"]))
    assert (film.width, film.height) == (720, 1280)
    assert film.has_audio and abs(film.duration - 6.0) < 0.1
    # Kling takes a frame image or a size, never both: the frame sets the size.
    lock = json.loads((project / "specs" / "tall.lock").read_text())
    sent = {entry["shot"]: entry["request"] for entry in lock["shots"].values()}
    assert "width" not in sent["down"] and sent["up"]["width"] == 720
    # Kling 3.0's pages bar providerSettings without reference images: none is sent.
    assert "providerSettings" not in sent["down"] and "providerSettings" not in sent["up"]


def test_shots_of_one_build_take_one_frame_at_once(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.testing.media import paint

    clip = paint(tmp_path / "clip.mp4", 320, 180, 25)
    store = Cache(tmp_path / "cache").frames
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda _: store.of(clip, "ab" * 32, "last"), range(8)))
    assert len({digest for _, digest in taken}) == 1 and taken[0][0].is_file()
