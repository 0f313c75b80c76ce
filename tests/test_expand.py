"""Expansion: matrix, per-shot matrix, takes, defaults, sizes, requests and warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import spec as spec_module
from pipeline.errors import SpecError
from pipeline.expand import expand
from tests.conftest import write

HEAD = "version: 1\nname: t\n"


def load(project: Path, text: str):
    return spec_module.load(write(project / "specs" / "t.yaml", HEAD + text))


def test_matrix_product_with_exclude_and_include(project: Path) -> None:
    loaded = load(
        project,
        "matrix:\n  light: [day, night]\n  lang: [en, de]\n"
        "  exclude: [{light: night, lang: de}]\n"
        "  include: [{light: dawn, lang: fr}, {light: day, lang: en, extra: loud}]\n"
        "shots:\n  - id: a\n    prompt: '{{ light }} {{ lang }} {{ extra | default(\"quiet\") }}'\n",
    )
    result = expand(loaded, "preview")
    assert result.variants == ("day-en", "day-de", "night-en", "dawn-fr")
    prompts = {s.variant: s.prompt for s in result.shots}
    assert prompts == {
        "day-en": "day en loud",
        "day-de": "day de quiet",
        "night-en": "night en quiet",
        "dawn-fr": "dawn fr quiet",
    }


def test_shot_without_matrix_variable_is_shared_by_variants(project: Path) -> None:
    loaded = load(
        project,
        "matrix:\n  light: [day, night]\n"
        "shots:\n  - id: a\n    prompt: 'in {{ light }}'\n  - id: b\n    prompt: 'no light here'\n",
    )
    result = expand(loaded, "preview")
    keys_a = {s.key for s in result.shots if s.shot_id == "a"}
    keys_b = {s.key for s in result.shots if s.shot_id == "b"}
    assert len(keys_a) == 2 and len(keys_b) == 1


def test_takes_differ_only_by_take_number_and_pick_is_used(project: Path) -> None:
    loaded = load(
        project,
        "shots:\n  - id: a\n    prompt: 'same request'\n    takes: 3\n    pick: 2\n"
        "sequences:\n  - id: s\n    shots: [a]\n",
    )
    result = expand(loaded, "preview")
    assert [s.take for s in result.shots] == [1, 2, 3]
    assert len({s.key for s in result.shots}) == 3
    assert all(s.request == result.shots[0].request for s in result.shots)
    assert "seed" not in result.shots[0].request
    assert result.sequences[0].uses[0].shot.take == 2


def test_request_is_exactly_what_the_api_takes(project: Path) -> None:
    loaded = load(
        project,
        "defaults:\n  resolution: 1080p\nshots:\n  - id: a\n    prompt: 'A  lighthouse\n\n  at dusk'\n"
        "  - id: b\n    first_frame: assets/luthier.jpg\n    resolution: 768p\n    duration: 10\n",
    )
    a, b = expand(loaded, "runware").shots
    assert a.request == {
        "taskType": "videoInference",
        "model": "minimax:4@1",
        "positivePrompt": "A lighthouse at dusk",
        "width": 1920,
        "height": 1080,
        "duration": 6,
        "fps": 25,
        "outputFormat": "MP4",
        "deliveryMethod": "async",
        "includeCost": True,
        "providerSettings": {"minimax": {"promptOptimizer": False}},
    }
    assert a.price == 0.49
    assert "positivePrompt" not in b.request
    assert b.request["inputs"]["frameImages"][0]["frame"] == "first"
    assert b.request["inputs"]["frameImages"][0]["image"].startswith("sha256:")
    assert (b.width, b.height, b.duration, b.price) == (1366, 768, 10, 0.56)


def test_per_shot_matrix_and_sequence_selector(project: Path) -> None:
    loaded = load(
        project,
        "shots:\n  - id: a\n    prompt: 'angle {{ angle }}'\n    matrix:\n      angle: [low, high]\n"
        "sequences:\n  - id: all\n    shots: [a]\n  - id: one\n    shots: [{shot: a, vars: {angle: high}}]\n",
    )
    result = expand(loaded, "preview")
    assert [s.label for s in result.shots] == ["a@low", "a@high"]
    assert [u.shot.label for u in result.sequences[0].uses] == ["a@low", "a@high"]
    assert [u.shot.label for u in result.sequences[1].uses] == ["a@high"]


def test_sequence_duration_and_default_size(project: Path) -> None:
    loaded = load(
        project,
        "shots:\n  - id: a\n    prompt: 'first one'\n    resolution: 1080p\n"
        "  - id: b\n    prompt: 'second one'\n    duration: 10\n"
        "sequences:\n  - id: s\n    shots: [a, {shot: b, in: 1, out: 9}]\n"
        "    transition: {type: crossfade, duration: 0.5}\n",
    )
    sequence = expand(loaded, "preview").sequences[0]
    assert (sequence.width, sequence.height) == (1920, 1080)
    assert sequence.duration == 6 + 8 - 0.5


def test_warnings_for_optimizer_long_prompt_and_unknown_model(project: Path) -> None:
    long = "word " * 450
    loaded = load(
        project,
        "shots:\n  - id: a\n    prompt: 'a word'\n    prompt_optimizer: true\n"
        f"  - id: b\n    prompt: '{long}'\n    model: acme:1@1\n",
    )
    result = expand(loaded, "preview")
    text = "\n".join(result.warnings)
    assert "prompt_optimizer is on" in text
    assert "the prompt is 2,249 characters; acme:1@1 takes 0 to 2,000" in text
    assert "unknown model 'acme:1@1'" in text
    b = next(s for s in result.shots if s.shot_id == "b")
    assert b.price is None and "providerSettings" not in b.request


def test_a_prompt_the_model_refuses_is_a_located_error(project: Path) -> None:
    loaded = load(project, f"shots:\n  - id: a\n    prompt: '{'word ' * 450}'\n")
    with pytest.raises(SpecError) as caught:
        expand(loaded, "preview")
    assert (caught.value.line, caught.value.col) == (5, 13)
    assert caught.value.message == (
        "shot 'a': the prompt is 2,249 characters; minimax:4@1 takes 2 to 2,000"
    )


REQUESTS = [
    # (model, shot fields, the providerSettings sent, a field sent or None, one not sent)
    ("minimax:4@1", "", {"minimax": {"promptOptimizer": False}}, "fps", None),
    ("minimax:4@1", "prompt_optimizer: true, ", {"minimax": {"promptOptimizer": True}}, None, None),
    (
        "google:3@3",
        "width: 1920, height: 1080, duration: 8, ",
        {"google": {"enhancePrompt": False, "generateAudio": False}},
        "width",
        "resolution",
    ),
    (
        "google:3@3",
        "width: 1920, height: 1080, duration: 8, first_frame: assets/raincoat.jpg, ",
        {"google": {"enhancePrompt": False, "generateAudio": False}},
        "resolution",
        "width",
    ),
    (
        "alibaba:wan@2.6",
        "width: 1920, height: 1080, duration: 5, prompt_optimizer: true, audio: true, ",
        {"alibaba": {"promptExtend": True, "audio": True}},
        None,
        None,
    ),
    (
        "alibaba:wan@2.6",
        "width: 1280, height: 720, duration: 5, ",
        {"alibaba": {"promptExtend": False, "audio": False}},
        None,
        None,
    ),
    (
        "klingai:kling-video@3-pro",
        "width: 1920, height: 1080, duration: 5, ",
        None,
        "width",
        "providerSettings",
    ),
]


@pytest.mark.parametrize(("model", "fields", "settings", "sent", "not_sent"), REQUESTS)
def test_requests_turn_prompt_rewriting_off_and_say_sound(
    project: Path,
    model: str,
    fields: str,
    settings: dict | None,
    sent: str | None,
    not_sent: str | None,
) -> None:
    """Prompt rewriting is off unless asked for, for every model that has it (a render must
    be repeatable from its request); sound is said where it is a setting; Kling 3.0 gets no
    providerSettings; Veo from a frame gets `resolution` (the frame sets the shape)."""
    loaded = load(project, f"shots:\n  - {{id: a, prompt: a door, model: '{model}', {fields}}}\n")
    request = expand(loaded, "runware").shots[0].request
    assert request.get("providerSettings") == settings
    if sent:
        assert sent in request
    if not_sent:
        assert not_sent not in request
    if "resolution" in request:
        assert request["resolution"] == "1080p"


def test_a_model_whose_sound_cannot_be_turned_off_refuses_audio_false(project: Path) -> None:
    with pytest.raises(SpecError) as caught:
        expand(
            load(
                project,
                "shots:\n  - {id: a, prompt: a door, model: 'klingai:kling-video@3-pro',\n"
                "     width: 1920, height: 1080, duration: 5, audio: false}\n",
            ),
            "runware",
        )
    assert "makes its clips with sound" in caught.value.message
    assert (caught.value.line, caught.value.col) == (5, 53)  # at `false`


VAR_TEMPLATES = """\
matrix: {flavour: [yuzu, cocoa]}
vars:
  names: {yuzu: Yuzu Spark, cocoa: Cocoa Night}
  product: "{{ names[flavour] }}"
  script: "Meet {{ product }}, made for mornings."
  lines: ["{{ product }} is here", "only {{ product }}"]
