"""Sandboxed prompt templates: strict, confined, and clean whitespace."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import templates
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


# -- the time limit is CPU time ----------------------------------------------------------------

# About 0.2 s of CPU here: a heavy template, but well within a limit of 0.5 s.
HEAVY = (
    '{% set s = "x " * 400 %}{% for i in range(4000) %}'
    "{% if (s|wordcount) < 0 %}x{% endif %}{% endfor %}a lighthouse"
)
# The same, for ever (as far as the loop limit goes): seconds of CPU.
RUNS_ON = (
    '{% set s = "x " * 40000 %}\n{% for i in range(90000) %}\n'
    "{% if (s|wordcount) < 0 %}x{% endif %}\n{% endfor %}a\n"
)


def test_a_render_waiting_for_the_machine_is_not_stopped(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A render whose process is not running (here it sleeps, as one descheduled on a busy
    machine waits) uses none of its time: a wall-clock limit stopped it."""
    monkeypatch.setattr(templates, "MAX_SECONDS", 0.2)
    prompts = PromptTemplates((folder,), folder.parent)
    context = {"wait": lambda: time.sleep(0.6) or ""}
    with prompts.limits():
        text = prompts.render(
            template=None, inline="{{ wait() }}a lighthouse", context=context, where=WHERE
        )
    assert text == "a lighthouse"


@pytest.fixture
def one_busy_core() -> Iterator[None]:
    """This process on one core, with six busy loops on the same core: it gets about a
    seventh of it, as a test on a CI runner at load 20 does."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity here")
    before = os.sched_getaffinity(0)
    core = {min(before)}
    loops = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(6)]
    try:
        for loop in loops:
            os.sched_setaffinity(loop.pid, core)
        os.sched_setaffinity(0, core)
        yield
    finally:
        os.sched_setaffinity(0, before)
        for loop in loops:
            loop.kill()
            loop.wait()


def test_a_heavy_template_passes_on_a_loaded_machine(
    folder: Path, monkeypatch: pytest.MonkeyPatch, one_busy_core: None
) -> None:
    monkeypatch.setattr(templates, "MAX_SECONDS", 0.5)
    prompts = PromptTemplates((folder,), folder.parent)
    with prompts.limits():
        text = prompts.render(template=None, inline=HEAVY, context={}, where=WHERE)
    assert text == "a lighthouse"


@pytest.mark.parametrize("thread", ["main thread", "another thread"])
def test_a_template_that_runs_on_is_stopped_at_its_line(
    folder: Path, monkeypatch: pytest.MonkeyPatch, thread: str
) -> None:
    """On the main thread a CPU timer's signal stops it, elsewhere the thread's CPU clock:
    either way, the same located error."""
    monkeypatch.setattr(templates, "MAX_SECONDS", 0.3)
    write(folder / "slow.j2", RUNS_ON)
    prompts = PromptTemplates((folder,), folder.parent)
    caught: list[BaseException] = []

    def render() -> None:
        try:
            with prompts.limits():
                prompts.render(template="slow.j2", inline=None, context={}, where=WHERE)
        except SpecError as exc:
            caught.append(exc)

    if thread == "main thread":
        render()
    else:
        other = threading.Thread(target=render)
        other.start()
        other.join(timeout=120)
    assert len(caught) == 1
    error = caught[0]
    assert isinstance(error, SpecError)
    assert error.path.endswith("slow.j2") and error.line in (2, 3), (error.path, error.line)
    assert error.message == "template limit: the template ran longer than 0.3 s"
