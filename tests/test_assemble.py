"""Sequences: joined by real ffmpeg, rebuilt only when they changed, recorded in the lock."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import av
import pytest

from pipeline import media
from pipeline import spec as spec_module
from pipeline.assemble import ClipInput, assemble
from pipeline.cache import Cache
from pipeline.expand import expand
from pipeline.nodes import Film
from tests.conftest import REPO, write

FILM = """\
version: 1
name: film
# Small clips of a model the catalogue does not know (any size): the joins are the same.
defaults: {model: acme:1@1, duration: 6, width: 640, height: 360}
shots:
  - id: wide
    prompt: a wide view of the bay
  - id: close
    prompt: a close view of a face
    width: 456
    height: 256
  - id: end
    prompt: the end card
sequences:
  - id: copy
    shots: [wide, end]
    preset: ultrafast
  - id: mixed
    shots: [wide, close, end]
    transition: {type: crossfade, duration: 0.5}
    preset: ultrafast
  - id: scored
    shots: [close, {shot: wide, in: 1, out: 4}]
    audio: assets/score.m4a
    transition: {type: fadeblack, duration: 0.5}
    preset: ultrafast
  - id: flash
    shots: [end, {shot: close, out: 0.8}, wide]
    transition: {type: wiperight, duration: 0.5}
    preset: ultrafast
"""


@pytest.fixture(scope="session")
def film_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The FILM built once per test session (its cache, films and the build's summary);
    tests copy what they need."""
    from pipeline.cli import main

    root = tmp_path_factory.mktemp("film-cache")
    shutil.copytree(REPO / "specs" / "assets", root / "specs" / "assets")
    spec = write(root / "specs" / "film.yaml", FILM)
    cache = root / ".storyboard"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            [
                "build",
                str(spec),
                "--preview",
                "--json",
                "--cache-dir",
                str(cache),
                "-o",
                str(root / "build"),
            ]
        )
    assert code == 0
    return cache, json.loads(printed.getvalue())


@pytest.fixture(scope="session")
def rendered_cache(film_session: tuple[Path, dict]) -> Path:
    return film_session[0]


@pytest.fixture
def film(project: Path, rendered_cache: Path) -> Path:
    shutil.rmtree(project / ".storyboard")
    shutil.copytree(rendered_cache, project / ".storyboard")
    (project / ".storyboard" / "outputs.json").unlink(missing_ok=True)
    shutil.rmtree(project / ".storyboard" / "films")  # the clips only: films are joined here
    return write(project / "specs" / "film.yaml", FILM)


@pytest.fixture
def built_film(project: Path, rendered_cache: Path) -> Path:
    """FILM with its films already made once in this session: a first build places them
    from the cache instead of joining them (for tests whose first build only sets up)."""
    shutil.rmtree(project / ".storyboard")
    shutil.copytree(rendered_cache, project / ".storyboard")
    (project / ".storyboard" / "outputs.json").unlink(missing_ok=True)
    return write(project / "specs" / "film.yaml", FILM)