voices:
  - {id: vo, text: "{{ script }}", voice: English_expressive_narrator}
shots:
  - {id: can, prompt: "A can of {{ product }}: {{ lines[1] }}", resolution: 768p}
sequences:
  - id: spot
    shots: [can, {card: "{{ script }}", duration: 1}]
    voice: {voice: vo}
"""


def test_a_var_that_holds_template_text_is_worked_out_in_each_variant(project: Path) -> None:
    """A var may name the matrix and other vars: what a paid voice, a prompt and a card get is
    the variant's text, never the template (which a voice would read out, and pay for)."""
    expansion = expand(load(project, VAR_TEMPLATES), "runware")
    said = {(s.label, s.variant): s.prompt for s in expansion.shots}
    assert said[("vo", "yuzu")] == "Meet Yuzu Spark, made for mornings."
    assert said[("vo", "cocoa")] == "Meet Cocoa Night, made for mornings."
    assert said[("can", "cocoa")] == "A can of Cocoa Night: only Cocoa Night"
    cards = [u.shot.prompt for f in expansion.sequences for u in f.uses if u.shot.model == "card"]
    assert cards == ["Meet Yuzu Spark, made for mornings.", "Meet Cocoa Night, made for mornings."]
    assert not any("{" in s.request.get("speech", {}).get("text", "") for s in expansion.shots)


