"""Text on films: drawn where and when asked, per variant, in a font that has every glyph."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import REPO, build_once, copy_built, write

AD = """\
version: 1
name: ad
matrix:
  lang: [en, fr]
vars:
  taglines: {en: "Run", fr: "Courez plus loin, toujours"}
defaults: {model: acme:1@1, width: 640, height: 360, duration: 6}
shots:
  - {id: a, prompt: "a runner at dawn"}
  - {id: b, prompt: "a shoe close up"}
sequences:
  - id: spot
    shots: [a, b]
    preset: ultrafast
    text:
      - text: "{{ taglines[lang] }}"
        start: 1
        end: 3
        box: "0xFF00FF"
        fade: 0
      - text: "END"
        shot: b
        position: top-left
        box: "0x00FFFF"
        fade: 0
"""

MAGENTA = (255, 0, 255)
CYAN = (0, 255, 255)


def frame_at(path: Path, seconds: float) -> np.ndarray:
    """The RGB frame shown at `seconds` of a film."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= seconds - 1e-6:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"no frame at {seconds} s in {path}")


def box_of(frame: np.ndarray, colour: tuple[int, int, int]) -> tuple[int, int, int, int] | None:
    """The bounding box (left, top, right, bottom) of the pixels of `colour`, or None."""
    near = np.all(np.abs(frame.astype(int) - np.array(colour)) < 40, axis=2)
    if near.sum() < 50:
        return None
    rows, columns = np.nonzero(near)
    return int(columns.min()), int(rows.min()), int(columns.max()), int(rows.max())


