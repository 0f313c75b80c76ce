"""Films delivered to spec, checked as a person would check them: the sound of every film
measured by ffmpeg's own `ebur128` (within 1 LU of its target, true peak at most -1 dBTP),
caption files beside each film read back by a subtitle library (the voice-over's words, in
its language, timed inside the film), and each platform's safe zone measured on the frame
as it is drawn (text and cards inside it, reaching its edges)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import get_args

import av
import numpy as np
import opentimelineio as otio
import pysubs2
import pytest

from pipeline import captions, media
from pipeline import spec as spec_module
from pipeline.assemble import ClipInput, assemble
from pipeline.cli import main
from pipeline.expand import expand
from pipeline.nodes import CaptionCue, Captions
from pipeline.outputs import OutputIndex
from pipeline.platforms import PLATFORMS
from pipeline.spec.schema import LOUDNESS_STANDARDS, Loudness, PlatformName
from tests.conftest import build_once, copy_built, write

# The acceptance check of issue 33: two languages, two formats, a voice-over, a bed, an end
# card, a subtitle file, loudness -14 and captions. Small films: a model the catalogue does
# not know takes any size, so the preview renders 320x180 clips of 3 s.
BOARD = """\
version: 1
name: deliver
defaults: {model: acme:1@1, width: 320, height: 180, duration: 3}
vars:
  scripts:
    en: "Mornings start here. The cup is warm."
    de: "Der Morgen beginnt hier. Die Tasse ist warm."
matrix:
  lang: [en, de]
voices:
  - {id: vo, text: "{{ scripts[lang] }}", voice: "narrator-{{ lang }}"}
shots:
  - {id: hero, prompt: steam rises from an espresso}
sequences:
  - id: spot
    shots: [hero, {card: "See you tomorrow", duration: 1}]
    preset: ultrafast
    voice: {voice: vo}
    voice_start: 0.5
    audio: assets/clicks.wav
    subtitles: "subs/{{ lang }}.srt"
    loudness: -14
    captions: true
    formats: ["16:9", "9:16"]
"""
SUBTITLES = {"en": "Coffee, done right.", "de": "Kaffee, richtig gemacht."}
SENTENCES = {
    "en": ["Mornings start here.", "The cup is warm."],
    "de": ["Der Morgen beginnt hier.", "Die Tasse ist warm."],
}
FILMS = [f"spot--{lang}--{shape}" for lang in ("en", "de") for shape in ("16x9", "9x16")]
CLICKS = "0.05*sin(2*PI*220*t)+if(lt(mod(t,0.5),0.003),0.95,0)"


def _sound(path: Path, source: str, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    media.run_ffmpeg(
        ["-f", "lavfi", "-i", f"aevalsrc='{source}':s=48000:d={seconds}", str(path)],
        "make a sound",
    )


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The storyboard built as a preview, and its films' timelines exported: its bed a quiet
    tone struck by loud clicks (peaks far above its loudness: the gain to -14 LUFS would
    lift them past the ceiling), a subtitle file per language."""
    root = tmp_path_factory.mktemp("deliver")
    _sound(root / "specs" / "assets" / "clicks.wav", CLICKS, 5)
    for lang, said in SUBTITLES.items():
        write(
            root / "specs" / "subs" / f"{lang}.srt", f"1\n00:00:03,000 --> 00:00:04,500\n{said}\n"
        )
    build_once(root, "deliver", BOARD)
    spec = root / "specs" / "deliver.yaml"
    assert main(["export", str(spec), "--preview", "--format", "otio"]) == 0
    return root


def _films(root: Path) -> Path:
    return root / "build" / "deliver" / "preview"