@pytest.mark.parametrize(
    ("text", "line", "said"),
    [
        # A matrix value is plain text: template text in it reaches the prompt as it is.
        (
            "matrix: {look: ['{{ mood }} light']}\nvars: {mood: soft}\n"
            "shots:\n  - {id: a, prompt: 'a lamp in {{ look }}'}\n",
            6,
            "template text is left in what it renders: '{{ mood }} light'",
        ),
        (
            "vars:\n  a: 'x {{ b }}'\n  b: 'y {{ a }}'\nshots:\n  - {id: s, prompt: '{{ a }}'}\n",
            4,
            "vars a, b name each other in a circle",
        ),
    ],
)
def test_template_text_never_reaches_a_request(
    project: Path, text: str, line: int, said: str
) -> None:
    with pytest.raises(SpecError) as raised:
        expand(load(project, text), "runware")
    (problem,) = raised.value.diagnostics
    assert problem.line == line and said in problem.message, problem


@pytest.mark.parametrize(
    ("voice", "said"),
    [
        ('{text: "\\u200b\\u200d\\t ", voice: narrator}', "the text says nothing"),
        (
            '{text: "hello \\x1b[2J", voice: narrator}',
            "the text holds the control character U+001B",
        ),
        ("{text: hello, voice: '{{ \"n\" * 5000 }}'}", "is not a voice id: one word of printable"),
        ('{text: hello, voice: "narrator\\n\\x1b[31m"}', "is not a voice id"),
        ("{text: hello, voice: two words}", "is not a voice id"),
    ],
)
def test_a_voice_that_would_pay_for_nothing_is_refused_at_plan(
    project: Path, voice: str, said: str
) -> None:
    text = f"voices:\n  - {{id: vo, {voice[1:]}\nshots:\n  - {{id: a, prompt: a street}}\n"
    with pytest.raises(SpecError) as raised:
        expand(load(project, text), "runware")
    (problem,) = raised.value.diagnostics
    assert problem.line == 4 and said in problem.message, problem


def test_lyrics_are_sung_so_not_with_instrumental(project: Path) -> None:
    text = (
        "music:\n  - {id: bed, prompt: a folk song, instrumental: true,\n"
        "     lyrics: '[verse] la la'}\nshots:\n  - {id: a, prompt: a street}\n"
        "sequences:\n  - {id: s, shots: [a], audio: {music: bed}}\n"
    )
    with pytest.raises(SpecError) as raised:
        expand(load(project, text), "runware")
    (problem,) = raised.value.diagnostics
    assert problem.line == 5 and "lyrics are sung, and instrumental: true" in problem.message


@pytest.mark.parametrize(
    ("clip", "short", "film"),
    [
        ((1366, 768), 1080, (1920, 1080)),  # a model's 768p is 16:9: so is its upscale
        ((1366, 768), 1440, (2560, 1440)),
        ((1366, 768), 2160, (3840, 2160)),
        ((768, 1366), 2160, (2160, 3840)),
        ((1000, 700), 1080, (1542, 1080)),  # no standard shape: its own, kept
    ],
)
def test_an_upscaled_clip_takes_its_films_at_a_standard_size(
    clip: tuple[int, int], short: int, film: tuple[int, int]
) -> None:
    from pipeline.expand.sound import _scaled

    assert _scaled(*clip, short) == film