@pytest.fixture(scope="module")
def ad_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ad built once for this module; each test gets a copy."""
    return build_once(tmp_path_factory.mktemp("ad"), "ad", AD)


@pytest.fixture
def ad(project: Path, ad_built: Path) -> Path:
    copy_built(ad_built, project, "ad")
    return project / "build" / "ad" / "preview"


def test_a_text_layer_is_drawn_where_and_when_asked_in_each_language(ad: Path) -> None:
    boxes = {}
    for lang in ("en", "fr"):
        film = ad / f"spot--{lang}.mp4"
        during = frame_at(film, 2.0)
        height, width = during.shape[:2]
        box = box_of(during, MAGENTA)
        assert box is not None, lang
        left, top, right, bottom = box
        assert top > 0.75 * height and bottom <= 0.95 * height + 2  # bottom, in the safe area
        assert abs((left + right) / 2 - width / 2) < 0.01 * width  # centred
        text = during[top:bottom, left:right]
        assert np.any(np.all(text > 200, axis=2))  # white letters inside the box
        for outside in (0.5, 4.0):  # before it starts, after it ends
            assert box_of(frame_at(film, outside), MAGENTA) is None, (lang, outside)
        boxes[lang] = box
    en, fr = boxes["en"], boxes["fr"]
    assert (fr[2] - fr[0]) > 3 * (en[2] - en[0])  # each language its own words


def test_a_layer_on_a_shot_is_drawn_while_that_shot_is_on_screen(ad: Path) -> None:
    film = ad / "spot--en.mp4"
    assert box_of(frame_at(film, 5.5), CYAN) is None  # shot a
    shown = box_of(frame_at(film, 6.5), CYAN)  # shot b, from 6 s
    assert shown is not None
    left, top, _, _ = shown
    frame = frame_at(film, 6.5)
    assert left < 0.1 * frame.shape[1] and top < 0.1 * frame.shape[0]  # top-left


def test_editing_a_tagline_rejoins_only_that_language(project: Path, cli, ad: Path) -> None:
    spec = project / "specs" / "ad.yaml"
    spec.write_text(AD.replace("Courez plus loin", "Allez plus loin"))
    rows = json.loads(cli("status", spec, "--preview", "--json").out)
    films = {r["name"]: r for r in rows if r["kind"] == "sequence"}
    assert films["spot--en"]["status"] == "current"
    assert films["spot--fr"]["status"] == "changed"
    assert films["spot--fr"]["reasons"] == ["text 1: [-Courez-] {+Allez+} plus loin, toujours"]
    assert {r["status"] for r in rows if r["kind"] == "shot"} == {"cached"}
    result = cli("build", spec, "--preview", "--json")
    joined = [s["sequence"] for s in json.loads(result.out)["sequences"] if s["status"] == "built"]
    assert joined == ["spot--fr"]


def test_a_character_the_font_lacks_fails_the_plan_naming_layer_and_character(
    project: Path, cli
) -> None:
    spec = write(
        project / "specs" / "ad.yaml",
        AD.replace('fr: "Courez plus loin, toujours"', 'fr: "Courez", ja: "もっと遠くへ"').replace(
            "lang: [en, fr]", "lang: [en, fr, ja]"
        ),
    )
    result = cli("plan", spec)
    assert result.code == 2
    first = result.err.splitlines()[0]
    assert first.startswith(f"{spec}:") and "text 1 [ja]" in first
    assert "'も' (U+3082)" in first and "not in the font DejaVuSans.ttf" in first
    assert "Traceback" not in result.err


def test_a_font_of_the_project_that_has_the_glyphs_is_used(project: Path, cli) -> None:
    font = make_font(project / "fonts" / "Tiny.ttf", "もっと遠くへ")
    spec = write(
        project / "specs" / "ja.yaml",
        "version: 1\nname: ja\ndefaults: {model: acme:1@1, width: 640, height: 360, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a runner}\n"
        "sequences:\n  - id: spot\n    shots: [a]\n    preset: ultrafast\n    text:\n"
        f"      - {{text: もっと遠くへ, font: ../fonts/{font.name}, box: '0xFF00FF', fade: 0}}\n",
    )
    result = cli("build", spec, "--preview")
    assert result.code == 0, result.err
    frame = frame_at(project / "build" / "ja" / "preview" / "spot.mp4", 3.0)
    box = box_of(frame, MAGENTA)
    assert box is not None
    text = frame[box[1] : box[3], box[0] : box[2]]
    assert np.all(text > 200, axis=2).sum() > 200  # the font's glyphs, drawn in white


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("{text: hi, color: 'red:x'}", "sequence 'spot' text[0].color: 'red:x' is not a colour"),
        (
            "{text: hi, position: middle}",
            "sequence 'spot' text[0].position: 'middle' is not one of its choices",
        ),
        ("{text: hi, shot: zz}", "sequence 'spot' text 1: shot 'zz' is not in the sequence"),
        ("{text: hi, start: 3, end: 20}", "3 to 20 s is not inside the film (6 s)"),
        ("{text: hi, shot: a, start: 1}", "give either 'shot' or 'start'/'end', not both"),
        ("{text: hi, font: No Such Family}", "no font family 'No Such Family'"),
        ("{text: hi, font: fonts/none.ttf}", "file 'fonts/none.ttf' not found"),
        ("{text: '{{ nope }}'}", "nope"),
    ],
)
def test_bad_text_layers_are_one_located_line(project: Path, cli, layer: str, message: str):
    spec = write(
        project / "specs" / "bad.yaml",
        "version: 1\nname: bad\ndefaults: {model: acme:1@1, width: 640, height: 360, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a runner}\n"
        f"sequences:\n  - id: spot\n    shots: [a]\n    text:\n      - {layer}\n",
    )
    result = cli("plan", spec)
    assert result.code == 2, result.err
    assert result.err.startswith(f"{spec}:10:") and message in result.err, result.err
    assert "Traceback" not in result.err


def make_font(path: Path, characters: str) -> Path:
    """A real TrueType font whose glyphs are filled squares, for `characters`."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def square() -> object:
        pen = TTGlyphPen(None)
        pen.moveTo((100, 0))
        pen.lineTo((100, 700))
        pen.lineTo((800, 700))
        pen.lineTo((800, 0))
        pen.closePath()
        return pen.glyph()

    names = [".notdef", *(f"uni{ord(c):04X}" for c in characters)]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({ord(c): f"uni{ord(c):04X}" for c in characters})
    builder.setupGlyf({name: square() for name in names})
    builder.setupHorizontalMetrics({name: (900, 100) for name in names})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "Tiny", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=800, usWinAscent=800, usWinDescent=200)
    builder.setupPost()
    path.parent.mkdir(parents=True, exist_ok=True)
    builder.save(str(path))
    return path


