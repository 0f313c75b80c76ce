"""Voices, music, upscales and lip-syncs: paid nodes of the graph, through the real client
against the local server. Priced in `plan`, each request submitted once, sound in the film,
a rebuild paying nothing, an edited script re-rendering exactly its own voice, lip-sync and
films; and a build killed while they render collects every one, billed once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import pytest

from pipeline import media
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import write
from tests.runware_support import assert_money_safe, build, cache_of, until

SPOT = """\
version: 1
name: spot
defaults: {resolution: 768p, duration: 6}
vars:
  scripts: {en: "Every morning starts here.", de: "Jeder Morgen beginnt hier."}
  hellos: {en: "Good morning.", de: "Guten Morgen, Welt."}
matrix:
  lang: [en, de]
voices:
  - {id: vo, text: "{{ scripts[lang] }}", voice: "narrator-{{ lang }}", speed: 1.1, emotion: calm}
  - {id: hello, text: "{{ hellos[lang] }}", voice: "barista-{{ lang }}"}
music:
  - {id: bed, prompt: "warm acoustic guitar, hopeful", duration: 8}
shots:
  - {id: hero, prompt: steam rises from an espresso, upscale: 1080p}
  - {id: barista, prompt: a barista says good morning, lipsync: {voice: hello}}
sequences:
  - id: spot
    shots: [{shot: hero, out: 4}, {shot: barista, out: 2}]
    preset: ultrafast
    voice: {voice: vo}
    voice_start: 0.5
    audio: {music: bed}
