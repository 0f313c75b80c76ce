"""Every independent mistake of a storyboard is reported in one run, each once, located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import plan
from pipeline.errors import MAX_SHOWN, SpecError
from pipeline.settings import Target
from pipeline.spec import read
from tests.conftest import write

HEAD = "version: 1\nname: t\n"
MATRIX = "matrix:\n  light: [dawn, dusk]\n"

# (storyboard, the problems expected: (line, code, part of the message)), in file order.
CASES: dict[str, tuple[str, list[tuple[int, str, str]]]] = {
    "three in three places": (
        HEAD
        + "shots:\n"
        + "  - id: a\n    prompt: one\n    taeks: 2\n"  # 4-6
        + "  - id: b\n    template: ballroom/kyes.j2\n"  # 7-8
        + "  - id: c\n    prompt: three\n"  # 9-10
        + "sequences:\n  - id: s\n    shots: [a, b, cc]\n",  # 11-13
        [
            (6, "unknown-field", "shot 'a': unknown field 'taeks': did you mean 'takes'?"),
            (8, "template", "template 'ballroom/kyes.j2' not found: did you mean"),
            (13, "unknown-shot", "names unknown shot 'cc': did you mean 'c'?"),
        ],
    ),
    "a YAML 1.1 guess and a bad value": (
        HEAD + "vars:\n  answer: no\n" + "shots:\n  - id: a\n    prompt: one\n    duration: six\n",
        [
            (4, "yaml-1.1", "'no' is read by YAML 1.1 as the boolean false"),
            (8, "invalid-value", "shot 'a' duration: 'six' is not a number"),
        ],
    ),
    "a duplicate key and an unknown still": (
        HEAD
        + "shots:\n  - id: a\n    prompt: one\n    prompt: two\n"
        + "  - id: b\n    prompt: three\n    first_frame: {still: postr}\n"
        + "stills:\n  - id: poster\n    prompt: a poster\n",
        [
            (6, "key", "duplicate key 'prompt'"),
            (9, "unknown-still", "unknown still 'postr': did you mean 'poster'?"),
        ],
    ),
    "an invalid shot named elsewhere is one problem": (
        HEAD
        + "shots:\n  - id: a\n    prompt: one\n    fps: fast\n"
        + "  - id: b\n    prompt: two\n    first_frame: {shot: a}\n"
        + "sequences:\n  - id: s\n    shots: [a, b]\n",
        [(6, "invalid-value", "shot 'a' fps: 'fast' is not a number")],
    ),
    "a missing file in defaults is one problem, not one per shot": (
        HEAD
        + "defaults:\n  first_frame: assets/none.png\n"
        + "shots:\n  - id: a\n    prompt: one\n  - id: b\n    prompt: two\n",
        [(4, "file", "'assets/none.png' not found")],
    ),
    "a top-level mistake and shot mistakes": (
        "version: 2\nname: t\n" + "shots:\n  - id: a\n    prompt: one\n    durration: 6\n",
        [
            (1, "invalid-value", "version: 2 is not a version this tool reads"),
            (6, "unknown-field", "did you mean 'duration'?"),
        ],
    ),
    "duplicate ids, shots and sequences": (
        HEAD
        + "shots:\n  - id: a\n    prompt: one\n  - id: a\n    prompt: two\n"
        + "sequences:\n  - id: s\n    shots: [a]\n  - id: s\n    shots: [a]\n",
        [
            (6, "duplicate-id", "duplicate shot id 'a'"),
            (11, "duplicate-id", "duplicate sequence id 's'"),
        ],
    ),
    "expansion: a model, a variable, each once over two variants": (
        HEAD
        + MATRIX
        + "shots:\n"
        + "  - id: a\n    prompt: one in {{ light }}\n    duration: 7\n"  # 6-8
        + "  - id: b\n    prompt: two in {{ lihgt }}\n"  # 9-10
        + "  - id: c\n    prompt: three\n    first_frame: {shot: a}\n",  # 11-13
        [
            (8, "invalid", "7"),
            (10, "undefined", "undefined variable 'lihgt': did you mean 'light'?"),
        ],
    ),
    "reading and expanding: both kinds at once": (
        HEAD
        + "shots:\n"
        + "  - id: a\n    prompt: one\n    sead: 3\n"  # 4-6
        + "  - id: b\n    prompt: '{{ nothing }}'\n",  # 7-8
        [
            (6, "unknown-field", "did you mean 'seed'?"),
            (8, "undefined", "undefined variable 'nothing'"),
        ],
    ),
}


def _problems(project: Path, text: str) -> tuple[Path, SpecError]:
    path = write(project / "specs" / "t.yaml", text)
    with pytest.raises(SpecError) as caught:
        plan.load(Target(path), note=lambda _: None)
    return path, caught.value


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_independent_problem_is_reported_once(project: Path, case: str) -> None:
    text, expected = CASES[case]
    path, error = _problems(project, text)
    found = [(d.line, d.code, d.message) for d in error.diagnostics]
    assert [(line, code) for line, code, _ in found] == [(line, code) for line, code, _ in expected]
    for (_, _, message), (_, _, part) in zip(found, expected, strict=True):
        assert part in message
    assert {d.path for d in error.diagnostics} == {str(path)}


def test_reading_keeps_what_validates_and_knows_what_failed(project: Path) -> None:
    text, _ = CASES["an invalid shot named elsewhere is one problem"]
    spec = read(write(project / "specs" / "t.yaml", text))
    # Shot a is kept without its bad fps (the default stands in), so that the rest of it,
    # and b that starts from it, are checked too.
    assert [shot.id for shot in spec.storyboard.shots] == ["a", "b"]
    assert spec.storyboard.shots[0].fps is None
    assert spec.left_out == {("shots", 0, "fps")} and spec.stands_in(("shots", 0, "fps"))
    assert spec.source.where(("shots", 1, "first_frame"))[1] == 9


def test_an_entry_that_cannot_stand_is_left_out_and_the_rest_point_at_their_lines(
    project: Path,
) -> None:
    text = HEAD + "shots:\n  - prompt: no id\n  - id: b\n    prompt: two\n    seed: 3\n"
    spec = read(write(project / "specs" / "t.yaml", text))
    assert [shot.id for shot in spec.storyboard.shots] == ["b"]
    assert spec.source.where(("shots", 0, "seed"))[1] == 7


def test_past_fifty_problems_the_rest_are_counted(project: Path) -> None:
    shots = "".join(f"  - id: s{n}\n    prompt: a pour\n    durration: 6\n" for n in range(60))
    _, error = _problems(project, HEAD + "shots:\n" + shots)
    assert len(error.diagnostics) == 60
    lines = error.render().splitlines()
    assert lines[-1] == f"... and {60 - MAX_SHOWN} more problem(s)"
    assert sum(": unknown field 'durration'" in line for line in lines) == MAX_SHOWN


def test_three_mistakes_are_three_located_lines_and_a_json_list(project: Path, cli) -> None:
    text, expected = CASES["three in three places"]
    spec = write(project / "specs" / "t.yaml", text)
    result = cli("plan", spec)
    assert result.code == 2
    located = [line for line in result.err.splitlines() if line.startswith(f"{spec}:")]
    assert [int(line.split(":")[1]) for line in located] == [line for line, _, _ in expected]
    assert "Traceback" not in result.err and result.out == ""
    result = cli("plan", spec, "--json")
    assert result.code == 2
    errors = json.loads(result.out)["errors"]
    assert [(e["line"], e["code"]) for e in errors] == [(line, c) for line, c, _ in expected]
    assert all(e["path"] == str(spec) and e["col"] >= 1 and e["hint"] for e in errors)
