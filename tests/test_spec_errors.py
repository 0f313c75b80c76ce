"""Every class of bad input: one line `path:line:col: message`, exit code 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_process, write

GOOD_HEAD = "version: 1\nname: t\n"

CASES = {
    "yaml syntax": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: [unclosed\n",
        6,
        "invalid YAML",
    ),
    "duplicate key": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hello there\n    prompt: again\n",
        6,
        "duplicate key 'prompt'",
    ),
    "unknown field": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hello there\n    durration: 6\n",
        6,
        "shot 'a': unknown field 'durration': did you mean 'duration'?",
    ),
    "duplicate shot id": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: one two\n  - id: a\n    prompt: three\n",
        6,
        "duplicate shot id 'a'",
    ),
    "unknown shot in sequence": (
        GOOD_HEAD
        + "shots:\n  - id: a\n    prompt: one two\nsequences:\n  - id: s\n    shots: [a, b]\n",
        8,
        "sequence 's' names unknown shot 'b'",
    ),
    "missing template": (
        GOOD_HEAD + "shots:\n  - id: a\n    template: nowhere.j2\n",
        5,
        "template 'nowhere.j2' not found",
    ),
    "missing image": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hi there\n    first_frame: assets/no.png\n",
        6,
        "file 'assets/no.png' not found",
    ),
    "bad resolution": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hi there\n    resolution: 720p\n",
        6,
        "shot 'a' resolution: '720p' is not one of its choices",
    ),
    "wrong type": (
        GOOD_HEAD + "defaults:\n  duration: six\nshots:\n  - id: a\n    prompt: hi there\n",
        4,
        "defaults.duration: 'six' is not a number",
    ),
    "missing field": (
        "version: 1\nshots:\n  - id: a\n    prompt: hi there\n",
        1,
        "missing required field 'name'",
    ),
    "size not available": (
        GOOD_HEAD + "shots:\n  - id: wide\n    prompt: hi there\n    resolution: 1080p\n"
        "    duration: 10\n",
        7,
        "shot 'wide': 1920x1080 with duration 10 s is not available for minimax:4@1",
    ),
    "inherited size problem points at defaults": (
        GOOD_HEAD + "defaults:\n  duration: 10\nshots:\n  - id: wide\n    prompt: hi there\n"
        "    resolution: 1080p\n",
        4,
        "shot 'wide': 1920x1080 with duration 10 s",
    ),
    "fps the model does not take": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hi there\n    fps: 30\n",
        6,
        "renders at 25 fps only, not 30",
    ),
    "seed the model does not take": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hi there\n    seed: 4\n",
        6,
        "minimax:4@1 (MiniMax Hailuo 2.3) takes no seed",
    ),
    "image-only model without image": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hi there\n    model: minimax:4@2\n",
        4,
        "is image-to-video only",
    ),
    "undefined variable in inline prompt": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: 'a {{ subjct }} walks'\n",
        5,
        "undefined variable 'subjct'",
    ),
    "not a mapping": ("- just\n- a list\n", 1, "must be a YAML mapping"),
    "empty file": ("", 1, "must be a YAML mapping"),
    "both resolution and width": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hi there\n    resolution: 768p\n"
        "    width: 1366\n    height: 768\n",
        6,
        "either 'resolution' or 'width'/'height'",
    ),
    "out past the clip": (
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hi there\nsequences:\n  - id: s\n"
        "    shots: [{shot: a, out: 7}]\n",
        8,
        "'out' 7 is past the end of 'a'",
    ),
    "recursive alias": (GOOD_HEAD + "shots: &x\n  - *x\n", 3, "recursive YAML alias"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_located_line(project: Path, cli, case: str) -> None:
    text, line, message = CASES[case]
    spec = write(project / "specs" / "t.yaml", text)
    result = cli("plan", spec)
    assert result.code == 2, result.err
    first = result.err.splitlines()[0]
    assert first.startswith(f"{spec}:{line}:"), first
    assert message in first, first
    assert "Traceback" not in result.err
    assert result.out == ""


def test_unknown_field_hint_lists_allowed_fields(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "t.yaml",
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hi there\n    durration: 6\n",
    )
    result = cli("plan", spec)
    hint = result.err.splitlines()[1]
    assert hint.strip().startswith("hint: allowed here:")
    assert "duration" in hint and "first_frame" in hint


def test_undefined_variable_in_template_names_template_file_and_line(project: Path, cli) -> None:
    write(project / "templates" / "broken.j2", "{# a comment #}\nA shot of\n{{ missing_thing }}\n")
    spec = write(
        project / "specs" / "t.yaml", GOOD_HEAD + "shots:\n  - id: a\n    template: broken.j2\n"
    )
    result = cli("plan", spec)
    assert result.code == 2
    first = result.err.splitlines()[0]
    # The template as typed from here, the name's line and column, whose prompt it is.
    assert (
        first
        == "templates/broken.j2:3:4: shot 'a' (specs/t.yaml:5): undefined variable 'missing_thing'"
    )


def test_template_syntax_error_names_template_line(project: Path, cli) -> None:
    write(project / "templates" / "syntax.j2", "line one\n{% if %}\n")
    spec = write(
        project / "specs" / "t.yaml", GOOD_HEAD + "shots:\n  - id: a\n    template: syntax.j2\n"
    )
    result = cli("plan", spec)
    assert result.code == 2
    assert result.err.startswith(str(project / "templates" / "syntax.j2") + ":2:")


def test_missing_spec_file(project: Path, cli) -> None:
    result = cli("plan", project / "specs" / "nope.yaml")
    assert result.code == 2
    assert "nope.yaml:1:1: storyboard file not found" in result.err


def test_console_command_exits_2_without_traceback(project: Path) -> None:
    spec = write(
        project / "specs" / "t.yaml",
        GOOD_HEAD + "shots:\n  - id: a\n    prompt: hi you\n    bogus: 1\n",
    )
    result = run_process("plan", str(spec), cwd=project)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{spec}:6:5: shot 'a': unknown field 'bogus'" in result.stderr


def test_a_merge_key_is_read_as_yaml_reads_it(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "t.yaml",
        GOOD_HEAD
        + "base: &base {resolution: 768p, duration: 10}\n".replace("base:", "vars:\n  base:", 1)
        + "defaults:\n  <<: *base\n  duration: 6\n"
        + "shots:\n  - id: a\n    prompt: hi there\n"
        + "  - id: b\n    prompt: hi again\n    <<: *base\n",
    )
    data = json.loads(cli("plan", spec, "--json").out)
    sizes = {row["shot"]: (row["width"], row["duration"]) for row in data["shots"]}
    # Keys written beside a merge win over the merged ones, as YAML says.
    assert sizes == {"a": (1366, 6), "b": (1366, 10)}


def test_an_error_in_a_merged_value_points_where_it_is_written(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "t.yaml",
        GOOD_HEAD
        + "vars:\n  base: &base {resolution: 720p}\n"
        + "shots:\n  - id: a\n    prompt: hi there\n    <<: *base\n",
    )
    result = cli("plan", spec)
    assert result.code == 2
    assert result.err.startswith(
        f"{spec}:4:28: shot 'a' resolution: '720p' is not one of its choices\n"
        "  hint: choose 768p, 1080p"
    )


@pytest.mark.parametrize(
    ("style", "line"),
    [("|", 9), (">", 9), ("plain", 8)],
)
def test_errors_in_multi_line_prompts_point_at_their_line(
    project: Path, cli, style: str, line: int
) -> None:
    if style == "plain":
        prompt = "    prompt: first words\n      more words\n\n      {{ nope }}\n"
    else:
        prompt = (
            f"    prompt: {style}\n      first words\n      more words\n\n      {{{{ nope }}}}\n"
        )
    spec = write(project / "specs" / "t.yaml", GOOD_HEAD + "shots:\n  - id: a\n" + prompt)
    result = cli("plan", spec)
    assert result.code == 2
    assert result.err.startswith(f"{spec}:{line}:7: shot 'a': undefined variable 'nope'")


def test_max_shots_raises_the_limit(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "t.yaml",
        GOOD_HEAD + "matrix: {n: [1, 2, 3]}\nshots:\n  - id: a\n    prompt: shot {{ n }}\n",
    )
    refused = cli("plan", spec, "--max-shots", "2")
    assert refused.code == 2 and "the storyboard expands to 3 shots" in refused.err
    assert "raise the limit with --max-shots" in refused.err
    assert cli("plan", spec, "--max-shots", "3").code == 0
