"""Every command takes its options before, between or after its positionals: the orders a
person types are read the same."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import pytest

from pipeline.cli import build_parser

# Per command, ways of typing one command line: each must read as the first does.
ORDERS: dict[str, list[str]] = {
    "init": [
        "init films/launch --name launch",
        "init --name launch films/launch",
    ],
    "plan": [
        "plan specs/x.yaml --why --json --preview -o out --max-shots 9",
        "plan --why --json --preview -o out --max-shots 9 specs/x.yaml",
        "plan --why specs/x.yaml --json --preview --output-dir=out --max-sh 9",
    ],
    "prompts": [
        "prompts specs/x.yaml hero --json --preview",
        "prompts --json --preview specs/x.yaml hero",
        "prompts specs/x.yaml --json hero --preview",
    ],
    "build": [
        "build specs/x.yaml teaser --only pour glove --force glove -j 2 -k -q --max-cost 5",
        "build --only pour glove --force glove -j 2 -k -q --max-cost 5 specs/x.yaml teaser",
        "build --only pour glove specs/x.yaml teaser --force glove -kq -j2 --max-cost=5",
        "build -j 2 specs/x.yaml --only pour glove --max-cost 5 teaser -k --force glove -q",
    ],
    "status": [
        "status specs/x.yaml -v --json --preview",
        "status -v --json --preview specs/x.yaml",
    ],
    "diff": [
        "diff HEAD~2 HEAD specs/x.yaml --json --preview",
        "diff --json --preview HEAD~2 HEAD specs/x.yaml",
        "diff HEAD~2 --json HEAD --preview specs/x.yaml",
    ],
    "export": [
        "export specs/x.yaml teaser --format edl --preview -o out",
        "export --format edl --preview -o out specs/x.yaml teaser",
        "export specs/x.yaml --format=edl teaser --preview --output-dir out",
    ],
    "review": [
        "review specs/x.yaml --serve --port 0 --host 0.0.0.0 --open",
        "review --serve --port 0 --host 0.0.0.0 --open specs/x.yaml",
    ],
    "pick": [
        "pick specs/x.yaml glove 2 --preview --vars look=neon light=dusk --note 'the hands'",
        "pick --preview --vars look=neon light=dusk --note 'the hands' specs/x.yaml glove 2",
        "pick specs/x.yaml --preview glove --note 'the hands' 2 --vars look=neon light=dusk",
    ],
    "approve": [
        "approve specs/x.yaml glove 3 --variant neon --variant dusk",
        "approve --variant neon --variant dusk specs/x.yaml glove 3",
    ],
    "reject": [
        "reject specs/x.yaml glove --another --vars look=neon",
        "reject --vars look=neon --another specs/x.yaml glove",
    ],
    "push": ["push --cache-dir cache"],
    "pull": [
        "pull specs/x.yaml specs/y.yaml --preview --cache-dir cache",
        "pull --preview --cache-dir cache specs/x.yaml specs/y.yaml",
        "pull specs/x.yaml --preview specs/y.yaml --cache-dir cache",
    ],
    "gc": [
        "gc specs other --yes --forget old.yaml --json",
        "gc --yes --forget old.yaml --json specs other",
        "gc specs --forget old.yaml other --yes --json",
    ],
    "schema": ["schema -o schema.json"],
    "completion": ["completion bash"],
}


def _read(line: str) -> dict[str, object]:
    return vars(build_parser().parse_args(shlex.split(line)))


def test_every_command_is_typed_in_several_orders() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(ORDERS) == {name for name in commands.choices if not name.startswith("_")}


@pytest.mark.parametrize("command", ORDERS)
def test_options_before_between_or_after_positionals_read_the_same(command: str) -> None:
    first, *others = ORDERS[command]
    read = _read(first)
    assert read["handler_name"] == command
    for other in others:
        assert _read(other) == read, other


def test_a_var_whose_value_ends_in_yaml_is_a_var() -> None:
    read = _read("pick --vars light=golden.yaml specs/x.yaml glove 2")
    assert (read["spec"], read["vars"]) == (Path("specs/x.yaml"), ["light=golden.yaml"])


def test_a_list_option_ends_at_the_storyboard() -> None:
    read = _read("build --only pour glove specs/x.yaml teaser")
    assert (read["spec"], read["only"], read["sequence"]) == (
        Path("specs/x.yaml"),
        ["pour", "glove"],
        ["teaser"],
    )
    # After the storyboard, a list option takes what follows it, as it always did.
    read = _read("build specs/x.yaml --only pour teaser")
    assert (read["only"], read["sequence"]) == (["pour", "teaser"], [])


def test_a_mistake_is_still_said(capsys: pytest.CaptureFixture[str]) -> None:
    for line, said in (
        ("build --only specs/x.yaml", "--only: expected at least one argument"),
        ("build --only pour", "the following arguments are required: spec"),
        ("pick specs/x.yaml glove", "the following arguments are required: take"),
        ("build specs/x.yaml --jobs", "--jobs: expected one argument"),
    ):
        with pytest.raises(SystemExit) as stopped:
            build_parser().parse_args(shlex.split(line))
        assert stopped.value.code == 2
        assert said in capsys.readouterr().err, line


def test_the_completion_reads_its_words_as_given() -> None:
    words = ["build", "--only", "pour", "specs/x.yaml", "--preview"]
    assert _read("__complete " + " ".join(words))["words"] == words


def test_build_only_before_the_storyboard(project: Path, cli) -> None:
    """As the issue typed it: `build --only SHOT SPEC` renders that shot."""
    result = cli("build", "--preview", "--json", "--only", "glove", "specs/ballroom.yaml")
    assert result.code == 0, result.err
    assert "the following arguments are required" not in result.err
    assert '"rendered": 2' in result.out  # glove's two takes, shared by both lights