"""
# Per variant: two voices; shared: the bed, hero and its upscale, barista; per variant: its
# lip-sync. 2 + 2 + 1 + 1 + 1 + 1 + 2 = 10 renders.
RENDERS = 10
FIRST_RENDERS = 7  # those that need no other render: the voices, the bed and the two clips


def _loudness(film: Path, start: float, end: float) -> list[float]:
    """The loudness (RMS of the samples) of each audio frame (about 21 ms) of a film's sound
    over [start, end) seconds."""
    with av.open(str(film)) as container:
        levels = []
        for frame in container.decode(container.streams.audio[0]):
            if frame.time is None or not start <= frame.time < end:
                continue
            samples = frame.to_ndarray().astype("float64")
            levels.append(float((samples**2).mean()) ** 0.5)
    return levels


def _rms(film: Path, start: float, end: float) -> float:
    levels = _loudness(film, start, end)
    return (sum(x * x for x in levels) / max(len(levels), 1)) ** 0.5


def _flutter(film: Path, start: float, end: float) -> float:
    """How much the loudness moves from frame to frame (its spread over its mean): the
    voices of the local server rise and fall five times a second, as syllables do; a bed
    holds steady."""
    levels = _loudness(film, start, end)
    mean = sum(levels) / len(levels)
    spread = (sum((x - mean) ** 2 for x in levels) / len(levels)) ** 0.5
    return spread / mean


@pytest.fixture
def spot(project: Path) -> Path:
    return write(project / "specs" / "spot.yaml", SPOT)


def test_generated_sound_upscale_and_lipsync_end_to_end(
    project: Path, cli, server: RunwareServer, spot: Path
) -> None:
    # Results as Runware's pages show them: no `status` on a voice, a bed, an upscale or a
    # lip-sync; each is collected by its output URL (an audio result once polled forever).
    server.set_faults(dialect="docs")
    plan = json.loads(cli("plan", spot, "--json").out)
    kinds = sorted(row["kind"] for row in plan["shots"])
    assert kinds.count("voice") == 4 and kinds.count("music") == 1  # one bed, shared
    assert {"upscale", "lipsync"} <= set(kinds)
    assert all(row["price"] is not None and row["price"] > 0 for row in plan["shots"])
    # The bed ($0.15), hero ($0.28) and barista ($0.28), the upscale of a 6 s clip at its
    # upper bound ($0.0576 a second: no price is published), two lip-syncs billed by the
    # second of the voice they speak (its estimate at 15 characters a second, with a margin of
    # 1.5 until it is spoken), four voices by their characters.
    voices = sum(len(t) for t in ("Every morning starts here.", "Jeder Morgen beginnt hier."))
    voices += sum(len(t) for t in ("Good morning.", "Guten Morgen, Welt."))
    lipsyncs = sum(
        0.044 * round(len(t) / 15, 2) * 1.5 for t in ("Good morning.", "Guten Morgen, Welt.")
    )
    expected = 0.15 + 0.28 + 0.28 + 6 * 0.0576 + lipsyncs + voices * 0.0001
    assert plan["totals"]["cost_needed"] == pytest.approx(expected, abs=0.005)

    result, summary = build(cli, spot, "-j", "4", "--task-timeout", "20")
    assert result.code == 0, result.err
    stats = assert_money_safe(server, cache_of(project))
    assert stats["accepted"] == stats["submits"] == RENDERS
    assert stats["billed_cost"] <= plan["totals"]["cost_needed"]  # the plan never counts low
    assert max(stats["submits_per_uuid"].values()) == 1
    assert summary["spent"] == pytest.approx(stats["billed_cost"])
    assert [s["status"] for s in summary["sequences"]] == ["built", "built"]

    lock = json.loads((project / "specs" / "spot.lock").read_text())
    spoken = [
        s["request"]["speech"]["text"] for s in lock["shots"].values() if "speech" in s["request"]
    ]
    assert "Jeder Morgen beginnt hier." in spoken  # a diff of the lock reads as a script
    upscaled = next(s for s in lock["shots"].values() if s["shot"] == "hero/upscale")
    source = next(s for s in lock["shots"].values() if s["shot"] == "hero")
    cache = cache_of(project)
    by_sha = {r.sha256: r for r in cache.clips.records()}
    assert (by_sha[upscaled["sha256"]].width, by_sha[upscaled["sha256"]].height) == (1920, 1080)
    assert (by_sha[source["sha256"]].width, by_sha[source["sha256"]].height) == (1366, 768)

    for film_row in summary["sequences"]:
        film = Path(film_row["path"])
        info = media.validate(film)
        assert (info.width, info.height) == (1920, 1080)  # the upscaled hero sets its size
        with av.open(str(film)) as container:
            assert len(container.streams.audio) == 1
        assert info.duration == pytest.approx(6.0, abs=0.05)

        # The voice speaks from 0.5 s for about 2 s: the loudness follows it there, and holds
        # steady under the bed alone after it.

        assert _flutter(film, 0.7, 2.0) > 3 * _flutter(film, 2.7, 3.9)
        assert _rms(film, 2.7, 3.9) > 0.01  # the bed plays

    again, summary = build(cli, spot)
    assert again.code == 0 and summary["rendered"] == 0
    assert server.stats()["submits"] == RENDERS  # a rebuild submits nothing

    edited = SPOT.replace("Guten Morgen, Welt.", "Guten Morgen, ihr alle.")
    spot.write_text(edited, encoding="utf-8")
    result, summary = build(cli, spot)
    assert result.code == 0, result.err
    stats = server.stats()
    assert stats["submits"] == RENDERS + 2  # the German greeting, its lip-sync
    joined = [s["sequence"] for s in summary["sequences"] if s["status"] == "built"]
    assert joined == ["spot--de"]
    assert_money_safe(server, cache_of(project))


def test_a_voice_longer_than_its_film_is_a_located_error(
    project: Path, cli, server: RunwareServer
) -> None:
    long_text = "and then the morning goes on and on " * 6
    spec = write(
        project / "specs" / "long.yaml",
        "version: 1\nname: long\ndefaults: {resolution: 768p, duration: 6}\n"
        f"voices:\n  - {{id: vo, text: '{long_text}', voice: narrator}}\n"
        "shots:\n  - {id: a, prompt: a quiet street}\n"
        "sequences:\n  - id: s\n    shots: [a]\n    voice: {voice: vo}\n",
    )
    planned = cli("plan", spec)
    assert "runs about" in planned.err and "long.yaml:" in planned.err  # the estimate warns
    result = cli("build", spec)
    assert result.code == 1
    line = next(line for line in result.err.splitlines() if "voice 'vo' is" in line)
    assert "long.yaml:" in line and "s more than the 6 s of film" in line


def test_preview_renders_all_four_free(project: Path, cli, spot: Path) -> None:
    result, summary = build(cli, spot, "--preview")
    assert result.code == 0, result.err
    assert summary["spent"] == 0 and summary["rendered"] == RENDERS
    for film_row in summary["sequences"]:
        film = Path(film_row["path"])
        assert media.validate(film).width == 1920
        assert _rms(film, 0.7, 1.5) > 0  # the murmur of the voice, over the bed


def _spawn_build(project: Path, spec: Path) -> subprocess.Popen:
    """`storyboard build` of `spec` in a child process, to be killed."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "build", str(spec), "-j", "8"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_while_sound_and_upscale_render_then_collect(
    project: Path, cli, server: RunwareServer, spot: Path
) -> None:
    """Killed once the voices, the bed and the clips are in flight, and again once the
    upscale and lip-syncs are. The server holds every task until the test lets it end: what
    is in flight at each kill does not depend on how fast the machine is."""
    server.hold()
    process = _spawn_build(project, spot)
    until(process, lambda: server.stats()["accepted"] == FIRST_RENDERS)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    journal = cache_of(project).journal.entries()
    assert len(journal) == FIRST_RENDERS and all(e.task_uuid for e in journal.values())
    assert server.stats()["downloads"] == 0
    process = _spawn_build(project, spot)
    server.release()  # the first tasks end; those sent from now on are held
    until(process, lambda: server.stats()["accepted"] == RENDERS)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    in_flight = cache_of(project).journal.entries()
    assert len(in_flight) >= RENDERS - FIRST_RENDERS  # the upscale and lip-syncs at least
    server.hold(False)
    server.release()
    result, summary = build(cli, spot, "-j", "8")
    assert result.code == 0, result.err
    stats = assert_money_safe(server, cache_of(project))
    assert stats["accepted"] == RENDERS and max(stats["billed_per_request"].values()) == 1
    assert [s["status"] for s in summary["sequences"]] == ["built", "built"]
    assert cache_of(project).journal.entries() == {}
