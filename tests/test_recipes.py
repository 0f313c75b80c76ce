"""A node's key is the digest of its recipe: changing one field of a storyboard changes the
key of the node it makes, and of exactly the nodes downstream of it (what starts from its
frame, what is made of it, the films that use it); and a field the join reads cannot escape
the film's key, because `assemble` is given the recipe alone."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from pipeline import assemble
from pipeline.expand import expand
from pipeline.graph import Graph
from pipeline.nodes import (
    CaptionCue,
    Captions,
    Encoding,
    JoinRecipe,
    Logo,
    Piece,
    SafeArea,
    Sound,
    TextLayer,
)
from pipeline.spec import loads
from tests.conftest import REPO

BOARD = """\
version: 1
name: chain
defaults: {resolution: 768p, duration: 6}
voices:
  - {id: vo, text: Hello there., voice: narrator}
music:
  - {id: bed, prompt: warm guitar}
stills:
  - {id: key, prompt: a harbour at dawn}
shots:
  - {id: a, prompt: a boat leaves the harbour, first_frame: {still: key}}
  - {id: b, prompt: the boat at sea, first_frame: {shot: a, frame: last}, upscale: 1080p}
  - {id: c, prompt: a gull calls, lipsync: {voice: vo}}
sequences:
  - id: one
    shots: [a, b]
    audio: {music: bed}
    text: [{text: Sea, shot: a}]
  - {id: two, shots: [c], voice: {voice: vo}}
  - {id: three, shots: [b], voice: {voice: vo}}
"""

# An edit of the storyboard, and what it must change: the renders (by label) and films.
EDITS = [
    ("the still's prompt", ("a harbour at dawn", "a harbour at dusk"),
     {"key", "a", "b", "b/upscale"}, {"one", "three"}),
    ("a shot's prompt", ("a boat leaves", "a ship leaves"),
     {"a", "b", "b/upscale"}, {"one", "three"}),
    ("a shot that is upscaled", ("the boat at sea", "the ship at sea"),
     {"b", "b/upscale"}, {"one", "three"}),
    ("the size films take an upscale at", ("upscale: 1080p", "upscale: 2k"),
     set(), {"one", "three"}),
    ("a lip-synced shot", ("a gull calls", "a gull cries"), {"c", "c/lipsync"}, {"two"}),
    # A film whose clip speaks its voice-over does not mix it again: its clip changes.
    ("the voice", ("Hello there.", "Hello again."), {"vo", "c/lipsync"}, {"two", "three"}),
    ("the bed", ("warm guitar", "cold piano"), {"bed"}, {"one"}),
    ("a film's text", ("text: Sea", "text: Ocean"), set(), {"one"}),
    ("a film's transition", ("shots: [a, b]", "shots: [a, b]\n    transition: {type: crossfade}"),
     set(), {"one"}),
    ("where a voice-over starts",
     ("[b], voice: {voice: vo}}", "[b], voice: {voice: vo}, voice_start: 1}"), set(), {"three"}),
    ("a trim", ("shots: [a, b]", "shots: [a, {shot: b, out: 4}]"), set(), {"one"}),
    ("a film's loudness",
     ("[b], voice: {voice: vo}}", "[b], voice: {voice: vo}, loudness: ebu-r128}"), set(), {"three"}),
    ("captions", ("[b], voice: {voice: vo}}", "[b], voice: {voice: vo}, captions: true}"),
     set(), {"three"}),
]  # fmt: skip


def _keys(text: str, folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    graph = Graph.of(expand(loads(text, folder / "chain.yaml"), "runware"))
    renders = {shot.label: shot.key for shot in graph.renders()}
    films = {film.name: film.key for film in graph.films()}
    return renders, films


@pytest.mark.parametrize(
    ("edit", "change", "renders", "films"), EDITS, ids=[edit[0] for edit in EDITS]
)
def test_one_field_changes_its_node_and_exactly_what_is_downstream(
    tmp_path: Path, edit: str, change: tuple[str, str], renders: set[str], films: set[str]
) -> None:
    old, new = change
    assert old in BOARD
    before = _keys(BOARD, tmp_path)
    after = _keys(BOARD.replace(old, new), tmp_path)
    changed_renders = {label for label, key in before[0].items() if after[0].get(label) != key}
    changed_films = {name for name, key in before[1].items() if after[1].get(name) != key}
    assert (changed_renders, changed_films) == (renders, films)


def _a_recipe() -> JoinRecipe:
    return JoinRecipe(
        pieces=(Piece("k1", 0.0, 6.0, True, None, False, False),),
        transition="cut",
        overlap=0.0,
        width=1366,
        height=768,
        fps=25,
        fit="pad",
        focus=0.5,
        bed=Sound("bed", length=None),
        voice=Sound("vo", at=0.5),
        texts=(TextLayer("Sea", 0.0, 6.0, "bottom", (0.0, 0.0), 0.08, "white", None, True, 0.3, "f"),),
        logo=Logo("img", "top-right", 0.1, 1.0),
        quality=20,
        preset="veryfast",
        loudness=-14.0,
        safe=SafeArea(left=0.06, top=0.14, right=0.06, bottom=0.35),
        encoding=Encoding(8000, 384, "high", 12, 2),
        captions=Captions(("Hello there.",), "vo", 0.5, (CaptionCue(2.0, 3.0, "Hi"),)),
    )  # fmt: skip


def _other(value: Any) -> Any:
    """A different value of the same shape."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 0.25
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        return (*value, value[0])
    if dataclasses.is_dataclass(value):
        first = dataclasses.fields(value)[0]
        return dataclasses.replace(value, **{first.name: _other(getattr(value, first.name))})
    return (*value, 1.0)


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(JoinRecipe)])
def test_every_field_of_a_film_recipe_is_in_its_key(field: str) -> None:
    recipe = _a_recipe()
    changed = dataclasses.replace(recipe, **{field: _other(getattr(recipe, field))})
    assert changed.digest() != recipe.digest()


def test_the_join_is_given_the_recipe_alone() -> None:
    """By construction: assemble() takes a JoinRecipe (and the files it names by key or
    digest), never the film node, and assemble.py does not name the node at all; so every
    field it can read is a field of the recipe, and every field of the recipe is in the key
    (above)."""
    parameters = inspect.signature(assemble.assemble).parameters
    assert parameters["recipe"].annotation == "JoinRecipe"
    source = (REPO / "pipeline" / "assemble.py").read_text(encoding="utf-8")
    names = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    imported = {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert "Film" not in names | imported and "ClipUse" not in names | imported


def _nested_fields() -> list[tuple[str, str]]:
    """Each field of what a recipe holds (a piece, a text layer, the logo, a sound): named
    by the recipe's field and its own."""
    recipe = _a_recipe()
    found = []
    for outer in dataclasses.fields(JoinRecipe):
        value = getattr(recipe, outer.name)
        inner = value[0] if isinstance(value, tuple) and value else value
        if dataclasses.is_dataclass(inner):
            found += [(outer.name, f.name) for f in dataclasses.fields(inner)]
    return found


@pytest.mark.parametrize(("outer", "inner"), _nested_fields())
def test_every_field_of_what_a_recipe_holds_is_in_its_key(outer: str, inner: str) -> None:
    recipe = _a_recipe()
    value = getattr(recipe, outer)
    first = value[0] if isinstance(value, tuple) else value
    other = dataclasses.replace(first, **{inner: _other(getattr(first, inner))})
    changed = (other, *value[1:]) if isinstance(value, tuple) else other
    assert dataclasses.replace(recipe, **{outer: changed}).digest() != recipe.digest()
