"""Validation of a storyboard's values: pydantic's errors as located diagnostics."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from pipeline.errors import Diagnostic, Problems, SpecError, did_you_mean, in_words
from pipeline.spec.reading import LIST_FIELDS
from pipeline.spec.schema import (
    COLOUR_HINT,
    ITEM_WORDS,
    LOUDNESS_HINT,
    PATTERN_WORDS,
    Storyboard,
)
from pipeline.spec.source import SourceMap, child_of


@dataclass(frozen=True)
class Validated:
    """A storyboard as validated: the file's items kept (by section, their indexes), the
    ids of those left out, and where each field left out for a default is written."""

    storyboard: Storyboard
    kept: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dropped: frozenset[str] = frozenset()
    left_out: frozenset[tuple[Any, ...]] = frozenset()


def validated(source: SourceMap, data: dict[str, Any], problems: Problems) -> Validated:
    """The storyboard, each problem of its values added. A field with a problem is left out
    (its default stands in), so that the rest of its item is still checked, and what uses
    the item too: every independent mistake is said in one run (the build never starts
    while there is one). An item that cannot stand without the field (a required one, a
    list entry) is left out whole. Raises when a problem is outside those items (nothing
    else can be trusted)."""
    try:
        return Validated(Storyboard.model_validate(data))
    except ValidationError as exc:
        errors = [_in_data(data, error) for error in exc.errors(include_url=False)]
    problems.found.extend(_diagnostics(source, errors, problems))
    given = data
    data, errors, left_out = _repaired(data, errors)
    try:
        return Validated(Storyboard.model_validate(data), left_out=left_out)
    except ValidationError as exc:
        # What leaving the fields out broke (a required one): not said again, but the
        # items it breaks are left out too.
        errors += [_in_data(data, error) for error in exc.errors(include_url=False)]
    bad: dict[str, set[int]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        section, index = (loc[0], loc[1]) if len(loc) >= 2 else (loc[0] if loc else "", None)
        if section not in LIST_FIELDS or not isinstance(index, int):
            problems.raise_any()
            continue
        bad.setdefault(str(section), set()).add(index)
    kept: dict[str, tuple[int, ...]] = {}
    dropped: set[str] = set()
    trimmed = dict(data)
    for section, indexes in bad.items():
        items = data[section]
        kept[section] = tuple(i for i in range(len(items)) if i not in indexes)
        trimmed[section] = [items[i] for i in kept[section]]
        dropped.update(_item_id(given[section][i]) for i in indexes)
    try:
        storyboard = Storyboard.model_validate(trimmed)
    except ValidationError:  # no shot is left to check the rest against
        raise SpecError.of(problems.found) from None
    return Validated(storyboard, kept, frozenset(dropped - {""}), left_out)


def _in_data(data: Any, error: Any) -> Any:
    """The error with its location as the data spells it: pydantic puts the name of a
    union's member in a location (a sequence entry's `card`), which is no key there."""
    loc = tuple(error["loc"])
    found = _path(data, loc, error["type"] == "missing")
    return {**error, "loc": found if found is not None else loc}


def _path(node: Any, loc: tuple[Any, ...], missing: bool = False) -> tuple[Any, ...] | None:
    """`loc` as a path in `node`, its steps that are no key there left out; None when it
    leads nowhere. Its last step may be a key that is `missing` (a required field); it ends
    at a value written as a shorthand (`16:9` for a format, `-3` for a loudness) when it
    leads nowhere else."""
    if not loc:
        return ()
    step, rest = loc[0], loc[1:]
    if _has(node, step):
        below = _path(node[step], rest, missing)
        if below is not None:
            return (step, *below)
    elif not rest and missing and isinstance(node, dict):
        return (step,)
    skipped = _path(node, rest, missing) if rest else None
    if skipped is None and _has(node, step) and not isinstance(node[step], dict | list):
        return (step,)
    return skipped


def _has(node: Any, step: Any) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)


def _repaired(
    data: dict[str, Any], errors: list[Any]
) -> tuple[dict[str, Any], list[Any], frozenset[tuple[Any, ...]]]:
    """`data` without each field that has a problem (its default stands in), the errors
    that leaving a field out cannot settle (a field that is required, a list entry: leaving
    it out would move every later entry, a problem of a whole item), and the fields left
    out."""
    repaired: dict[str, Any] = copy.deepcopy(data)
    left = []
    left_out = set()
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "missing" or len(loc) < 2 or isinstance(loc[-1], int):
            left.append(error)
            continue
        parent: Any = repaired
        for step in loc[:-1]:
            parent = parent[step] if _has(parent, step) else None
            if parent is None:
                break
        if isinstance(parent, dict) and loc[-1] in parent and loc[0] != "version":
            del parent[loc[-1]]
            left_out.add(loc)
        else:
            left.append(error)
    return repaired, left, frozenset(left_out)


def _item_id(item: Any) -> str:
    """The id a shot, still or sequence that did not validate was given, else ""."""
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else ""


def _diagnostics(source: SourceMap, errors: list[Any], problems: Problems) -> list[Diagnostic]:
    """Pydantic's errors as located diagnostics, the field spelled as in the YAML: one per
    place and kind (a union reports each member's complaint about one value), none where
    reading the YAML already found a problem."""
    said = problems.places()
    found: dict[tuple[str, int, int, str], Diagnostic] = {}
    for error in errors:
        diagnostic = _diagnostic(source, error)
        place = (diagnostic.path, diagnostic.line, diagnostic.col)
        if place not in said:
            found.setdefault((*place, diagnostic.code), diagnostic)
    return list(found.values())


def _diagnostic(source: SourceMap, error: Any) -> Diagnostic:
    loc = tuple(error["loc"])
    field = _field_name(source, loc)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        allowed = _allowed_fields(loc)
        message = f"unknown field '{loc[-1]}'" + did_you_mean(str(loc[-1]), allowed)
        hint = "allowed here: " + ", ".join(allowed)
        where = _field_name(source, loc[:-1])
        said = f"{where}: {message}" if where else message
        return source.diagnostic(loc, said, hint, True, "unknown-field")
    code = "invalid-value"
    if error["type"] == "missing":
        message = f"missing required field '{loc[-1]}'"
        field = _field_name(source, loc[:-1])
        code = "missing-field"
    if loc[-1] in ("color", "box", "background") and error["type"] in (
        "string_pattern_mismatch",
        "value_error",
    ):
        said = message.removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch":
            said = f"{error['input']!r} is not a colour"
        return source.diagnostic(loc, f"{field}: {said}", COLOUR_HINT, code="colour")
    message = message.removeprefix("Value error, ")
    prefix = f"{field}: " if field else ""
    worded = (
        (f"{error['input']} is not a version this tool reads", "write version: 1")
        if loc == ("version",)
        else in_words(error)
    )
    if worded is not None:
        advice = LOUDNESS_HINT if loc[-1] == "loudness" else worded[1]
        return source.diagnostic(loc, f"{prefix}{worded[0]}", advice, code=code)
    if error["type"] == "string_pattern_mismatch":
        noun, accepted = PATTERN_WORDS.get(error["ctx"]["pattern"], ("valid", "see the docs"))
        said = f"{prefix}{error['input']!r} is not {noun}"
        return source.diagnostic(loc, said, f"write {accepted}", code=code)
    return source.diagnostic(loc, f"{prefix}{message}", code=code)


def _field_name(source: SourceMap, loc: tuple[Any, ...]) -> str:
    """The field at `loc` as a person reads the YAML: `shot 'pour' duration`,
    `sequence 'spot' shots[2].duration`, `defaults.fps`; an entry with an id is named by it."""
    text = ""
    node = source.root
    path = source.original(loc)
    for index, step in enumerate(path):
        child = child_of(node, step) if node is not None else None
        if child is None:
            continue
        node = child[1]
        named = _named_entry(path[:index], step, node)
        if named:
            text = named
        elif isinstance(step, int):
            text += f"[{step}]"
        else:
            text += _joint(text) + str(step)
    return text


def _joint(text: str) -> str:
    """What comes before a field's name: nothing first, a space after an entry's name."""
    if not text:
        return ""
    return " " if text.endswith("'") else "."


def _named_entry(before: tuple[Any, ...], step: Any, node: yaml.Node) -> str:
    """`shot 'pour'` for an entry of one of the storyboard's lists that has an id."""
    if len(before) != 1 or not isinstance(step, int) or before[0] not in ITEM_WORDS:
        return ""
    found = child_of(node, "id")
    if found is None or not isinstance(found[1], yaml.ScalarNode):
        return ""
    return f"{ITEM_WORDS[before[0]]} '{found[1].value}'"


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    """The fields allowed where the unknown one at `loc` was found."""
    model: type[BaseModel] = Storyboard
    for step in loc[:-1]:
        field = model.model_fields.get(str(step)) if not isinstance(step, int) else None
        if field is not None:
            model = next(_models_in(field.annotation), model)
    return sorted(info.alias or name for name, info in model.model_fields.items())


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _models_in(arg)
