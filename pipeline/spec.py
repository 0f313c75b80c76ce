"""Storyboard YAML -> validated Storyboard, with every error located as path:line:col."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import SpecError

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)]
Scalar = str | int | float | bool
RESOLUTIONS: dict[str, tuple[int, int]] = {"768p": (1366, 768), "1080p": (1920, 1080)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShotSettings(_Strict):
    """Fields a shot may set and `defaults:` may give to every shot."""

    model: str | None = None
    resolution: Literal["768p", "1080p"] | None = None
    width: int | None = Field(default=None, gt=0, le=8192)
    height: int | None = Field(default=None, gt=0, le=8192)
    duration: int | None = Field(default=None, gt=0, le=60)
    fps: int | None = Field(default=None, gt=0, le=120)
    prompt_optimizer: bool | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    takes: int | None = Field(default=None, ge=1, le=16)
    first_frame: str | None = None
    # USD per render, where the catalogue has no price (or the account pays another one).
    price: float | None = Field(default=None, ge=0, le=1000, allow_inf_nan=False)


def _check_axes(value: dict[str, Any], allow_include: bool) -> dict[str, Any]:
    for name, values in value.items():
        if name in ("include", "exclude"):
            if not allow_include:
                raise ValueError(f"'{name}' is only allowed in the storyboard matrix")
            if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
                raise ValueError(f"'{name}' must be a list of mappings of variable to value")
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            raise ValueError(f"matrix variable '{name}' is not a valid name")
        if not isinstance(values, list) or not values:
            raise ValueError(f"matrix variable '{name}' must be a non-empty list of values")
        if not all(isinstance(v, Scalar) for v in values):
            raise ValueError(f"matrix variable '{name}' must list plain values (text or numbers)")
    return value


class ShotSpec(ShotSettings):
    id: Identifier
    template: str | None = None
    prompt: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, Any] | None = None
    pick: int | None = Field(default=None, ge=1)

    @field_validator("matrix")
    @classmethod
    def _matrix_axes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_axes(value, allow_include=False)

    @model_validator(mode="after")
    def _prompt_source(self) -> ShotSpec:
        if self.template is not None and self.prompt is not None:
            raise ValueError("give either 'template' or 'prompt', not both")
        if self.template is None and self.prompt is None and self.first_frame is None:
            raise ValueError("a shot needs a 'template' or a 'prompt' (or a 'first_frame')")
        if self.pick is not None and self.pick > (self.takes or 1):
            raise ValueError(f"pick {self.pick} is more than the shot's {self.takes or 1} takes")
        return self


class Transition(_Strict):
    type: Literal["cut", "crossfade", "fadeblack", "wipeleft", "wiperight"] = "cut"
    duration: float = Field(default=0.5, ge=0, le=5)


class SequenceShot(_Strict):
    """One use of a shot in a sequence, optionally trimmed to [in, out) seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    shot: Identifier
    take: int | None = Field(default=None, ge=1)
    vars: dict[str, Scalar] | None = None
    start: float = Field(default=0.0, ge=0, alias="in")
    end: float | None = Field(default=None, gt=0, alias="out")

    @model_validator(mode="after")
    def _trim_order(self) -> SequenceShot:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"'out' ({self.end}) must be after 'in' ({self.start})")
        return self


class SequenceSpec(_Strict):
    id: Identifier
    shots: list[Identifier | SequenceShot] = Field(min_length=1)
    transition: Transition = Transition()
    fit: Literal["pad", "crop"] = "pad"
    resolution: Literal["768p", "1080p"] | None = None
    width: int | None = Field(default=None, gt=0, le=8192)
    height: int | None = Field(default=None, gt=0, le=8192)
    fps: int | None = Field(default=None, gt=0, le=120)
    audio: str | None = None
    quality: int = Field(default=20, ge=0, le=51)
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
    ] = "veryfast"


class Storyboard(_Strict):
    version: Literal[1]
    name: Identifier
    renderer: Literal["runware", "preview"] = "runware"
    budget: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    # USD per render of a model, for models the catalogue has no price for.
    prices: dict[str, Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    templates: str | None = None
    defaults: ShotSettings = ShotSettings()
    vars: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, Any] | None = None
    shots: list[ShotSpec] = Field(min_length=1)
    sequences: list[SequenceSpec] = Field(default_factory=list)

    @field_validator("matrix")
    @classmethod
    def _matrix_axes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_axes(value, allow_include=True)


