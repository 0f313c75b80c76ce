"""What a new user meets in the first hour: which build a command looks at, set-up, and
messages that say what to do."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import write

TINY = """\
version: 1
name: tiny
defaults: {model: acme:1@1, width: 320, height: 180, duration: 6}
shots:
  - {id: a, prompt: a lamp in an empty room}
sequences:
  - {id: s, shots: [a], preset: ultrafast}
"""


def test_each_look_at_a_build_says_which_and_points_at_the_other(project: Path, cli) -> None:
    spec = write(project / "specs" / "tiny.yaml", TINY)
    git(project, "init", "-q")
    git(project, "add", "specs/tiny.yaml")
    git(project, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "tiny")
    assert cli("build", spec, "--preview", "-q").code == 0
    lock = Path("specs") / "tiny.lock"
    for command in ("plan", "status", "diff"):
        result = cli(command, spec)
        assert result.code == 0, result.err
        assert result.out.startswith(
            f"The Runware build (paid renders) of {spec} (not built yet: no {spec.parent / lock.name})"
        ), command
        assert (
            "note: there is a preview build (local animatics: free): add --preview to look at it"
            in result.err
        ), command
        preview = cli(command, spec, "--preview")
        assert preview.out.startswith(
            f"The preview build (local animatics: free) of {spec} ({spec.parent}/tiny.preview.lock)"
        ), command
        assert "note: there is" not in preview.err
    review = cli("review", spec)
    assert "add --preview to look at it" in review.err
    helped = cli("status", "--help")
    assert "look at the preview build (local animatics: free) instead of the Runware" in " ".join(
        helped.out.split()
    )


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


# -- messages ---------------------------------------------------------------------------------

COFFEE = """\
version: 1
name: coffee
defaults: {model: acme:1@1, width: 320, height: 180, duration: 6}
vars:
  flavours: {caramel: {name: Caramel}, mocha: {name: Mocha}}
matrix:
  flavour_id: [caramel, mocha]
shots:
  - id: still
    template: coffee/still.j2
    vars: {flavour: "{{ flavours[flavour_id] }}", also: ["{{ flavour_id }} cup"]}
  - id: other
    prompt: "a cup of {{ flavuor_id }} coffee"
"""


def test_shot_vars_keep_what_their_expression_is(project: Path, cli) -> None:
    import json

    write(
        project / "templates" / "coffee" / "still.j2", "A cup of {{ flavour.name }} ({{ also[0] }})"
    )
    spec = write(project / "specs" / "coffee.yaml", COFFEE.replace("flavuor_id", "flavour_id"))
    result = cli("prompts", spec, "still", "--json")
    assert result.code == 0, result.err
    prompts = sorted(row["prompt"] for row in json.loads(result.out))
    assert prompts == ["A cup of Caramel (caramel cup)", "A cup of Mocha (mocha cup)"]


def test_an_undefined_name_says_whose_prompt_where_and_what_is_defined(project: Path, cli) -> None:
    write(project / "templates" / "coffee" / "still.j2", "A cup of\n  {{ flavour.nmae }}")
    write(project / "specs" / "coffee.yaml", COFFEE)
    result = cli("plan", "specs/coffee.yaml", "--preview")
    assert result.code == 2
    lines = result.err.splitlines()
    # A template file: its path as typed from here, the line and column of the name; the
    # shot, its variant, and where the storyboard names the template.
    assert lines[0] == (
        "specs/coffee.yaml:13:13: shot 'other' [caramel]: undefined variable 'flavuor_id': "
        "did you mean 'flavour_id'?"
    )
    assert lines[1] == "  hint: defined here: flavour_id, flavours"
    assert lines[2] == (
        "templates/coffee/still.j2:2:14: shot 'still' [caramel] (specs/coffee.yaml:10): "
        "flavour has no 'nmae': did you mean 'name'? (it has: name)"
    )
    assert lines[3] == "  hint: defined here: also, flavour, flavour_id, flavours"


def test_patterns_typos_and_missing_files_are_said_in_words(project: Path, cli) -> None:
    write(
        project / "specs" / "words.yaml",
        "version: 1\nname: words\n"
        "shots:\n"
        "  - {id: a, prompt: a lamp, first_frame: assets/nowhere.jpg}\n"
        "  - {id: b, tempalte: x.j2}\n"
        "  - {id: 'c d', prompt: x}\n"
        "sequences:\n  - {id: s, shots: [a], formats: [16x9]}\n",
    )
    result = cli("plan", "specs/words.yaml", "--preview")
    assert result.code == 2
    said = result.err
    assert "specs/words.yaml:4:42: file 'assets/nowhere.jpg' not found" in said
    assert (
        "hint: paths are relative to the storyboard's folder: looked for specs/assets/nowhere.jpg"
        in said
    )
    assert (
        "specs/words.yaml:5:13: shot 'b': unknown field 'tempalte': did you mean 'template'?"
        in said
    )
    assert "specs/words.yaml:6:10: shot 'c d' id: 'c d' is not an id" in said
    assert "specs/words.yaml:8:35: sequence 's' formats[0]: '16x9' is not a format" in said
    assert "hint: write a ratio with a colon (16:9, 9:16, 1:1, 4:5) or a size in pixels" in said
    assert "String should match" not in said and str(project) not in said
