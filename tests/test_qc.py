"""The quality check of paid takes and films (qc.py): on small real clips and sounds made
by ffmpeg (black, frozen, flashing, silent), and through a paid build against the local
Runware server, whose faults deliver a black, a frozen and a flashing take."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from pipeline import media, qc
from pipeline import spec as spec_module
from pipeline.expand import expand
from pipeline.nodes import LipSync, Output, Voice, made_as
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import a_shot, write
from tests.runware_support import assert_money_safe, build, cache_of

SIZE = "160x90"


def clip(folder: Path, name: str, source: str, frames: int = 75) -> Path:
    """A small H.264 clip at 25 fps from an ffmpeg lavfi source."""
    path = folder / f"{name}.mp4"
    encode = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    media.run_ffmpeg(["-f", "lavfi", "-i", source, "-frames:v", str(frames), *encode], name)
    return path


def flashing(every: int, area: float = 1.0) -> str:
    """Black and white by turns, `every` frames each, over the left `area` of the frame."""
    on = f"lt(mod(n,{2 * every}),{every})"
    return (
        f"color=c=black:s={SIZE}:r=25,drawbox=x=0:y=0:w=iw*{area}:h=ih:c=white:t=fill:enable='{on}'"
    )


CLIPS = {
    "good": f"testsrc2=s={SIZE}:r=25",
    "black": f"color=c=black:s={SIZE}:r=25",
    "frozen": f"testsrc2=s={SIZE}:r=25,trim=end_frame=1,loop=loop=80:size=1:start=0,setpts=N/25/TB",
    "flashing": flashing(2),  # 6 flashes a second
    "slow": flashing(8),  # 1.5 flashes a second: under the three of WCAG 2.3.1
    "corner": flashing(2, area=0.2),  # fast, but over a fifth of the screen only
    "fades": f"testsrc2=s={SIZE}:r=25,fade=in:0:12,fade=out:60:12",  # a gentle way in and out
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("qc-clips")
    return {name: clip(folder, name, source) for name, source in CLIPS.items()}


def found(path: Path, render=None) -> list[tuple[str, float, float]]:  # type: ignore[no-untyped-def]
    render = render or a_shot("k", width=160, height=90, duration=3)
    info, _ = media.check_render(path, Output.VIDEO, watch=qc.watch_for(render))
    return [(f.code.value, f.start, f.end) for f in qc.of_render(render, info)]


def test_each_broken_picture_is_found_and_a_good_one_is_not(clips: dict[str, Path]) -> None:
    assert found(clips["good"]) == []
    assert found(clips["black"]) == [("black", 0.0, 3.0)]
    assert found(clips["frozen"]) == [("frozen", 0.0, 3.0)]
    [(code, start, end)] = found(clips["flashing"])
    assert code == "flashes" and start < 0.2 and end == 3.0


def test_flashes_follow_the_three_flashes_rule(clips: dict[str, Path]) -> None:
    assert found(clips["slow"]) == []  # flashes, but not more than three in a second
    assert found(clips["corner"]) == []  # more than three, over less than a quarter
    assert found(clips["fades"]) == []  # one way in, one way out: no flash


CHECKED = """\
version: 1
name: checked
defaults: {resolution: 768p, duration: 6}
shots:
  - {id: dark, prompt: a ballroom at night}
  - {id: still, prompt: a clock on the mantel}
  - {id: pair, prompt: a glove on the keys, takes: 2}
  - {id: fine, prompt: the sea at dawn}
sequences:
  - {id: film, shots: [still, pair, fine], preset: ultrafast}
