"""Sandboxed prompt templates: strict, confined, and clean whitespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import SpecError
from pipeline.templates import PromptSource, PromptTemplates, normalise
from tests.conftest import write

WHERE = PromptSource(Path("spec.yaml"), ((10, 5), (11, 5)))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    templates = tmp_path / "templates"
    write(templates / "_macros.j2", "{% macro look(l) %}  {{ l }}\n\n light  {% endmacro %}")
    write(
        templates / "shot.j2",
        '{% import "_macros.j2" as m %}\nA  {{ subject }}\n\n in {{ m.look(light) }}.\n',
    )
    write(tmp_path / "secret.txt", "TOP SECRET")
    return templates


def test_macros_and_whitespace_normalised(folder: Path) -> None:
    prompts = PromptTemplates((folder,), folder.parent)
    text = prompts.render(
        template="shot.j2", inline=None, context={"subject": "cat", "light": "dusk"}, where=WHERE
    )
    assert text == "A cat in dusk light ."
    assert "\n" not in text and "  " not in text


def test_undefined_variable_names_template_line_and_name(folder: Path) -> None:
    prompts = PromptTemplates((folder,), folder.parent)
    with pytest.raises(SpecError) as caught:
        prompts.render(template="shot.j2", inline=None, context={"light": "x"}, where=WHERE)
    error = caught.value
    assert error.path.endswith("shot.j2") and error.line == 2
    assert error.message == "undefined variable 'subject'"


def test_undefined_name_passed_to_a_macro_points_at_the_caller(folder: Path) -> None:
    prompts = PromptTemplates((folder,), folder.parent)
    with pytest.raises(SpecError) as caught:
        prompts.render(template="shot.j2", inline=None, context={"subject": "x"}, where=WHERE)
    # `light` is looked up on line 4 of shot.j2 and only used inside the macro.
    assert caught.value.path.endswith("shot.j2") and caught.value.line == 4
    assert caught.value.message == "undefined variable 'light'"


def test_inline_prompt_error_points_into_the_yaml(folder: Path) -> None:
    prompts = PromptTemplates((folder,), folder.parent)
    with pytest.raises(SpecError) as caught:
        prompts.render(template=None, inline="one\n{{ nope }}", context={}, where=WHERE)
    assert (caught.value.path, caught.value.line) == ("spec.yaml", 11)


@pytest.mark.parametrize(
    "source",
    [
        '{% include "../secret.txt" %}',
        '{% include "/etc/passwd" %}',
        '{% import "../secret.txt" as s %}',
    ],
)
def test_templates_cannot_read_outside_their_folders(folder: Path, source: str) -> None:
    prompts = PromptTemplates((folder,), folder.parent)
    with pytest.raises(SpecError) as caught:
        prompts.render(template=None, inline=source, context={}, where=WHERE)
    assert "may not start with / or hold .." in caught.value.message
    assert "SECRET" not in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ x.__globals__ }}",
    ],
)
def test_templates_cannot_call_unsafe_things(folder: Path, source: str) -> None:
    prompts = PromptTemplates((folder,), folder.parent)
    with pytest.raises(SpecError) as caught:
        prompts.render(template=None, inline=source, context={"x": normalise}, where=WHERE)
    assert "not allowed" in caught.value.message or "undefined" in caught.value.message


def test_normalise() -> None:
    assert normalise("  a\n\n b\t c  ") == "a b c"