@dataclass(frozen=True)
class SourceMap:
    """Where each value of a storyboard came from, so later steps can point at a line."""

    path: Path
    root: yaml.Node | None

    def position(self, loc: tuple[Any, ...], at_key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the value at `loc`, or of its nearest parent."""
        node = self.root
        if node is None:
            return 1, 1
        mark = node.start_mark
        for step in loc:
            child = _child(node, step)
            if child is None:
                continue  # pydantic adds union member names to locations: skip them
            key_node, node = child
            mark = key_node.start_mark if at_key and key_node is not None else node.start_mark
        return mark.line + 1, mark.column + 1

    def error(
        self, loc: tuple[Any, ...], message: str, hint: str | None = None, at_key: bool = False
    ) -> SpecError:
        line, col = self.position(loc, at_key)
        return SpecError(self.path, line, col, message, hint)

    def first(self, *locs: tuple[Any, ...]) -> tuple[Any, ...]:
        """The first of `locs` that the file actually spells out (for inherited settings)."""
        for loc in locs:
            if self.has(loc):
                return loc
        return locs[-1]

    def has(self, loc: tuple[Any, ...]) -> bool:
        node = self.root
        for step in loc:
            child = _child(node, step) if node is not None else None
            if child is None:
                return False
            node = child[1]
        return True


def _child(node: yaml.Node, step: Any) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(step):
                return key_node, value_node
    elif (
        isinstance(node, yaml.SequenceNode)
        and isinstance(step, int)
        and 0 <= step < len(node.value)
    ):
        return None, node.value[step]
    return None


@dataclass(frozen=True)
class Spec:
    """A loaded storyboard: the validated model, its file, and where its values came from."""

    storyboard: Storyboard
    path: Path
    source: SourceMap
    template_dirs: tuple[Path, ...]

    @property
    def folder(self) -> Path:
        return self.path.parent


def load(path: Path | str) -> Spec:
    """Read, parse and validate a storyboard; every problem is a SpecError."""
    path = Path(path)
    text = _read_text(path)
    root = _compose(path, text)
    source = SourceMap(path, root)
    constructor = yaml.constructor.SafeConstructor()
    data = _construct(path, root, set(), constructor) if root is not None else None
    if not isinstance(data, dict):
        raise source.error((), "a storyboard must be a YAML mapping (version:, name:, shots: ...)")
    try:
        storyboard = Storyboard.model_validate(data)
    except ValidationError as exc:
        raise _located(source, exc) from None
    template_dirs = _template_dirs(path, storyboard)
    _check_references(storyboard, source, template_dirs)
    return Spec(storyboard, path, source, template_dirs)


def find_storyboards(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Storyboards under `paths` (files given are taken as they are), and the YAML files that
    could not be read to tell. A file is a storyboard when it parses to a mapping with
    `version` and `shots`; hidden folders and build outputs are skipped."""
    found: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    for root in paths:
        if root.is_file():
            found.append(root)
            continue
        for path in sorted(root.rglob("*.y*ml")):
            parts = path.relative_to(root).parts
            if any(p.startswith(".") or p in ("build", "node_modules") for p in parts):
                continue
            try:
                node = _compose(path, _read_text(path))
            except SpecError as exc:
                unreadable.append((path, exc.render().splitlines()[0]))
                continue
            if isinstance(node, yaml.MappingNode):
                keys = {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
                if {"version", "shots"} <= keys:
                    found.append(path)
    return found, unreadable


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(path, 1, 1, "storyboard file not found") from None
    except IsADirectoryError:
        raise SpecError(path, 1, 1, "is a folder, not a storyboard file") from None
    except UnicodeDecodeError as exc:
        raise SpecError(path, 1, 1, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise SpecError(path, 1, 1, f"cannot read: {exc.strerror}") from None


def _compose(path: Path, text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(path, line, col, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(path, 1, 1, f"invalid YAML: {exc}") from None


def _construct(
    path: Path, node: yaml.Node, active: set[int], constructor: yaml.constructor.SafeConstructor
) -> Any:
    """Plain Python values from YAML nodes, refusing duplicate keys and recursive aliases."""
    if id(node) in active:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        raise SpecError(path, line, col, "recursive YAML alias")
    if isinstance(node, yaml.MappingNode):
        active.add(id(node))
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(path, key_node, active, constructor)
            line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError(path, line, col, "YAML merge keys (<<) are not supported")
            if not isinstance(key, str | int | float | bool) or key is None:
                raise SpecError(path, line, col, "mapping keys must be plain text")
            if key in result:
                raise SpecError(path, line, col, f"duplicate key '{key}'")
            result[key] = _construct(path, value_node, active, constructor)
        active.discard(id(node))
        return result
    if isinstance(node, yaml.SequenceNode):
        active.add(id(node))
        items = [_construct(path, item, active, constructor) for item in node.value]
        active.discard(id(node))
        return items
    try:
        return constructor.construct_object(node)
    except yaml.YAMLError as exc:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        raise SpecError(path, line, col, f"invalid YAML value: {exc}") from None


def _located(source: SourceMap, exc: ValidationError) -> SpecError:
    """The first pydantic error, as path:line:col with the field spelled as in YAML."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    field = _field_name(source, loc)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = f"unknown field '{loc[-1]}'"
        hint = _extra_hint(loc)
        line, col = source.position(loc, at_key=True)
        return SpecError(
            source.path, line, col, f"{_field_name(source, loc[:-1])}: {message}", hint
        )
    if error["type"] == "missing":
        message = f"missing required field '{loc[-1]}'"
        field = _field_name(source, loc[:-1])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    line, col = source.position(loc)
    prefix = f"{field}: " if field else ""
    return SpecError(source.path, line, col, f"{prefix}{message}")


def _field_name(source: SourceMap, loc: tuple[Any, ...]) -> str:
    """`shots[2].duration`: the path of a field as a person reads the YAML."""
    text = ""
    node = source.root
    for step in loc:
        child = _child(node, step) if node is not None else None
        if child is None:
            continue
        node = child[1]
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _extra_hint(loc: tuple[Any, ...]) -> str:
    """The fields allowed where an unknown one was found."""
    model: type[BaseModel] = Storyboard
    for step in loc[:-1]:
        field = model.model_fields.get(str(step)) if not isinstance(step, int) else None
        if field is not None:
            model = next(_models_in(field.annotation), model)
    names = sorted(info.alias or name for name, info in model.model_fields.items())
    return "allowed here: " + ", ".join(names)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _models_in(arg)


def _template_dirs(path: Path, storyboard: Storyboard) -> tuple[Path, ...]:
    """Where templates are looked up: `templates:` if given, else templates/ beside or above."""
    folder = path.parent
    if storyboard.templates is not None:
        return ((folder / storyboard.templates).resolve(),)
    candidates = (folder / "templates", folder.parent / "templates", folder)
    return tuple(c.resolve() for c in candidates if c.is_dir())


def _check_references(storyboard: Storyboard, source: SourceMap, dirs: tuple[Path, ...]) -> None:
    """Cross-field rules pydantic cannot see: unique ids, known shots, files that exist."""
    folder = source.path.parent
    seen: dict[str, int] = {}
    for index, shot in enumerate(storyboard.shots):
        if shot.id in seen:
            raise source.error(
                ("shots", index, "id"),
                f"duplicate shot id '{shot.id}'",
                f"first defined as shots[{seen[shot.id]}]",
            )
        seen[shot.id] = index
        if shot.template is not None and not any((d / shot.template).is_file() for d in dirs):
            looked = ", ".join(str(d) for d in dirs) or "(no templates folder found)"
            raise source.error(
                ("shots", index, "template"),
                f"template '{shot.template}' not found",
                f"looked in: {looked}",
            )
    for loc, name in _file_fields(storyboard):
        if not (folder / name).is_file():
            raise source.error(loc, f"file '{name}' not found", f"paths are relative to {folder}/")
    for loc, message in _size_problems(storyboard):
        raise source.error(loc, message)
    sequence_ids: set[str] = set()
    for s_index, sequence in enumerate(storyboard.sequences):
        if sequence.id in sequence_ids:
            raise source.error(
                ("sequences", s_index, "id"), f"duplicate sequence id '{sequence.id}'"
            )
        sequence_ids.add(sequence.id)
        for e_index, entry in enumerate(sequence.shots):
            shot_id = entry if isinstance(entry, str) else entry.shot
            if shot_id not in seen:
                loc = ("sequences", s_index, "shots", e_index)
                known = ", ".join(seen)
                raise source.error(
                    loc,
                    f"sequence '{sequence.id}' names unknown shot '{shot_id}'",
                    f"shots: {known}",
                )


def _file_fields(storyboard: Storyboard) -> Iterator[tuple[tuple[Any, ...], str]]:
    if storyboard.defaults.first_frame is not None:
        yield ("defaults", "first_frame"), storyboard.defaults.first_frame
    for index, shot in enumerate(storyboard.shots):
        if shot.first_frame is not None:
            yield ("shots", index, "first_frame"), shot.first_frame
    for index, sequence in enumerate(storyboard.sequences):
        if sequence.audio is not None:
            yield ("sequences", index, "audio"), sequence.audio


def _size_problems(storyboard: Storyboard) -> Iterator[tuple[tuple[Any, ...], str]]:
    """`resolution` and `width`/`height` are two spellings of one thing: one at a time, in pairs."""
    groups: list[tuple[tuple[Any, ...], Any]] = [(("defaults",), storyboard.defaults)]
    groups += [(("shots", i), shot) for i, shot in enumerate(storyboard.shots)]
    groups += [(("sequences", i), seq) for i, seq in enumerate(storyboard.sequences)]
    for loc, item in groups:
        if item.resolution is not None and (item.width is not None or item.height is not None):
            yield (*loc, "resolution"), "give either 'resolution' or 'width'/'height', not both"
        if (item.width is None) != (item.height is None):
            missing = "height" if item.height is None else "width"
            yield loc, f"'width' and 'height' go together: '{missing}' is missing"
