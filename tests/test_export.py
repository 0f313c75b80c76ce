"""`storyboard export`: each film's timeline for an editor, read back by OpenTimelineIO (and,
through its adapters, as FCPXML and a CMX 3600 EDL): as long as the film, an item per part
pointing at its file with its in and out points, the transitions, the text as markers, the
voice and the bed on audio tracks."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest

from pipeline import media
from tests.conftest import build_once, copy_built

SPEC = """\
version: 1
name: cut
# A model the catalogue does not know takes any size: small, short clips keep the test quick.
defaults: {model: acme:1@1, width: 320, height: 180, duration: 2}
shots:
  - {id: door, prompt: a door opens on a dark hall}
  - {id: room, prompt: an empty room in morning light, takes: 2}
sequences:
  - id: reel
    shots: [door, room, {card: "The end", duration: 1}]
    transition: {type: crossfade, duration: 0.4}
    text: [{text: Come in, shot: door}]
    audio: assets/bed.m4a
    voice: assets/vo.m4a
    voice_start: 0.5
    preset: ultrafast
"""


def sound(path: Path, seconds: float, frequency: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    source = f"sine=frequency={frequency}:sample_rate=48000:duration={seconds}"
    media.run_ffmpeg(["-f", "lavfi", "-i", source, "-c:a", "aac", str(path)], "make a sound")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cut")
    sound(root / "specs" / "assets" / "bed.m4a", 8.0, 220)
    sound(root / "specs" / "assets" / "vo.m4a", 1.5, 440)
    return build_once(root, "cut", SPEC)


@pytest.fixture
def cut(project: Path, built: Path) -> Path:
    spec = copy_built(built, project, "cut")
    for name in ("bed.m4a", "vo.m4a"):
        (project / "specs" / "assets" / name).write_bytes(
            (built / "specs/assets" / name).read_bytes()
        )
    return spec


def test_an_otio_timeline_per_film_as_long_as_the_film(cli, cut: Path, project: Path) -> None:
    result = cli("export", cut, "--preview", "--format", "otio")
    assert result.code == 0, result.err
    path = project / "build" / "cut" / "preview" / "reel.otio"
    assert result.out.strip() == f"wrote {path}"
    timeline = otio.adapters.read_from_file(str(path))
    film = media.probe(path.with_suffix(".mp4"))
    assert timeline.duration().to_seconds() == pytest.approx(film.duration, abs=1 / 25)

    video, voice, bed = timeline.tracks
    clips = list(video.find_clips())
    assert [c.name for c in clips] == ["door", "room take 1", "card: The end"]  # an item per part
    transitions = [item for item in video if isinstance(item, otio.schema.Transition)]
    assert [(t.name, t.in_offset.value + t.out_offset.value) for t in transitions] == [
        ("crossfade", 10),
        ("crossfade", 10),
    ]  # 0.4 s at 25 fps, centred on each cut
    cache = project / ".storyboard" / "clips"
    for clip in clips:
        file = Path(clip.media_reference.target_url.removeprefix("file://"))
        assert file.is_file() and file.parent.parent == cache
        assert (
            clip.source_range.end_time_exclusive() <= clip.media_reference.available_range.duration
        )
    # In and out points: the door from its start, the card to its end; each cut in the
    # middle of its dissolve.
    door, room, card = (c.source_range for c in clips)
    assert door.start_time.value == 0 and door.duration.value == 50 - 5
    assert room.start_time.value == 5 and room.duration.value == 50 - 10
    assert card.duration.value == 25 - 5
    [marker] = video.markers
    assert marker.name == "Come in" and marker.marked_range.start_time.value == 0

    assert voice.name == "A1 voice" and bed.name == "A2 bed"
    gap, spoken = voice
    assert isinstance(gap, otio.schema.Gap) and gap.duration().to_seconds() == 0.48
    assert spoken.source_range.duration.to_seconds() == pytest.approx(1.5, abs=0.05)
    [music] = bed
    assert music.source_range.duration.to_seconds() == pytest.approx(film.duration, abs=1 / 25)


def test_fcpxml_and_edl_through_the_adapters(cli, cut: Path, project: Path) -> None:
    folder = project / "build" / "cut" / "preview"
    assert cli("export", cut, "--preview", "--format", "fcpxml").code == 0
    fcp = otio.adapters.read_from_file(str(folder / "reel.fcpxml"))
    [video] = fcp.video_tracks()
    assert [c.name for c in video.find_clips()] == ["door", "room take 1", "card: The end"]
    assert [m.name for c in video.find_clips() for m in c.markers] == ["Come in"]
    assert len(fcp.audio_tracks()) == 2

    assert cli("export", cut, "--preview", "--format", "edl").code == 0
    edl = otio.adapters.read_from_file(str(folder / "reel.edl"), rate=25)
    [video] = edl.video_tracks()
    assert len(list(video.find_clips())) >= 3  # a dissolve is written as two events
    film = media.probe(folder / "reel.mp4")
    assert edl.duration().to_seconds() == pytest.approx(film.duration, abs=1 / 25)


def test_a_film_not_rendered_yet_is_said_not_written(cli, project: Path) -> None:
    spec = project / "specs" / "cut.yaml"
    spec.write_text(
        SPEC.replace("assets/bed.m4a", "assets/score.m4a").replace(
            "    voice: assets/vo.m4a\n    voice_start: 0.5\n", ""
        )
    )
    result = cli("export", spec, "--preview")
    assert result.code == 1
    assert "reel: not exported: not rendered yet: door, room" in result.err


def test_a_format_whose_adapter_is_missing_is_refused(
    cli, cut: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(otio.adapters, "available_adapter_names", lambda: ["otio_json"])
    result = cli("export", cut, "--preview", "--format", "edl")
    assert result.code == 2
    assert "cmx_3600 adapter is not installed" in result.err
    assert "pip install otio-cmx3600-adapter" in result.err
