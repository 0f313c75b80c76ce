"""Every independent mistake of a storyboard in one run, across dependencies, each said as
the user reads it: one located line, in words, with a did-you-mean where one fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import plan
from pipeline.errors import SpecError
from pipeline.settings import Target
from tests.conftest import write

HEAD = "version: 1\nname: t\n"

# A campaign of two flavours in three languages, a voice, a card and a text layer, with
# seven independent mistakes on seven lines: French was added to the matrix and to nothing
# else (two dictionaries miss it), a field is misspelt on the shot the next one starts from,
# that next shot asks for a length the model has not, a card is too long, a transition is
# misspelt, a text layer's position is not one.
CAMPAIGN = """version: 1
name: launch
defaults: {resolution: 768p, duration: 6}
vars:
  names: {lime: Lime Fizz, plum: Plum Dusk}
  slogans: {en: Wake up bright, de: Wach auf}
  lines: {en: "Meet the can.", de: "Das ist die Dose."}
matrix:
  flavour: [lime, plum]
  lang: [en, de, fr]
voices:
  - {id: vo, text: "{{ lines[lang] }}", voice: narrator}
shots:
  - {id: pour, prompt: "{{ names[flavour] }} pours into a glass", duraton: 6}
  - {id: can, prompt: "a can of {{ names[flavour] }}", first_frame: {shot: pour}, duration: 7}
sequences:
  - id: spot
    shots: [pour, can, {card: "{{ slogans[lang] }}", duration: 45}]
    transition: {type: crosfade, duration: 0.5}
    voice: {voice: vo}
    text: [{text: "{{ slogans[lang] }}", shot: pour, position: bottom-center}]