def build(cli, spec: Path, *args: str) -> dict:
    result = cli("build", spec, "--preview", "--json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def by_name(summary: dict) -> dict[str, dict]:
    return {s["sequence"]: s for s in summary["sequences"]}


def streams(path: Path) -> dict[str, float]:
    with av.open(str(path)) as container:
        return {s.type: float(s.duration * s.time_base) for s in container.streams}


def test_sequences_joined_right(film_session: tuple[Path, dict]) -> None:
    cache, summary = film_session  # the session's first build joined every film
    sequences = by_name(summary)
    assert {s["status"] for s in sequences.values()} == {"built"}
    copy, mixed, scored = sequences["copy"], sequences["mixed"], sequences["scored"]
    assert copy["method"] == "copy" and mixed["method"] == "graph"
    info = media.validate(Path(copy["path"]), 640, 360, 12.0)
    assert info.duration == pytest.approx(12.0, abs=0.04)  # the sum of the clips
    info = media.validate(Path(mixed["path"]), 640, 360, 17.0)
    assert info.duration == pytest.approx(6 + 6 + 6 - 2 * 0.5, abs=0.04)
    assert Path(mixed["path"]).parent == cache.parent / "build" / "film" / "preview"
    # Largest shot wins the size; the smaller close-up is padded into the wide size.
    info = media.validate(Path(scored["path"]), 640, 360, 8.5)
    assert info.has_audio
    lengths = streams(Path(scored["path"]))
    assert lengths["audio"] == pytest.approx(lengths["video"], abs=0.05)
    assert lengths["video"] == pytest.approx(6 + 3 - 0.5, abs=0.04)
    # A 0.8 s flash between two 0.5 s wipes: both transitions overlap inside it.
    info = media.validate(Path(sequences["flash"]["path"]), 640, 360, 11.8)
    assert info.duration == pytest.approx(6 + 0.8 + 6 - 2 * 0.5, abs=0.04)


def test_changing_nothing_rebuilds_nothing(project: Path, cli, built_film: Path) -> None:
    film = built_film
    build(cli, film)
    lock = (project / "specs" / "film.preview.lock").read_text()
    again = build(cli, film)
    assert again["rendered"] == 0
    assert {s["status"] for s in again["sequences"]} == {"current"}
    assert (project / "specs" / "film.preview.lock").read_text() == lock


def test_changing_a_transition_rebuilds_only_that_sequence(
    project: Path, cli, built_film: Path
) -> None:
    film = built_film
    build(cli, film)
    lock_path = project / "specs" / "film.preview.lock"
    before = json.loads(lock_path.read_text())
    film.write_text(FILM.replace("type: crossfade", "type: wipeleft"))
    again = build(cli, film)
    assert again["rendered"] == 0
    assert {n: s["status"] for n, s in by_name(again).items()} == {
        "copy": "current",
        "mixed": "built",
        "scored": "current",
        "flash": "current",
    }
    after = json.loads(lock_path.read_text())
    assert after["shots"] == before["shots"]
    assert after["sequences"]["copy"] == before["sequences"]["copy"]
    assert after["sequences"]["mixed"]["key"] != before["sequences"]["mixed"]["key"]


def test_lock_round_trips_and_diffs_only_where_changed(
    project: Path, cli, built_film: Path
) -> None:
    film = built_film
    from pipeline import lock as lockfile

    build(cli, film)
    path = project / "specs" / "film.preview.lock"
    text = path.read_text()
    loaded = lockfile.read(path)
    assert loaded is not None and lockfile.render(loaded) == text
    assert set(loaded.shots) and all(len(e.sha256) == 64 for e in loaded.shots.values())
    film.write_text(FILM.replace("the end card", "the closing card"))
    build(cli, film)
    new = path.read_text().splitlines()
    old = text.splitlines()
    changed = [line for line in new if line not in old]
    # One shot replaced by another (its key, checksum, name line) and the sequences using it.
    assert changed and all(any(word in line for word in ('"', "{", "}")) for line in changed)
    assert len(changed) < len(new) / 2
    assert sum(1 for line in new if '"shot": "wide"' in line) == 1


def test_status_says_what_each_is_and_why(project: Path, cli, built_film: Path) -> None:
    film = built_film
    result = cli("status", film, "--preview", "--json")
    rows = json.loads(result.out)
    assert {r["status"] for r in rows if r["kind"] == "shot"} == {"cached"}  # cache copied in
    # Films this cache made before (the session's), not yet in this build folder:
    assert {r["status"] for r in rows if r["kind"] == "sequence"} == {"stored"}
    build(cli, film)
    film.write_text(
        FILM.replace("type: crossfade", "type: wipeleft").replace("the end card", "fin")
    )
    rows = {
        (r["kind"], r["name"]): r
        for r in json.loads(cli("status", film, "--preview", "--json").out)
    }
    assert rows[("shot", "wide")]["status"] == "cached"
    assert rows[("shot", "end")]["status"] == "changed"
    assert rows[("shot", "end")]["reasons"] == ["prompt changed: [-the end card-] {+fin+}"]
    mixed = rows[("sequence", "mixed")]
    assert mixed["status"] == "changed"
    assert mixed["reasons"] == [
        "shots changed: end",
        'transition: "crossfade" -> "wipeleft"',
        "waits for 1 render(s): end",
    ]
    summary = cli("status", project / "specs", "--preview")
    assert "film: shots 2/3 cached, 1 changed; sequences 1/4 current, 3 changed" in summary.out
    verbose = cli("status", film, "--preview", "-v").out
    assert "prompt changed: [-the end card-] {+fin+}" in verbose


def test_corrupt_clip_is_refused_naming_the_shot(project: Path, cli, film: Path) -> None:
    build(cli, film, "copy")
    plan = json.loads(cli("plan", film, "--preview", "--json").out)
    end_key = next(r["key"] for r in plan["shots"] if r["shot"] == "end")
    clip = Cache(project / ".storyboard").clips.path(end_key)
    data = bytearray(clip.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2000] = b"\x00" * 2000
    clip.write_bytes(bytes(data))
    shutil.rmtree(project / "build")
    shutil.rmtree(project / ".storyboard" / "films")  # else the film made before is placed
    result = cli("build", film, "--preview", "copy")
    assert result.code == 1
    assert "sequence copy failed: the clip of shot 'end' is damaged" in result.err
    assert not (project / "build" / "film" / "preview" / "copy.mp4").exists()


def test_build_only_named_sequences(project: Path, cli, film: Path) -> None:
    shutil.rmtree(project / ".storyboard")
    summary = build(cli, film, "copy")
    assert summary["rendered"] == 2  # wide and end; close is not needed
    assert [s["sequence"] for s in summary["sequences"]] == ["copy"]


def test_frozen_refuses_shots_the_lock_does_not_name(project: Path, cli, built_film: Path) -> None:
    film = built_film
    result = cli("build", film, "--preview", "--frozen")
    assert result.code == 2 and "--frozen: there is no lock file" in result.err
    build(cli, film)
    assert cli("build", film, "--preview", "--frozen").code == 0
    film.write_text(FILM.replace("the end card", "another end"))
    result = cli("build", film, "--preview", "--frozen")
    assert result.code == 2
    assert "would be rendered that film.preview.lock does not name: end" in result.err


def test_odd_paths_work(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "my 'odd' prøject"
    (root / ".storyboard").mkdir(parents=True)
    shutil.copytree(REPO / "specs" / "assets", root / "specs" / "assets")
    monkeypatch.chdir(root)
    spec = write(root / "specs" / "fïlm.yaml", FILM)
    summary = build(cli, spec, "copy", "scored")  # both ways of joining, and an audio bed
    assert len(summary["sequences"]) == 2
    for sequence in summary["sequences"]:
        assert sequence["status"] == "built", sequence
        assert Path(sequence["path"]).exists()


def _clip_with_sound(path: Path, pattern: str, tone: int) -> Path:
    """6 s at 320x180 and 25 fps with B-frames and AAC sound, like a camera file."""
    media.run_ffmpeg(
        [
            *("-f", "lavfi", "-i", f"{pattern}=s=320x180:r=25:d=6"),
            *("-f", "lavfi", "-i", f"sine=f={tone}:d=6"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-ar", "48000", "-shortest", str(path)),
        ],
        "make a test clip",
    )
    return path


def _sequence_of(folder: Path, count: int, settings: str = "", uses: str = "") -> Film:
    shots = "\n".join(f"  - {{id: c{i}, prompt: clip {i}}}" for i in range(count))
    ids = uses or ", ".join(f"c{i}" for i in range(count))
    spec = write(
        folder / "join.yaml",
        f"version: 1\nname: join\ndefaults: {{model: acme:1@1, width: 320, height: 180, duration: 6}}\n"
        f"shots:\n{shots}\nsequences:\n  - {{id: s, shots: [{ids}]{settings}}}\n",
    )
    return expand(spec_module.load(spec), "preview").sequences[0]


def _colour_clip(path: Path, colour: str) -> Path:
    """6 s of one colour fading in from black: the shade tells which second is showing."""
    media.run_ffmpeg(
        [
            *("-f", "lavfi", "-i", f"color=c={colour}:s=320x180:r=25:d=6"),
            *("-vf", "fade=t=in:st=0:d=6", "-c:v", "libx264", "-preset", "ultrafast"),
            *("-pix_fmt", "yuv420p", str(path)),
        ],
        "make a colour clip",
    )
    return path


def _colour_at(path: Path, seconds: float) -> tuple[int, int, int]:
    """The average colour of the frame shown at `seconds`."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= seconds - 1e-6:
                small = frame.reformat(width=1, height=1, format="rgb24", interpolation="AREA")
                return tuple(bytes(small.planes[0])[:3])  # type: ignore[return-value]
    raise AssertionError(f"no frame at {seconds} s in {path}")


@pytest.mark.parametrize(
    ("uses", "middle", "length"),
    [("c0, c1, c2", 6.0, 17.0), ("c0, {shot: c1, out: 0.8}, c2", 0.8, 11.8)],
    ids=["whole-shots", "flash-shorter-than-two-fades"],
)
def test_crossfades_put_each_shot_in_its_place(
    tmp_path: Path, uses: str, middle: float, length: float
) -> None:
    red, green, blue = (
        _colour_clip(tmp_path / f"{name}.mp4", name) for name in ("red", "lime", "blue")
    )
    settings = ", transition: {type: crossfade, duration: 0.5}, preset: ultrafast"
    sequence = _sequence_of(tmp_path, 3, settings, uses)
    ends = [use.end for use in sequence.uses]
    clips = [
        ClipInput(path, media.probe(path), 0.0, end, path.stem)
        for path, end in zip((red, green, blue), ends, strict=True)
    ]
    film = tmp_path / "film.mp4"
    assemble(sequence.recipe, clips, {}, film, sequence.name)
    assert media.validate(film, 320, 180, length).frames == round(length * 25)
    # Each clip's shade at a film time says which of its frames is there: 255/6 a second.
    assert _close(_colour_at(film, 2.0), (85, 0, 0))
    halfway = _colour_at(film, 6.0 - 0.5 + 0.24)  # red 5.74 s in, green 0.24 s in
    assert 110 < halfway[0] < 135 and halfway[1] < 15 and halfway[2] < 10
    if middle > 1.0:
        assert _close(_colour_at(film, 8.5), (0, 128, 0))  # green 3 s in
    assert _close(_colour_at(film, length - 1.0), (0, 0, 212))  # blue 5 s in


def _close(colour: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 6 for a, b in zip(colour, expected, strict=True))


def test_stream_copy_keeps_sound_in_step(tmp_path: Path) -> None:
    files = [
        _clip_with_sound(tmp_path / f"c{i}.mp4", pattern, tone)
        for i, (pattern, tone) in enumerate([("testsrc2", 440), ("smptebars", 660)] * 2)
    ]
    sequence = _sequence_of(tmp_path, len(files))
    clips = [ClipInput(path, media.probe(path), 0.0, 6.0, path.stem) for path in files]
    made = assemble(sequence.recipe, clips, {}, tmp_path / "out" / "film.mp4", sequence.name)
    assert made.method == "copy"
    info = media.validate(tmp_path / "out" / "film.mp4", 320, 180, 24.0)
    assert info.frames == 4 * 150 and info.audio == "aac/48000/mono"
    lengths = streams(tmp_path / "out" / "film.mp4")
    assert lengths["video"] == pytest.approx(24.0, abs=1 / 25)
    assert lengths["audio"] == pytest.approx(lengths["video"], abs=0.03)
    with (tmp_path / "out" / "film.mp4").open("rb") as joined:
        assert joined.read(64).find(b"moov") > 0  # the index comes first: plays while loading


def test_clips_that_differ_in_sound_are_not_copied(tmp_path: Path) -> None:
    sounding = _clip_with_sound(tmp_path / "a.mp4", "testsrc2", 440)
    silent = tmp_path / "b.mp4"
    media.run_ffmpeg(["-i", str(sounding), "-an", "-c", "copy", str(silent)], "drop sound")
    sequence = _sequence_of(tmp_path, 2)
    clips = [ClipInput(p, media.probe(p), 0.0, 6.0, p.stem) for p in (sounding, silent)]
    made = assemble(sequence.recipe, clips, {}, tmp_path / "film.mp4", sequence.name)
    assert made.method == "graph"
    assert media.validate(tmp_path / "film.mp4", 320, 180, 12.0).has_audio


def test_a_transition_of_no_length_is_a_cut(tmp_path: Path) -> None:
    files = [_colour_clip(tmp_path / f"{name}.mp4", name) for name in ("red", "blue")]
    settings = ", transition: {type: crossfade, duration: 0}"
    sequence = _sequence_of(tmp_path, 2, settings)
    clips = [ClipInput(path, media.probe(path), 0.0, 6.0, path.stem) for path in files]
    made = assemble(sequence.recipe, clips, {}, tmp_path / "film.mp4", sequence.name)
    assert made.method == "copy"
    assert media.validate(tmp_path / "film.mp4", 320, 180, 12.0).frames == 300


def test_a_graph_larger_than_one_argument_may_be_is_given_as_a_file(tmp_path: Path) -> None:
    """Linux lets one argument be 128 KB; a film's graph of many clips passes that. The graph
    goes to ffmpeg in a file, whatever its size."""
    graph = "[0:v]metadata=mode=add:key=note:value=" + "x" * 140_000 + "[v]"
    assert len(graph) > 128 * 1024
    output = tmp_path / "out.mp4"
    source = "color=c=navy:s=64x64:r=25:d=0.2"
    media.run_ffmpeg(
        ["-f", "lavfi", "-i", source, "-filter_complex", graph, "-map", "[v]", str(output)],
        "run a large graph",
    )
    assert media.probe(output).width == 64


@pytest.mark.parametrize(
    ("version", "option"),
    [
        ("ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright", "-/filter_complex"),
        ("ffmpeg version 7.1 Copyright (c) 2000-2024", "-/filter_complex"),
        ("ffmpeg version N-118000-gabcdef Copyright", "-/filter_complex"),
        ("ffmpeg version 6.1.1-3ubuntu5 Copyright", "-filter_complex_script"),
        ("ffmpeg version 5.1.6-0+deb12u1 Copyright", "-filter_complex_script"),
        ("", "-filter_complex_script"),
    ],
)
def test_the_graph_file_option_follows_the_ffmpeg_version(version: str, option: str) -> None:
    assert media.script_option(version) == option


def test_the_colour_names_are_the_ones_ffmpeg_knows() -> None:
    """The names plan accepts are exactly the ones `ffmpeg -colors` lists: a name outside them
    would fail the join after the clips are paid for."""
    import subprocess

    from pipeline.spec.schema import FFMPEG_COLOURS

    listed = subprocess.run(
        [media.ffmpeg_binary(), "-hide_banner", "-colors"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[1:]
    assert {line.split()[0].lower() for line in listed if line.strip()} == FFMPEG_COLOURS
