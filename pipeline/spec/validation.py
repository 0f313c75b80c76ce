"""Validation of a storyboard's values: pydantic's errors as located diagnostics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from pipeline.errors import Diagnostic, Problems, SpecError, did_you_mean
from pipeline.spec.reading import LIST_FIELDS
from pipeline.spec.schema import COLOUR_HINT, PATTERN_WORDS, Storyboard
from pipeline.spec.source import SourceMap, child_of


def validated(
    source: SourceMap, data: dict[str, Any], problems: Problems
) -> tuple[Storyboard, dict[str, tuple[int, ...]], frozenset[str]]:
    """The storyboard without the shots, stills and sequences that do not validate, which
    of the file's items are kept, and the ids of those left out; each problem is added.
    Raises when a problem is outside those items (nothing else can be trusted then)."""
    try:
        return Storyboard.model_validate(data), {}, frozenset()
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    problems.found.extend(_diagnostics(source, errors, problems))
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
        dropped.update(_item_id(items[i]) for i in indexes)
    try:
        storyboard = Storyboard.model_validate(trimmed)
    except ValidationError:  # no shot is left to check the rest against
        raise SpecError.of(problems.found) from None
    return storyboard, kept, frozenset(dropped - {""})


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
        return source.diagnostic(
            loc, f"{_field_name(source, loc[:-1])}: {message}", hint, True, "unknown-field"
        )
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
    if error["type"] == "string_pattern_mismatch":
        noun, accepted = PATTERN_WORDS.get(error["ctx"]["pattern"], ("valid", "see the docs"))
        said = f"{prefix}{error['input']!r} is not {noun}"
        return source.diagnostic(loc, said, f"write {accepted}", code=code)
    return source.diagnostic(loc, f"{prefix}{message}", code=code)


def _field_name(source: SourceMap, loc: tuple[Any, ...]) -> str:
    """`shots[2].duration`: the path of a field as a person reads the YAML."""
    text = ""
    node = source.root
    for step in source.original(loc):
        child = child_of(node, step) if node is not None else None
        if child is None:
            continue
        node = child[1]
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


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