"""

CAMPAIGN_SAYS = [
    "specs/t.yaml:12:20: voice 'vo' [lime-fr]: lines has no 'fr' (variant lang=fr); it has: en, de",
    "specs/t.yaml:14:67: shot 'pour': unknown field 'duraton': did you mean 'duration'?",
    "specs/t.yaml:15:93: shot 'can': 1366x768 with duration 7 s is not available for minimax:4@1",
    "specs/t.yaml:18:31: sequence 'spot' [lime-fr]: slogans has no 'fr' (variant lang=fr); "
    "it has: en, de",
    "specs/t.yaml:18:64: sequence 'spot' shots[2].duration: 45 is more than 30, the most it may be",
    "specs/t.yaml:19:24: sequence 'spot' transition.type: 'crosfade' is not one of its choices: "
    "did you mean 'crossfade'?",
    "specs/t.yaml:21:19: sequence 'spot' [lime-fr]: slogans has no 'fr' (variant lang=fr); "
    "it has: en, de",
    "specs/t.yaml:21:64: sequence 'spot' text[0].position: 'bottom-center' is not one of its "
    "choices: did you mean 'bottom'?",
]


def test_seven_mistakes_across_dependencies_are_said_in_one_run(project: Path, cli) -> None:
    write(project / "specs" / "t.yaml", CAMPAIGN)
    result = cli("plan", "specs/t.yaml")
    assert result.code == 2 and result.out == "" and "Traceback" not in result.err
    located = [line for line in result.err.splitlines() if not line.startswith("  hint:")]
    assert located == CAMPAIGN_SAYS
    # The missing keys: where they are defined is said; the allowed sizes, and the choices.
    assert "  hint: defined here: flavour, lang, lines, names, slogans" in result.err
    assert "  hint: allowed: 1366x768 with 6 or 10 s, 1920x1080 with 6 s" in result.err
    assert "  hint: choose cut, crossfade, fadeblack, wipeleft, wiperight" in result.err


def _said(project: Path, text: str) -> list[str]:
    """Each problem of the storyboard `text` as one line: `line: message`."""
    write(project / "specs" / "t.yaml", text)
    with pytest.raises(SpecError) as caught:
        plan.load(Target(project / "specs" / "t.yaml"), note=lambda _: None)
    return [
        f"{d.line}: {d.said}" + (f" | {d.hint}" if d.hint else "") for d in caught.value.diagnostics
    ]


# (storyboard, what is said of it), each line "line: message | hint".
CASES: dict[str, tuple[str, list[str]]] = {
    "a shot that starts from a failed shot is still checked": (
        HEAD
        + "shots:\n"
        + "  - {id: a, prompt: one, durration: 6}\n"  # 4
        + "  - {id: b, prompt: 'two {{ colour }}', first_frame: {shot: a}, duration: 7}\n",  # 5
        [
            "4: shot 'a': unknown field 'durration': did you mean 'duration'? | allowed here: "
            "audio, duration, first_frame, fps, height, id, last_frame, lipsync, matrix, model, "
            "negative_prompt, pick, price, prompt, prompt_optimizer, resolution, seed, takes, "
            "template, upscale, vars, width",
            "5: shot 'b': undefined variable 'colour' | no variable is defined here",
            "5: shot 'b': 1366x768 with duration 7 s is not available for minimax:4@1 | allowed: "
            "1366x768 with 6 or 10 s, 1920x1080 with 6 s",
        ],
    ),
    "a misspelt transition does not hide the sequence's text": (
        HEAD
        + "shots:\n  - {id: a, prompt: one}\n"
        + "sequences:\n"
        + "  - id: s\n    shots: [a]\n"
        + "    transition: {type: wype}\n"  # 8
        + "    text: [{text: '{{ tagline }}'}]\n",  # 9
        [
            "8: sequence 's' transition.type: 'wype' is not one of its choices | choose cut, "
            "crossfade, fadeblack, wipeleft, wiperight",
            "9: sequence 's': undefined variable 'tagline' | no variable is defined here",
        ],
    ),
    "a mistake in defaults is said once, naming the shots it reaches": (
        HEAD
        + "defaults: {resolution: 768p, duration: 7}\n"  # 3
        + "shots:\n  - {id: a, prompt: one}\n  - {id: b, prompt: two}\n"
        + "  - {id: c, prompt: three, duration: 6}\n  - {id: d, prompt: four}\n",
        [
            "3: shots 'a', 'b' and 'd': 1366x768 with duration 7 s is not available for "
            "minimax:4@1 | allowed: 1366x768 with 6 or 10 s, 1920x1080 with 6 s",
        ],
    ),
    "1080p for 10 s: render at 768p and upscale": (
        HEAD + "shots:\n  - {id: a, prompt: one, resolution: 1080p, duration: 10}\n",
        [
            "4: shot 'a': 1920x1080 with duration 10 s is not available for minimax:4@1 | "
            "allowed: 1366x768 with 6 or 10 s, 1920x1080 with 6 s; for 1080p at 10 s, render at "
            "768p and add 'upscale: 1080p' to the shot",
        ],
    ),
    "a bad value is left out, and its item's other fields are checked": (
        HEAD + "shots:\n  - {id: a, prompt: one, resolution: 720p, duration: 10, fps: fast}\n",
        [
            "4: shot 'a' resolution: '720p' is not one of its choices | choose 768p, 1080p",
            "4: shot 'a' fps: 'fast' is not a number",
        ],
    ),
    "choices, bounds and versions in words": (
        "version: 2\nname: t\n"
        + "shots:\n  - {id: a, prompt: one, takes: 0}\n"
        + "voices:\n  - {id: v, text: hi, voice: narrator, emotion: excitd}\n"
        + "sequences:\n  - {id: s, shots: [a], text: [{text: hi, position: left-top}]}\n",
        [
            "1: version: 2 is not a version this tool reads | write version: 1",
            "4: shot 'a' takes: 0 is less than 1, the least it may be",
            "6: voice 'v' emotion: 'excitd' is not one of its choices | choose happy, sad, angry, "
            "fearful, disgusted, surprised, calm, fluent, whisper",
            "8: sequence 's' text[0].position: 'left-top' is not one of its choices: did you mean "
            "'top-left'? | choose top-left, top, top-right, left, center, right, bottom-left, "
            "bottom, bottom-right",
        ],
    ),
    "every key a new matrix value misses, each naming its dictionary and variant": (
        HEAD
        + "vars:\n  hello: {en: Hi, de: Hallo}\n  bye: {en: Bye, de: Tschuess}\n"
        + "matrix:\n  lang: [en, de, fr, es]\n"
        + "shots:\n  - {id: a, prompt: '{{ hello[lang] }} and {{ bye[lang] }}'}\n",  # 9
        [
            "9: shot 'a' [fr]: hello has no 'fr' (variant lang=fr); it has: en, de | defined "
            "here: bye, hello, lang",
            "9: shot 'a' [fr]: bye has no 'fr' (variant lang=fr); it has: en, de | defined "
            "here: bye, hello, lang",
            "9: shot 'a' [es]: hello has no 'es' (variant lang=es); it has: en, de | defined "
            "here: bye, hello, lang",
            "9: shot 'a' [es]: bye has no 'es' (variant lang=es); it has: en, de | defined "
            "here: bye, hello, lang",
        ],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_mistake_is_said_in_words(project: Path, case: str) -> None:
    text, expected = CASES[case]
    assert _said(project, text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            HEAD + "shots:\n  - id: a\n    prompt: one\n   duration: 6\n",
            "specs/t.yaml:6:4: invalid YAML: did not find expected '-' indicator\n"
            "  hint: line 6's text starts in column 4, line 5's in column 5: the fields of one "
            "entry start in one column",
        ),
        (
            HEAD + "shots:\n  - id: a\n\tprompt: one\n",
            "specs/t.yaml:5:1: invalid YAML: found a tab character that violates indentation\n"
            "  hint: line 5 is indented with a tab: YAML indents with spaces only",
        ),
    ],
    ids=["indentation", "tab"],
)
def test_a_yaml_layout_mistake_gets_a_hint(project: Path, cli, text: str, says: str) -> None:
    write(project / "specs" / "t.yaml", text)
    result = cli("plan", "specs/t.yaml")
    assert result.code == 2
    assert result.err.strip() == says


def test_a_misspelt_shot_on_the_command_line_gets_a_did_you_mean(project: Path, cli) -> None:
    write(
        project / "specs" / "t.yaml",
        HEAD + "shots:\n  - {id: pour, prompt: one}\n  - {id: can, prompt: two}\n"
        "sequences:\n  - {id: spot, shots: [pour, can]}\n",
    )
    result = cli("pick", "specs/t.yaml", "pur", "2")
    assert result.code == 2
    assert result.err.splitlines() == [
        "error: no shot 'pur' in specs/t.yaml: did you mean 'pour'?",
        "  hint: shots: pour, can",
    ]
    result = cli("build", "--preview", "specs/t.yaml", "spto")
    assert result.code == 2
    assert "no sequence 'spto' in specs/t.yaml: did you mean 'spot'?" in result.err