# -- formats ----------------------------------------------------------------------------------

FORMATS = """\
version: 1
name: social
defaults: {model: acme:1@1, width: 640, height: 360, duration: 6}
shots:
  - {id: lamp, prompt: a lamp on the left, first_frame: assets/left.png}
  - {id: room, prompt: an empty room}
sequences:
  - id: cut
    shots: [lamp, room]
    preset: ultrafast
    formats: [16:9, 9:16, {format: 9:16, focus: left}, {format: 1:1, fit: blur}, 4:5]
    text: [{text: "A lamp, a room, and a long line of words", position: bottom}]
"""


def bright_left(path: Path) -> Path:
    """A dark 1366x768 frame with a white square near its left edge."""
    from pipeline import media

    draw = "drawbox=x=60:y=284:w=200:h=200:color=white:t=fill"
    media.run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=black:s=1366x768", "-vf", draw, "-frames:v", "1", str(path)],
        "draw an image",
    )
    return path


def white_in(frame: np.ndarray) -> int:
    return int(np.all(frame > 220, axis=2).sum())


def test_formats_are_films_of_their_own_with_the_asked_size_and_focus(project: Path, cli):
    bright_left(project / "specs" / "assets" / "left.png")
    spec = write(
        project / "specs" / "social.yaml",
        FORMATS.replace("9:16, {format: 9:16", "9:16, {format: 9:16"),
    )
    # Two 9:16 films would be two files of one name.
    result = cli("build", spec, "--preview", "--json")
    assert result.code == 2 and "format 9:16 is given twice" in result.err
    spec.write_text(
        FORMATS.replace("9:16, {format: 9:16, focus: left}", "{format: 9:16, focus: left}")
    )
    result = cli("build", spec, "--preview", "--json")
    assert result.code == 0, result.err
    folder = project / "build" / "social" / "preview"
    sizes = {}
    for name in ("cut--16x9", "cut--9x16", "cut--1x1", "cut--4x5"):
        with av.open(str(folder / f"{name}.mp4")) as film:
            stream = film.streams.video[0]
            sizes[name] = (stream.width, stream.height, round(float(film.duration / 1e6), 2))
    assert sizes["cut--16x9"][:2] == (640, 360)
    assert sizes["cut--9x16"][:2] == (360, 640)
    assert sizes["cut--1x1"][:2] == (360, 360)
    assert sizes["cut--4x5"][:2] == (360, 450)
    assert {length for _, _, length in sizes.values()} == {sizes["cut--16x9"][2]}
    # focus: left keeps the bright square of the lamp shot in the 9:16 crop...
    tall = frame_at(folder / "cut--9x16.mp4", 0.5)
    assert white_in(tall[:, : tall.shape[1] // 2]) > 11_000  # the square, 167 px a side
    # ...where the centred crop of 4:5 shows the middle of the frame: no square on the left.
    assert white_in(frame_at(folder / "cut--4x5.mp4", 0.5)[141:281, :187]) < 500
    # blur: the square film's top and bottom are the clip, blurred, not black bars.
    square = frame_at(folder / "cut--1x1.mp4", 7.0).astype(int)  # the room's colour card
    assert square[:70].mean() > 30 and square[-56:].mean() > 30
    # the long line is wrapped inside the narrow formats' safe area
    rows = json.loads(cli("plan", spec, "--preview", "--json").out)["sequences"]
    assert {r["name"] for r in rows} == {f"cut--{f}" for f in ("16x9", "9x16", "1x1", "4x5")}


def test_a_format_size_must_be_even(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "odd.yaml",
        "version: 1\nname: odd\ndefaults: {model: acme:1@1, width: 640, height: 360, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a runner}\n"
        "sequences:\n  - id: spot\n    shots: [a]\n    formats: [1081x1920]\n",
    )
    result = cli("plan", spec)
    assert result.code == 2 and "sides must be even" in result.err
    assert result.err.startswith(f"{spec}:9:")


def test_a_logo_sits_at_its_anchor_at_its_size_and_opacity(project: Path, cli) -> None:
    from pipeline import media

    logo = project / "specs" / "assets" / "logo.png"
    media.run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=0x00FF00:s=400x200", "-frames:v", "1", str(logo)],
        "draw a logo",
    )
    layers = (
        "    logo: {image: assets/logo.png, position: bottom-left, size: 0.2, opacity: OPACITY}\n"
    )
    spec = write(
        project / "specs" / "logo.yaml",
        "version: 1\nname: logo\ndefaults: {model: acme:1@1, width: 640, height: 360, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a runner}\n"
        "sequences:\n  - id: spot\n    shots: [a]\n    preset: ultrafast\n"
        + layers.replace("OPACITY", "1.0"),
    )
    assert cli("build", spec, "--preview").code == 0
    film = project / "build" / "logo" / "preview" / "spot.mp4"
    frame = frame_at(film, 3.0)
    box = box_of(frame, (0, 255, 0))
    assert box is not None
    left, top, right, bottom = box
    height, width = frame.shape[:2]
    assert bottom - top + 1 == pytest.approx(0.2 * height, abs=3)  # its height: 20% of 768
    assert right - left + 1 == pytest.approx(0.4 * height, abs=3)  # its shape kept
    assert left == pytest.approx(0.05 * width, abs=4)  # bottom-left, in the safe area
    assert bottom == pytest.approx(0.95 * height, abs=4)
    solid = frame[top + 10, left + 10].astype(int)
    spec.write_text(spec.read_text().replace("opacity: 1.0", "opacity: 0.5"))
    assert cli("build", spec, "--preview").code == 0
    half = frame_at(film, 3.0)[top + 10, left + 10].astype(int)
    assert solid[1] > 240 and 90 < half[1] < 200  # half of the green, half of the frame


# -- voice-over -------------------------------------------------------------------------------


def tone(path: Path, frequency: int, seconds: float) -> Path:
    from pipeline import media

    media.run_ffmpeg(
        ["-f", "lavfi", "-i", f"sine=f={frequency}:d={seconds}:r=48000", str(path)],
        "make a tone",
    )
    return path


def level(samples: np.ndarray, rate: int, frequency: int, start: float, end: float) -> float:
    """dB of one frequency between two times of a mono signal."""
    part = samples[int(start * rate) : int(end * rate)]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    bins = np.fft.rfftfreq(len(part), 1 / rate)
    near = (bins > frequency - 15) & (bins < frequency + 15)
    return float(20 * np.log10(spectrum[near].max() + 1e-9))


def sound_of(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [f.to_ndarray().mean(axis=0) for f in container.decode(stream)]
        return np.concatenate(chunks), stream.rate


def test_the_voice_over_is_heard_and_the_bed_ducks_under_it(project: Path, cli) -> None:
    assets = project / "specs" / "assets"
    tone(assets / "bed.wav", 440, 30)
    tone(assets / "vo-en.wav", 1000, 3)
    tone(assets / "vo-fr.wav", 1500, 3)
    spec = write(
        project / "specs" / "vo.yaml",
        "version: 1\nname: vo\nmatrix: {lang: [en, fr]}\n"
        "defaults: {model: acme:1@1, width: 640, height: 360, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a runner}\n  - {id: b, prompt: a shoe}\n"
        "sequences:\n  - id: spot\n    shots: [a, b]\n    preset: ultrafast\n"
        "    audio: assets/bed.wav\n    voice: 'assets/vo-{{ lang }}.wav'\n    voice_start: 1\n",
    )
    assert cli("build", spec, "--preview").code == 0
    folder = project / "build" / "vo" / "preview"
    for lang, spoken in (("en", 1000), ("fr", 1500)):
        samples, rate = sound_of(folder / f"spot--{lang}.mp4")
        under = level(samples, rate, 440, 2.0, 3.5)  # the bed while the voice speaks
        alone = level(samples, rate, 440, 6.0, 8.0)  # the bed alone
        assert alone - under > 6, (lang, alone, under)  # ducked by more than 6 dB
        voice = level(samples, rate, spoken, 2.0, 3.5)
        assert voice > level(samples, rate, spoken, 6.0, 8.0) + 30  # heard, then gone
        assert voice > under  # over the bed
    missing = spec.read_text().replace("vo-{{ lang }}", "vo-{{ lang }}-x")
    spec.write_text(missing)
    result = cli("plan", spec)
    assert result.code == 2 and "file 'assets/vo-en-x.wav' not found" in result.err


# -- subtitles --------------------------------------------------------------------------------

SRT = """1
00:00:01,000 --> 00:00:03,000
Hi

2
00:00:04,000 --> 00:00:05,500
<i>Go</i>
"""

VTT = """WEBVTT

00:01.000 --> 00:03.000 line:80%
Bonjour à tous, bienvenue

NOTE a comment

00:04.000 --> 00:05.500
Allez
"""


def test_subtitles_are_burned_in_per_language_from_srt_and_webvtt(project: Path, cli) -> None:
    write(project / "specs" / "subs" / "en.srt", SRT)
    write(project / "specs" / "subs" / "fr.vtt", VTT)
    spec = write(
        project / "specs" / "subs.yaml",
        "version: 1\nname: subs\nmatrix: {lang: [en, fr]}\n"
        "defaults: {resolution: 768p, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a runner}\n"
        "sequences:\n  - id: spot\n    shots: [a]\n    preset: ultrafast\n"
        "    subtitles: {file: \"subs/{{ lang }}.{{ 'srt' if lang == 'en' else 'vtt' }}\", "
        "box: '0xFF00FF'}\n",
    )
    result = cli("build", spec, "--preview")
    assert result.code == 0, result.err
    folder = project / "build" / "subs" / "preview"
    widths = {}
    for lang in ("en", "fr"):
        film = folder / f"spot--{lang}.mp4"
        first = box_of(frame_at(film, 2.0), MAGENTA)
        assert first is not None and first[1] > 0.75 * 768, lang  # at the bottom
        assert box_of(frame_at(film, 3.5), MAGENTA) is None  # between the cues
        assert box_of(frame_at(film, 4.5), MAGENTA) is not None  # the second cue
        widths[lang] = first[2] - first[0]
    assert widths["fr"] > 4 * widths["en"]  # each language its own file
    write(project / "specs" / "subs" / "en.srt", SRT.replace("00:00:03,000", "00:00:0x,000"))
    result = cli("plan", spec)
    assert result.code == 2 and "'subs/en.srt' line 2: '00:00:0x,000' is not a time" in result.err
    write(project / "specs" / "subs" / "en.srt", SRT.replace("Hi", "こんにちは"))
    result = cli("plan", spec)
    assert result.code == 2 and "subtitle at 1 s of 'subs/en.srt'" in result.err
    assert "'こ' (U+3053)" in result.err


# -- the preview renderer's words -------------------------------------------------------------


def test_a_japanese_prompt_is_drawn_in_a_font_that_has_it(tmp_path: Path, monkeypatch) -> None:
    """The animatic's prompt: the bundled font draws empty boxes for Japanese; a font that
    fontconfig finds with those glyphs draws them."""
    from types import SimpleNamespace

    from pipeline.render.preview import card_for, draw
    from pipeline.typeface import BUNDLED, Fonts

    prompt = "もっと遠くへ"
    font = make_font(tmp_path / "fonts" / "Tiny.ttf", prompt)
    config = write(
        tmp_path / "fonts.conf",
        f'<?xml version="1.0"?>\n<fontconfig><dir>{font.parent}</dir>'
        f"<cachedir>{tmp_path / 'fc-cache'}</cachedir></fontconfig>\n",
    )
    shot = SimpleNamespace(
        label="far", variant="", take=1, takes=1, width=1366, height=768, duration=6, fps=25,
        prompt=prompt, key="ab" * 32, images=(), still=False, request={},
    )  # fmt: skip
    job = SimpleNamespace(shot=shot, variants=(), frames=())
    monkeypatch.setenv("FONTCONFIG_FILE", str(tmp_path / "none.conf"))
    write(tmp_path / "none.conf", '<?xml version="1.0"?>\n<fontconfig></fontconfig>\n')
    plain = card_for(job, Fonts())
    assert plain.prompt_font == BUNDLED  # nothing better on this "machine"
    monkeypatch.setenv("FONTCONFIG_FILE", str(config))
    found = card_for(job, Fonts())
    assert found.prompt_font == font and found.font == BUNDLED  # the title is Latin
    inked = []
    for card, name in ((plain, "plain.mp4"), (found, "found.mp4")):
        draw(card, tmp_path / name)
        frame = frame_at(tmp_path / name, 1.0)
        prompt_area = frame[int(0.74 * 768) : int(0.9 * 768), : 1366 // 2]
        inked.append(int(np.all(prompt_area > 200, axis=2).sum()))
    assert inked[1] > 3 * inked[0]  # filled glyphs, not the hollow boxes of missing ones


# -- title and end cards ----------------------------------------------------------------------


def test_title_and_end_cards_are_drawn_per_variant_and_format(project: Path, cli) -> None:
    bright_left(project / "specs" / "assets" / "left.png")
    spec = write(
        project / "specs" / "cards.yaml",
        "version: 1\nname: cards\nmatrix: {lang: [en, fr]}\n"
        "vars: {titles: {en: Hello, fr: Bonjour à tous}}\n"
        "defaults: {resolution: 768p, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a runner}\n"
        "sequences:\n  - id: spot\n    preset: ultrafast\n    formats: [16:9, 9:16]\n"
        "    shots:\n"
        "      - {card: '{{ titles[lang] }}', duration: 2, background: '0xFF00FF'}\n"
        "      - a\n"
        "      - {card: The end, duration: 1, image: assets/left.png}\n",
    )
    planned = json.loads(cli("plan", spec, "--preview", "--json").out)
    assert planned["totals"]["unique_renders"] == 1  # cards are not renders
    status = json.loads(cli("status", spec, "--preview", "--json", "-v").out)
    assert not [r for r in status if any("card" in reason for reason in r["reasons"])]
    result = cli("build", spec, "--preview")
    assert result.code == 0, result.err
    # a title per language and format; one end card per format (the same in both languages)
    assert result.err.count("drew     card") == 6
    # Each card says which films it is in, at which size; a render every variant shares
    # says so.
    assert (
        "drew     card 3 of spot--en--16x9 and spot--fr--16x9 ('The end', 1366x768, 1.00 s)"
        in result.err
    )
    assert "drew     card 1 of spot--fr--9x16 ('Bonjour à tous', 768x1366, 2.00 s)" in result.err
    assert "rendered a [all 2 variants] (" in result.err
    folder = project / "build" / "cards" / "preview"
    for name, size in (("16x9", (768, 1366)), ("9x16", (1366, 768))):
        film = folder / f"spot--fr--{name}.mp4"
        assert media_length(film) == pytest.approx(9.0, abs=0.05)
        title = frame_at(film, 1.0)
        assert title.shape[:2] == size
        magenta = np.all(np.abs(title.astype(int) - np.array(MAGENTA)) < 40, axis=2)
        assert magenta.mean() > 0.8  # the card fills the frame: drawn at the format's size
        assert white_in(title) > 500  # its words
        end = white_in(frame_at(film, 8.5))
        # the end card's image, whose square the 9:16 crop of it leaves out (but its words)
        assert end > 20_000 if name == "16x9" else 1_000 < end < 20_000
    again = cli("build", spec, "--preview")
    assert "drew" not in again.err  # drawn once
    spec.write_text(spec.read_text().replace("Hello", "こんにちは"))
    result = cli("plan", spec, "--preview")
    assert result.code == 2 and "card 1: 'こ' (U+3053)" in result.err


def media_length(path: Path) -> float:
    from pipeline import media

    return media.probe(path).duration


def test_a_film_with_5000_subtitle_cues_joins(project: Path, cli) -> None:
    """The cue count a file may hold (subtitles.MAX_CUES) is what a join takes: layers that
    never show at once share a drawtext filter, the graph goes to ffmpeg as a file (a graph
    of thousands of filters passes the kernel's limit on one argument)."""
    lines = ["1", "00:00:02,000 --> 00:00:04,000", "the one that shows, among 4,999 that flash", ""]
    for number in range(2, 5001):
        start = (number - 2) * 6 / 4999
        lines += [str(number), f"{_srt_time(start)} --> {_srt_time(start + 0.001)}", "x", ""]
    write(project / "specs" / "many.srt", "\n".join(lines))
    spec = write(
        project / "specs" / "many.yaml",
        "version: 1\nname: many\ndefaults: {model: acme:1@1, width: 640, height: 360, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a runner}\n"
        "sequences:\n  - id: spot\n    shots: [a]\n    preset: ultrafast\n"
        "    subtitles: {file: many.srt, box: '0xFF00FF'}\n",
    )
    result = cli("build", spec, "--preview")
    assert result.code == 0, result.err
    film = project / "build" / "many" / "preview" / "spot.mp4"
    assert media_length(film) == pytest.approx(6.0, abs=0.05)
    assert box_of(frame_at(film, 3.0), MAGENTA) is not None  # the long cue, drawn


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    return f"00:00:{millis // 1000:02d},{millis % 1000:03d}"


def test_a_woff2_font_is_sanitized_into_a_plain_one_and_used(project: Path, cli) -> None:
    """WOFF2 needs brotli, which fontTools lacks here: the sanitizer unpacks it, and only its
    output is read (by fontTools for glyphs and widths, by ffmpeg to draw)."""
    font = REPO / "tests" / "fonts" / "DroidSansFallback-subset.woff2"
    (project / "specs" / "fonts").mkdir(exist_ok=True)
    (project / "specs" / "fonts" / font.name).write_bytes(font.read_bytes())
    spec = write(
        project / "specs" / "woff.yaml",
        "version: 1\nname: woff\ndefaults: {model: acme:1@1, width: 640, height: 360, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a runner}\n"
        "sequences:\n  - id: spot\n    shots: [a]\n    preset: ultrafast\n    text:\n"
        f"      - {{text: もより, font: fonts/{font.name}, box: '0xFF00FF', fade: 0}}\n",
    )
    planned = cli("plan", spec, "--preview")
    assert planned.code == 0, planned.err
    copies = list((project / ".storyboard" / "fonts").glob("*.font"))
    assert len(copies) == 1 and copies[0].read_bytes()[:4] == b"\x00\x01\x00\x00"  # TrueType
    write(spec, spec.read_text().replace("もより", "もよりX"))
    missing = cli("plan", spec, "--preview")
    assert missing.code == 2 and "'X' (U+0058)" in missing.err  # its glyphs were read
    assert f"not in the font fonts/{font.name}" in missing.err  # named as the storyboard does


def test_a_card_that_cannot_be_drawn_fails_its_film_and_the_build(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import cards
    from pipeline.errors import MediaError

    def broken(*_: object) -> None:
        raise MediaError("ffmpeg failed to draw a card: the disk is gone")

    monkeypatch.setattr(cards, "draw", broken)
    spec = write(
        project / "specs" / "card.yaml",
        "version: 1\nname: card\ndefaults: {model: acme:1@1, width: 640, height: 360, duration: 6}\n"
        "shots:\n  - {id: a, prompt: a runner}\n"
        "sequences:\n  - id: spot\n    preset: ultrafast\n    shots: [a, {card: The end}]\n",
    )
    result = cli("build", spec, "--preview")
    assert result.code == 1, result.err
    assert "sequence spot failed: its card could not be drawn: card 2: ffmpeg failed" in result.err