"""


def test_a_paid_build_flags_broken_takes_by_shot(project: Path, cli, server: RunwareServer) -> None:
    spec = write(project / "specs" / "checked.yaml", CHECKED)
    # One render at a time: the server's faults go to the first tasks, in the order written.
    server.set_faults(black_clip=1, frozen_clip=1, flashing_clip=1)
    result, summary = build(cli, spec, "-j", "1")
    assert result.code == 0, result.err
    said = [line for line in result.err.splitlines() if "qc:" in line]
    assert any("qc: dark: black from 0.00 to 6.00 s" in line for line in said), said
    assert any("qc: still: frozen picture from 0.00 to 6.00 s" in line for line in said), said
    assert any("qc: pair take 1: flashes" in line for line in said), said
    assert not any("fine" in line or "pair take 2" in line for line in said), said
    by_shot = {(s["shot"], s["take"]): s["qc"] for s in summary["shots"]}
    assert [f["code"] for f in by_shot["dark", 1]] == ["black"]
    assert by_shot["fine", 1] == [] and by_shot["pair", 2] == []

    status = json.loads(cli("status", spec, "--json").out)
    codes = {(r["name"], r["take"]): [f["code"] for f in r["qc"] or []] for r in status}
    assert codes["dark", 1] == ["black"] and codes["still", 1] == ["frozen"]
    assert codes["pair", 1] == ["flashes"] and codes["pair", 2] == [] and codes["fine", 1] == []
    # The film uses the take with no finding: take 2 of `pair` (no one picked one).
    plan = json.loads(cli("plan", spec, "--json").out)
    pair = {row["take"]: row["key"] for row in plan["shots"] if row["shot"] == "pair"}
    [film] = plan["sequences"]
    assert pair[2] in film["shots"] and pair[1] not in film["shots"]
    [joined] = [r for r in status if r["kind"] == "sequence"]
    assert [f["code"] for f in joined["qc"]] == ["frozen"]  # the film holds `still`

    page = asyncio.run(review_page(spec))
    badges = re.findall(r'data-take="(\d)".*?<span class="badge qc"[^>]*>(\w+)', page, re.S)
    assert ("1", "black") in badges and ("1", "frozen") in badges, badges
    [pair] = [group for group in page.split('<section class="group"') if "Pick pair take" in group]
    # The take with a finding is shown after the clean one; the clean one is picked.
    assert pair.index('data-take="2"') < pair.index('data-take="1"')
    assert 'aria-label="Pick pair take 2">Picked' in pair

    strict = cli("build", spec, "--qc", "strict")
    assert strict.code == 1
    assert "--qc strict: still: frozen picture" in strict.err
    assert "--qc strict: film film: frozen picture" in strict.err
    assert "dark" in strict.err and "pair take 1" not in strict.err
    assert assert_money_safe(server, cache_of(project), takes=2)["accepted"] == 5


async def review_page(spec: Path) -> str:
    """The review app's page, through httpx's ASGI transport."""
    import httpx

    from pipeline.api import Session
    from pipeline.review_app import make_app, refresh

    app = make_app(Session(spec), "127.0.0.1", 8765)
    refresh(app.state.served)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as client:
        page = await client.get("/")
    assert page.status_code == 200
    return page.text


def sound(folder: Path, name: str, source: str) -> Path:
    """A small AAC sound from an ffmpeg lavfi source graph."""
    path = folder / f"{name}.m4a"
    media.run_ffmpeg(["-f", "lavfi", "-i", source, "-c:a", "aac", str(path)], f"make {name}")
    return path


TONE = "sine=frequency=300:sample_rate=24000:duration={}"
HUSH = "anullsrc=r=24000:cl=mono,atrim=duration={}"


def test_silence_where_a_voice_should_be(tmp_path: Path) -> None:
    voice = made_as(Voice, a_shot("v"))
    spoken = sound(tmp_path, "spoken", TONE.format(4))
    mute = sound(tmp_path, "mute", HUSH.format(4))
    pause = sound(
        tmp_path, "pause", f"{TONE.format(1)}[a];{HUSH.format(2.5)}[b];[a][b]concat=v=0:a=1"
    )

    def silences(path: Path) -> list[tuple[float, float]]:
        info, _ = media.check_render(path, Output.AUDIO, watch=qc.watch_for(voice))
        return [(f.start, round(f.end, 1)) for f in qc.of_render(voice, info)]

    assert silences(spoken) == []
    assert silences(mute) == [(0.0, 4.0)]  # nothing audible: silent all along
    [(start, end)] = silences(pause)
    assert start == pytest.approx(1.0, abs=0.05) and end == 3.5


def test_a_lip_synced_clip_must_speak(clips: dict[str, Path], tmp_path: Path) -> None:
    lipsync = made_as(LipSync, a_shot("l", width=160, height=90, duration=3), speaks="v")
    video = clips["good"]

    def with_sound(source: str, name: str) -> Path:
        path = tmp_path / f"{name}.mp4"
        inputs = ["-i", str(video), "-f", "lavfi", "-i", source, "-map", "0:v", "-map", "1:a"]
        media.run_ffmpeg([*inputs, "-c:v", "copy", "-c:a", "aac", "-shortest", str(path)], name)
        return path

    half = f"{TONE.format(1.5)}[a];{HUSH.format(1.5)}[b];[a][b]concat=v=0:a=1"
    assert found(with_sound(half, "half"), lipsync) == []  # speaks in part of it: fine
    assert found(with_sound(HUSH.format(3), "mute"), lipsync) == [("silence", 0.0, 3.0)]
    assert found(video, lipsync) == [("silence", 0.0, 3.0)]  # no sound at all


def test_a_take_that_does_not_last_what_was_asked(clips: dict[str, Path]) -> None:
    asked_six = a_shot("k", width=160, height=90, duration=6)
    assert found(clips["good"], asked_six) == [("length", 0.0, 3.0)]


def test_a_take_with_a_finding_is_never_picked_by_default(project: Path) -> None:
    def picked(text: str, flagged: set[int]) -> int:
        board = spec_module.load(write(project / "specs" / "t.yaml", text))
        keys = {s.key: s.take for s in expand(board, "runware").shots}
        shots = expand(board, "runware", flagged=lambda key: keys.get(key) in flagged).shots
        return next(s.take for s in shots if s.picked)

    takes = "version: 1\nname: t\nshots:\n  - {id: a, prompt: the sea, takes: 3%s}\n"
    assert picked(takes % "", set()) == 1
    assert picked(takes % "", {1}) == 2
    assert picked(takes % "", {1, 2}) == 3
    assert picked(takes % "", {1, 2, 3}) == 1  # all of them: the first, as without a check
    assert picked(takes % ", pick: 1", {1}) == 1  # a pick wins


def test_a_film_shows_its_takes_findings_where_it_uses_them(project: Path) -> None:
    text = (
        "version: 1\nname: t\ndefaults: {resolution: 768p, duration: 6}\nshots:\n"
        "  - {id: a, prompt: the sea}\n  - {id: b, prompt: the shore}\n"
        "sequences:\n  - id: f\n    shots: [{card: Hello, duration: 2}, a, {shot: b, in: 2, out: 5}]\n"
        "    transition: {type: crossfade, duration: 0.5}\n"
    )
    [film] = expand(
        spec_module.load(write(project / "specs" / "t.yaml", text)), "runware"
    ).sequences
    black = qc.Finding(code=qc.Code.BLACK, start=0.0, end=6.0)
    frozen = qc.Finding(code=qc.Code.FROZEN, start=4.5, end=6.0)  # after b's out point
    found = qc.of_film(film, film.duration, [None, (black,), (black, frozen)], None, 0.0)
    # The card plays 0-2 s; a 1.5-7.5 s; b (its 2-5 s) 7-10 s: the frozen end is not used.
    assert [(f.code.value, f.start, f.end, f.detail) for f in found] == [
        ("black", 1.5, 7.5, "a"),
        ("black", 7.0, 10.0, "b"),
    ]
    longer = qc.of_film(film, film.duration + 0.4, [None, None, None], None, 0.0)
    assert [f.said() for f in longer] == ["10.40 s long, 10.00 s was asked"]


def test_what_starts_from_a_flagged_take_is_made_from_the_take_picked_instead(
    project: Path, cli, server: RunwareServer
) -> None:
    spec = write(
        project / "specs" / "hero.yaml",
        "version: 1\nname: hero\ndefaults: {resolution: 768p, duration: 6}\n"
        "shots:\n  - {id: hero, prompt: a black cat on a wall, takes: 2, upscale: 1080p}\n"
        "sequences:\n  - {id: film, shots: [hero], preset: ultrafast}\n",
    )
    planned = json.loads(cli("plan", spec, "--json").out)["totals"]["cost_needed"]
    server.set_faults(black_clip=1)  # take 1, the take picked by default, comes back black
    result, summary = build(cli, spec, "-j", "1")
    assert result.code == 0, result.err
    # Its upscale is not paid for: the build picks take 2 and upscales that one, once.
    stats = assert_money_safe(server, cache_of(project), takes=2)
    assert stats["submits"] == 3 and stats["billed_cost"] <= planned
    upscaled = [s for s in summary["shots"] if s["shot"] == "hero/upscale"]
    assert [(s["status"], s["take"]) for s in upscaled] == [("rendered", 2)]  # of take 2
    assert [s["status"] for s in summary["sequences"]] == ["built"]
    # The lock names what was paid, the plan has nothing left to make, gc keeps it all.
    lock = json.loads((project / "specs" / "hero.lock").read_text())
    assert sorted(s["shot"] for s in lock["shots"].values()) == ["hero", "hero", "hero/upscale"]
    again = json.loads(cli("plan", spec, "--json").out)["totals"]
    assert again["renders_needed"] == 0
    assert json.loads(cli("gc", "--json").out)["unused"] == []