def _ebur128(film: Path) -> tuple[float, float]:
    """A film's integrated loudness (LUFS) and true peak (dBTP), as ffmpeg's `ebur128`
    filter measures them."""
    said = subprocess.run(
        [
            *(media.ffmpeg_binary(), "-hide_banner", "-nostats", "-i", str(film), "-map", "0:a"),
            *("-af", "ebur128=peak=true", "-f", "null", "-"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    summary = said[said.rfind("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary)
    assert integrated is not None and peak is not None, summary
    return float(integrated.group(1)), float(peak.group(1))


def test_every_film_measures_its_loudness_target(delivered: Path, cli) -> None:
    films = _films(delivered)
    for name in FILMS:
        integrated, peak = _ebur128(films / f"{name}.mp4")
        assert abs(integrated + 14) <= 1.0, (name, integrated)
        assert peak <= -1.0, (name, peak)
    # The figures measured when each film was made are in its record, and status says them.
    spec = delivered / "specs" / "deliver.yaml"
    rows = json.loads(cli("status", spec, "--preview", "--json").out)
    said = {row["name"]: row["loudness"] for row in rows if row["kind"] == "sequence"}
    for name in FILMS:
        figures = said[name]
        assert figures["target"] == -14.0
        assert abs(figures["integrated"] + 14) <= 1.0 and figures["true_peak"] <= -1.0
        assert figures["range"] >= 0


def test_a_timeline_beside_each_film_as_long_as_it_an_item_per_part(delivered: Path) -> None:
    films = _films(delivered)
    for name in FILMS:
        timeline = otio.adapters.read_from_file(str(films / f"{name}.otio"))
        length = media.probe(films / f"{name}.mp4").duration
        assert timeline.duration().to_seconds() == pytest.approx(length, abs=1 / 25)
        clips = list(timeline.video_tracks()[0].find_clips())
        assert [clip.name for clip in clips] == ["hero", "card: See you tomorrow"]
        assert [track.name for track in timeline.audio_tracks()] == ["A1 voice", "A2 bed"]


def _voice_length(root: Path, lang: str) -> float:
    """The voice render's measured length, as the lock records it."""
    lock = json.loads((root / "specs" / "deliver.preview.lock").read_text(encoding="utf-8"))
    voices = [s for s in lock["shots"].values() if s["shot"] == "vo" and lang in s["variants"]]
    return float(voices[0]["duration"])


def test_caption_files_beside_each_film_say_the_voice_over(delivered: Path) -> None:
    films = _films(delivered)
    for name in FILMS:
        lang = name.split("--")[1]
        length = media.probe(films / f"{name}.mp4").duration
        for suffix in (".srt", ".vtt"):
            read = pysubs2.load(str(films / f"{name}{suffix}"), encoding="utf-8")
            cues = [(cue.start / 1000, cue.end / 1000, cue.plaintext) for cue in read]
            assert all(0 <= start < end <= length + 0.001 for start, end, _ in cues), cues
            # The voice-over's words in its language, a sentence a cue, and the subtitle.
            said = [text.replace("\n", " ") for _, _, text in cues]
            assert [s for s in said if s != SUBTITLES[lang]] == SENTENCES[lang]
            assert SUBTITLES[lang] in said
            # Timed over the voice's measured length, from voice_start.
            spoken = [cue for cue in cues if cue[2] != SUBTITLES[lang]]
            assert spoken[0][0] == pytest.approx(0.5, abs=0.002)
            assert spoken[-1][1] == pytest.approx(0.5 + _voice_length(delivered, lang), abs=0.01)


def test_an_edited_script_rewrites_its_captions_and_a_lost_one_is_put_back(
    delivered: Path, project: Path, cli
) -> None:
    spec = copy_built(delivered, project, "deliver")
    for folder in ("assets", "subs"):
        shutil.copytree(
            delivered / "specs" / folder, project / "specs" / folder, dirs_exist_ok=True
        )
    films = _films(project)
    english = (films / "spot--en--9x16.srt").read_bytes()
    spec.write_text(BOARD.replace("Die Tasse ist warm", "Der Kaffee ist heiss"), encoding="utf-8")
    built = json.loads(cli("build", spec, "--preview", "--json").out)
    joined = sorted(s["sequence"] for s in built["sequences"] if s["status"] == "built")
    assert joined == ["spot--de--16x9", "spot--de--9x16"]
    for shape in ("16x9", "9x16"):
        for suffix in (".srt", ".vtt"):
            text = (films / f"spot--de--{shape}{suffix}").read_text(encoding="utf-8")
            assert "Der Kaffee ist heiss" in text and "Die Tasse" not in text
    assert (films / "spot--en--9x16.srt").read_bytes() == english  # not touched

    (films / "spot--en--9x16.vtt").unlink()
    rows = json.loads(cli("status", spec, "--preview", "--json").out)
    row = next(r for r in rows if r["name"] == "spot--en--9x16")
    assert row["status"] == "stored" and "caption files are missing" in row["reasons"][0]
    again = json.loads(cli("build", spec, "--preview", "--json").out)
    statuses = {s["sequence"]: s["status"] for s in again["sequences"]}
    assert statuses["spot--en--9x16"] == "placed"  # put back, not joined
    assert "built" not in statuses.values()
    assert "Mornings start here." in (films / "spot--en--9x16.vtt").read_text("utf-8")


def test_captions_turned_off_leave_no_stale_files_but_a_persons(tmp_path: Path) -> None:
    """The film step removes the caption files it wrote beside an earlier film of the same
    name (recorded, unchanged since); a file a person wrote or edited there stays."""
    index = OutputIndex(tmp_path / "outputs.json")
    ours, edited, theirs = (write(tmp_path / name, "1\n") for name in ("a.srt", "b.vtt", "c.srt"))
    index.record(ours)
    index.record(edited)
    edited.write_text("1\n00:00:00,000 --> 00:00:01,000\nMine\n")
    for path in (ours, edited, theirs):
        index.remove_if_ours(path)
    assert sorted(path.name for path in tmp_path.glob("*.*t")) == ["b.vtt", "c.srt"]
    assert index.sha256(ours) is None and str(ours) not in index.entries


# -- platforms: safe zones on the drawn frame ----------------------------------------------

PLATFORM_BOARD = """\
version: 1
name: platforms
shots:
  - {id: unused, prompt: never rendered, resolution: 768p, duration: 6}
sequences:
  - id: ad
    shots:
      - {card: "WWWWWWWW WWWWWWWW WWWWWWWW WWWWWWWW WWWWWWWW", duration: 0.6, color: "#00FF00", size: 0.1}
    fps: 10
    platforms: [tiktok, reels, shorts, youtube, meta-feed]
    text:
      - {text: TL, position: top-left, color: "#FF00FF", box: "#FF00FF", shadow: false, fade: 0}
      - {text: TR, position: top-right, color: "#FF00FF", box: "#FF00FF", shadow: false, fade: 0}
      - {text: BL, position: bottom-left, color: "#FF00FF", box: "#FF00FF", shadow: false, fade: 0}
      - {text: BR, position: bottom-right, color: "#FF00FF", box: "#FF00FF", shadow: false, fade: 0}
"""


def _frame(film: Path, at: float) -> np.ndarray:
    with av.open(str(film)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at:
                return frame.to_ndarray(format="rgb24").astype(int)
    raise AssertionError(f"{film} has no frame at {at} s")


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int]:
    """left, top, right, bottom (exclusive) of the pixels of `mask`."""
    rows, columns = np.nonzero(mask)
    assert len(rows), "nothing drawn"
    return int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1


def test_text_and_cards_stay_inside_each_platforms_safe_zone(project: Path, cli) -> None:
    assert set(get_args(PlatformName)) == set(PLATFORMS)  # the schema's names, each with figures
    assert set(get_args(get_args(Loudness)[1])) == set(LOUDNESS_STANDARDS)
    spec = write(project / "specs" / "platforms.yaml", PLATFORM_BOARD)
    built = json.loads(cli("build", spec, "--preview", "--json", "ad").out)
    assert [s["status"] for s in built["sequences"]] == ["built"] * len(PLATFORMS)
    for platform in PLATFORMS.values():
        film = Path(next(s["path"] for s in built["sequences"] if platform.name in s["path"]))
        pixels = _frame(film, 0.3)
        assert pixels.shape[:2] == (platform.height, platform.width)
        left, top, right, bottom = platform.safe.inside(platform.width, platform.height)
        red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        # The four corner layers reach the corners of the safe zone, and no further.
        text = _bounds((red > 170) & (green < 90) & (blue > 170))
        assert abs(text[0] - left) <= 3 and abs(text[1] - top) <= 3, (platform.name, text)
        assert abs(text[2] - right) <= 3 and abs(text[3] - bottom) <= 3, (platform.name, text)
        assert text[0] >= left - 1 and text[1] >= top - 1, platform.name
        assert text[2] <= right + 1 and text[3] <= bottom + 1, platform.name
        # The card's words, wrapped to the safe zone's width, are inside it.
        card = _bounds((green > 170) & (red < 90) & (blue < 90))
        assert card[0] >= left and card[1] >= top, (platform.name, card)
        assert card[2] <= right and card[3] <= bottom, (platform.name, card)
        # Encoded as the platform asks: H.264 High, 4:2:0, at its bitrate, keyframe
        # interval and B-frames (as x264 wrote its settings into the stream).
        with av.open(str(film)) as container:
            context = container.streams.video[0].codec_context
            assert (context.name, context.profile, context.pix_fmt) == ("h264", "High", "yuv420p")
        encoding = platform.encoding(10)
        said = _x264_settings(film)
        assert said["rc"] == "abr" and said["bitrate"] == str(encoding.video_kbps), said
        if encoding.gop:
            assert said["keyint"] == str(encoding.gop) and said["open_gop"] == "0", said
        if encoding.bframes >= 0:
            assert said["bframes"] == str(encoding.bframes), said


def _x264_settings(film: Path) -> dict[str, str]:
    """The options x264 wrote into a film's stream (its SEI: `... bframes=2 ... bitrate=8000`)."""
    data = film.read_bytes()
    start = data.index(b"x264 - core")
    text = data[start : data.index(b"\0", start)].decode("ascii", "replace")
    return dict(option.split("=", 1) for option in text.split() if "=" in option)


def test_delivery_mistakes_are_located_all_in_one_run(project: Path, cli) -> None:
    """A film longer than its platform takes, captions with nothing to caption, a loudness
    out of range: each said where it is written, in one run, exit 2, nothing spent."""
    spec = write(
        project / "specs" / "wrong.yaml",
        "version: 1\nname: wrong\ndefaults: {resolution: 768p, duration: 10}\n"
        "shots:\n  - {id: a, prompt: a quiet street}\n"
        "sequences:\n  - id: s\n    shots: [a, a, a, a, a, a, a]\n"
        "    platforms: [reels, tiktok]\n"
        "  - {id: t, shots: [a], captions: true}\n"
        "  - {id: u, shots: [a], loudness: -3}\n",
    )
    result = cli("plan", spec)
    assert result.code == 2
    said = result.err
    assert "wrong.yaml:9:24: sequence 's' is 70 s long: TikTok takes films of at most 60 s" in said
    assert "wrong.yaml:10:35: sequence 't': captions: true, and nothing to caption" in said
    assert "wrong.yaml:11:35: sequence 'u' loudness: -3 is more than -5" in said
    assert "or ebu-r128 (-23) or atsc-a85 (-24)" in said


def test_captions_are_sentences_timed_by_their_characters() -> None:
    said = captions.sentences("One two. Three four five\nsix seven eight!  Yes?")
    assert said == ("One two.", "Three four five six seven eight!", "Yes?")
    made = Captions(said, "voice", 1.0, (CaptionCue(0.2, 0.9, "<b> & "),))
    cues = captions.timed(made, 6.0, 6.5)
    assert [cue.text for cue in cues] == ["<b> & ", *said]
    spoken = cues[1:]
    assert spoken[0].start == 1.0 and spoken[-1].end == 6.5  # cut at the film's end
    # Each sentence's share of the voice is its share of the characters.
    assert spoken[0].end - spoken[0].start == pytest.approx(6.0 * 8 / 44, abs=0.002)
    assert "&lt;b&gt; &amp;" in captions.vtt(cues) and "<b> &" in captions.srt(cues)
    long = captions.sentences("word " * 40)
    assert all(len(line) <= captions.LINE for cue in long for line in cue.split("\n"))
    assert all(cue.count("\n") < captions.LINES for cue in long)


def test_a_peaky_sound_is_held_under_the_ceiling_and_still_on_target(tmp_path: Path) -> None:
    """Clips whose own sound is a quiet tone struck by loud clicks, joined by stream copy:
    the gain to -14 LUFS would lift the clicks far over the ceiling, and the limiter holds
    them under it while the film keeps its loudness."""
    clip = tmp_path / "c0.mp4"
    media.run_ffmpeg(
        [
            *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=3"),
            *("-f", "lavfi", "-i", f"aevalsrc='{CLICKS}':s=48000:d=3"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-shortest", str(clip)),
        ],
        "make a test clip",
    )
    spec = write(
        tmp_path / "join.yaml",
        "version: 1\nname: join\ndefaults: {model: acme:1@1, width: 320, height: 180, "
        "duration: 3}\nshots:\n  - {id: c0, prompt: clip}\n"
        "sequences:\n  - {id: s, shots: [c0], loudness: -14}\n",
    )
    film = expand(spec_module.load(spec), "preview").sequences[0]
    clips = [ClipInput(clip, media.probe(clip), 0.0, 3.0, "c0")]
    before = _ebur128(clip)
    made = assemble(film.recipe, clips, {}, tmp_path / "out" / "film.mp4", film.name)
    assert made.method == "copy"  # the picture as it was; only the sound is encoded
    integrated, peak = _ebur128(tmp_path / "out" / "film.mp4")
    assert before[1] - before[0] > 20  # peaks far above the loudness: a limiter's work
    assert abs(integrated + 14) <= 1.0 and peak <= -1.0, (integrated, peak)
    assert made.loudness is not None and made.loudness.integrated == pytest.approx(integrated)


def test_a_film_that_cannot_reach_its_loudness_fails_loudly(project: Path, cli) -> None:
    """A bed that is silence and one click: held under the ceiling, the click cannot carry
    a film to -14 LUFS. The build says which film missed, by how much and where its target
    is set, ends with exit 1, and writes no film."""
    _sound(project / "specs" / "assets" / "click.wav", "if(between(t,1,1.01),0.9,0)", 3)
    spec = write(
        project / "specs" / "loud.yaml",
        "version: 1\nname: loud\nshots:\n  - {id: unused, prompt: never rendered}\n"
        "sequences:\n  - id: s\n    shots: [{card: One click, duration: 3}]\n"
        "    width: 320\n    height: 180\n    preset: ultrafast\n"
        "    audio: assets/click.wav\n    loudness: -14\n",
    )
    result = cli("build", spec, "--preview", "s")
    assert result.code == 1
    failed = next(line for line in result.err.splitlines() if line.startswith("failed"))
    assert "failed   sequence s: specs/loud.yaml:12: sequence 's': its sound measures" in failed
    assert "from its target of -14 LUFS (within 1 LU" in failed
    assert not (project / "build" / "loud" / "preview" / "s.mp4").exists()
