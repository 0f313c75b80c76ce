"""Random and mangled storyboards never produce a traceback: a located error or a plan."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import expand, spec
from pipeline.errors import SpecError
from tests.conftest import REPO

BASE = (REPO / "specs" / "ballroom.yaml").read_text()
YAML_BITS = st.sampled_from(
    [
        ":",
        "-",
        " ",
        "\n",
        "  ",
        "[",
        "]",
        "{",
        "}",
        "&a",
        "*a",
        "!!python/object",
        "'",
        '"',
        "id",
        "shots",
        "prompt",
        "{{",
        "}}",
        "{%",
        "%}",
        "<<",
        "?",
        "|",
        ">",
        "#",
        "\t",
        "1080p",
        "duration",
        "10",
        "-1",
        "null",
        "~",
        "yes",
        "@",
        "`",
        "%YAML",
        "---",
        "...",
    ]
)


def _check(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        loaded = spec.load(path)
        expand.expand(loaded, "preview")
    except SpecError as exc:
        # Each problem located in the storyboard, or in one of its templates, and said once.
        templates = path.parent.parent / "templates"
        for problem in exc.diagnostics:
            # A template's path is said as typed from here (relative to the current folder).
            where = Path(problem.path).resolve()
            assert where == path.resolve() or where.is_relative_to(templates.resolve()), (
                exc.render()
            )
            assert problem.line >= 1 and problem.col >= 1
            assert problem.code and problem.message
        assert len(set(exc.diagnostics)) == len(exc.diagnostics)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(YAML_BITS | st.text(max_size=4), max_size=40))
def test_random_yaml_never_tracebacks(project: Path, parts: list[str]) -> None:
    _check(project / "specs" / "fuzz.yaml", "".join(parts))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, len(BASE)), st.integers(0, 8), YAML_BITS | st.text(max_size=3)),
        min_size=1,
        max_size=4,
    )
)
def test_mangled_example_never_tracebacks(project: Path, edits: list[tuple[int, int, str]]) -> None:
    text = BASE
    for position, removed, inserted in edits:
        text = text[:position] + inserted + text[position + removed :]
    _check(project / "specs" / "fuzz.yaml", text)
