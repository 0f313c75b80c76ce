"""A storyboard's YAML read bounded: its files, includes, tags and YAML 1.1 guesses; the
values it holds, with the places they came from."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import Problems, SpecError
from pipeline.models import SAFE_YAML_LOADER
from pipeline.project import (
    ROOT_HINT,
    FileMissing,
    OutsideProject,
    TooLarge,
    project_file,
    read_bounded,
)
from pipeline.spec.schema import ITEM_WORDS

# Limits of a storyboard file: far above any real one, low enough that a hostile one is
# refused in a moment (an alias tree of a few hundred bytes can stand for billions of values).
MAX_YAML_BYTES = 4_000_000
MAX_NODES = 250_000  # values as written
MAX_VALUES = 500_000  # values once aliases are expanded
MAX_ALIAS_VALUES = 100_000  # of those, values that aliases repeat
MAX_DEPTH = 64
_TAG = "tag:yaml.org,2002:"
_MAP = f"{_TAG}map"
_SEQ = f"{_TAG}seq"
_PLAIN_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null")}
# Fields where YAML 1.1's yes/no/on/off mean a boolean; anywhere else they are refused.
BOOLEAN_FIELDS = frozenset({"prompt_optimizer"})
# Fields whose `16:9` is an aspect ratio, not YAML 1.1's sexagesimal number 969.
RATIO_FIELDS = frozenset({"formats", "format"})
_TRUTHS = {"true", "false"}


def read_text(path: Path, limit: int = MAX_YAML_BYTES) -> str:
    """The storyboard's text: a regular file of at most `limit` bytes, in UTF-8."""
    try:
        data = read_bounded(path, limit, path.name)
    except FileMissing:
        raise SpecError(path, 1, 1, "storyboard file not found") from None
    except TooLarge:
        raise SpecError(path, 1, 1, f"larger than {limit:,} bytes: not a storyboard") from None
    except OutsideProject as exc:
        raise SpecError(path, 1, 1, f"{exc}: not a storyboard") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(path, 1, 1, f"not UTF-8 text ({exc.reason})") from None


def _yaml_error(path: Path, text: str, exc: yaml.YAMLError) -> SpecError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return SpecError(path, line, col, f"invalid YAML: {problem}", _layout_hint(text, line))
    return SpecError(path, 1, 1, f"invalid YAML: {exc}")


def _layout_hint(text: str, line: int) -> str | None:
    """Why YAML lost its way near `line`, when the layout says: a tab in the indentation,
    or a line indented differently from the one before it."""
    lines = text.splitlines()[:line]
    for number, content in enumerate(lines, 1):
        if "\t" in content[: len(content) - len(content.lstrip())]:
            return f"line {number} is indented with a tab: YAML indents with spaces only"
    written = [
        (n, c) for n, c in enumerate(lines, 1) if c.strip() and not c.lstrip().startswith("#")
    ]
    if len(written) < 2 or written[-1][0] != line:
        return None
    (before, above), (_, here) = written[-2], written[-1]
    indents = [len(c) - len(c.lstrip(" -")) for c in (above, here)]
    if indents[0] == indents[1]:
        return None
    return (
        f"line {line}'s text starts in column {indents[1] + 1}, line {before}'s in column "
        f"{indents[0] + 1}: the fields of one entry start in one column"
    )


def check_shape(path: Path, text: str) -> None:
    """Refuse, before building anything, a document nested too deep or with too many values:
    libyaml's composer recurses once per level and slows down with deep nesting."""
    depth = nodes = 0
    try:
        for event in yaml.parse(text, Loader=SAFE_YAML_LOADER):
            if isinstance(event, yaml.NodeEvent):
                nodes += 1
                if nodes > MAX_NODES:
                    raise _event_error(path, event, f"more than {MAX_NODES:,} values")
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _event_error(path, event, f"nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _yaml_error(path, text, exc) from None


def _event_error(path: Path, event: yaml.Event, problem: str) -> SpecError:
    return _at_mark(path, event.start_mark, f"the storyboard has {problem}")


def compose(path: Path, text: str) -> yaml.Node | None:
    try:
        return yaml.compose(_Named(text, str(path)), Loader=SAFE_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise _yaml_error(path, text, exc) from None


class _Named(io.StringIO):
    """A YAML file's text under its name: the marks of its nodes carry the name, so a value
    of an included file is located in that file."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def parse(
    path: Path, texts: dict[str, tuple[str, ...]], given: str | None = None
) -> yaml.Node | None:
    text = read_text(path) if given is None else given
    if len(text) > MAX_YAML_BYTES:
        raise SpecError(path, 1, 1, f"larger than {MAX_YAML_BYTES:,} bytes: not a storyboard")
    check_shape(path, text)
    texts[str(path)] = tuple(text.splitlines())
    return compose(path, text)


MAX_INCLUDES = 32
# The most YAML a storyboard and everything it includes may hold together: each file is
# parsed once, however often it is included.
MAX_TOTAL_YAML_CHARACTERS = 8_000_000
# Fields an included file adds to: its shots and sequences come first; its vars, defaults,
# prices and matrix are overridden key by key by the storyboard's.
LIST_FIELDS = frozenset(ITEM_WORDS)  # the lists of items an include adds to
MAP_FIELDS = frozenset({"vars", "defaults", "prices", "matrix"})


@dataclass
class Including:
    """`include:` (a file, or a list of files): YAML files inside the project holding parts
    of a storyboard (shared defaults, vars, shot libraries). Later files override earlier
    ones, and the storyboard overrides them all."""

    root: Path
    texts: dict[str, tuple[str, ...]]
    count: int = 0
    resolved: dict[Path, yaml.MappingNode] = field(default_factory=dict)  # by file, once
    held: int = 0  # characters of YAML read so far, the storyboard's included

    def __post_init__(self) -> None:
        self.held = sum(_characters(lines) for lines in self.texts.values())

    def resolve(
        self, path: Path, node: yaml.MappingNode, chain: tuple[Path, ...]
    ) -> yaml.MappingNode:
        found = next(
            (
                (k, v)
                for k, v in node.value
                if isinstance(k, yaml.ScalarNode) and k.value == "include"
            ),
            None,
        )
        if found is None:
            return node
        key_node, value_node = found
        rest = yaml.MappingNode(
            _MAP, [p for p in node.value if p[0] is not key_node], node.start_mark, node.end_mark
        )
        merged: yaml.MappingNode | None = None
        for name_node in self._names(path, value_node):
            included = self._included(path, name_node, chain)
            merged = included if merged is None else _merge(merged, included, top_level=True)
        return rest if merged is None else _merge(merged, rest, top_level=True)

    def _names(self, path: Path, node: yaml.Node) -> list[yaml.Node]:
        names = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for name in names:
            if not isinstance(name, yaml.ScalarNode) or name.tag != f"{_TAG}str":
                raise _node_error(path, name, "include: takes a file name, or a list of them")
        return list(names)

    def _included(
        self, path: Path, name_node: yaml.Node, chain: tuple[Path, ...]
    ) -> yaml.MappingNode:
        name = str(name_node.value)
        try:
            file = project_file(name, path.parent, self.root)
        except FileMissing as exc:
            hint = f"relative to {path.parent}/"
            raise _node_error(path, name_node, f"include: {exc}", hint) from None
        except OutsideProject as exc:
            hint = ROOT_HINT.format(root=self.root)
            raise _node_error(path, name_node, f"include: {exc}", hint) from None
        if file in chain:
            loop = " -> ".join(p.name for p in (*chain, file))
            raise _node_error(path, name_node, f"include: a loop ({loop})")
        self.count += 1
        if self.count > MAX_INCLUDES:
            raise _node_error(path, name_node, f"include: more than {MAX_INCLUDES} files")
        if file in self.resolved:  # included before, by another file: parsed once
            return self.resolved[file]
        shown = path.parent / name  # as the storyboard spells it, for messages
        node = parse(shown, self.texts)
        self.held += _characters(self.texts[str(shown)])
        if self.held > MAX_TOTAL_YAML_CHARACTERS:
            raise _node_error(
                path,
                name_node,
                f"include: the storyboard and its includes hold over "
                f"{MAX_TOTAL_YAML_CHARACTERS:,} characters of YAML",
            )
        if not isinstance(node, yaml.MappingNode):
            raise _node_error(
                path, name_node, f"include: '{name}' is not a YAML mapping (vars:, shots: ...)"
            )
        self.resolved[file] = self.resolve(shown, node, (*chain, file))
        return self.resolved[file]


def _characters(lines: tuple[str, ...]) -> int:
    return sum(len(line) + 1 for line in lines)


def _merge(base: yaml.MappingNode, top: yaml.MappingNode, top_level: bool) -> yaml.MappingNode:
    """`base` with `top` over it, as an include reads: key by key, `top` winning; at the top
    level shots and sequences are joined and vars, defaults, prices and matrix merged."""
    for mapping in (base, top):
        _refuse_duplicates(mapping)
    over = {k.value: (k, v) for k, v in top.value if isinstance(k, yaml.ScalarNode)}
    pairs = []
    for key_node, value_node in base.value:
        name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if name not in over:
            pairs.append((key_node, value_node))
            continue
        top_key, top_value = over[name]
        kinds = type(value_node), type(top_value)
        if top_level and name in LIST_FIELDS and kinds == (yaml.SequenceNode,) * 2:
            joined = yaml.SequenceNode(
                _SEQ,
                [*value_node.value, *top_value.value],
                top_value.start_mark,
                top_value.end_mark,
            )
            pairs.append((top_key, joined))
        elif top_level and name in MAP_FIELDS and kinds == (yaml.MappingNode,) * 2:
            pairs.append((top_key, _merge(value_node, top_value, top_level=False)))
        else:
            pairs.append((top_key, top_value))
        del over[name]
    pairs += [(k, v) for k, v in top.value if not isinstance(k, yaml.ScalarNode) or k.value in over]
    return yaml.MappingNode(_MAP, pairs, top.start_mark, top.end_mark)


def _refuse_duplicates(mapping: yaml.MappingNode) -> None:
    """A key given twice is an error before mappings are merged (merging would hide it)."""
    seen: set[str] = set()
    for key_node, _ in mapping.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:
                path = Path(key_node.start_mark.name)
                raise _node_error(path, key_node, f"duplicate key '{key_node.value}'")
            seen.add(key_node.value)


def _node_error(path: Path, node: yaml.Node, message: str, hint: str | None = None) -> SpecError:
    return _at_mark(path, node.start_mark, message, hint)


def _at_mark(
    path: Path | str, mark: Any, message: str, hint: str | None = None, code: str = "yaml"
) -> SpecError:
    """An error at a YAML mark (0-based) as path:line:col (1-based)."""
    return SpecError(path, mark.line + 1, mark.column + 1, message, hint, code)


MERGE = f"{_TAG}merge"
_TIMESTAMP = f"{_TAG}timestamp"
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")
_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")


@dataclass
class Builder:
    """Plain Python values from YAML nodes. Problems added to `problems`, the value read as
    best it can be: duplicate keys (the first kept), keys that are not text (left out),
    tags other than YAML's plain ones (null), and the values YAML 1.1 reads as something
    else than they look (`no` as false; kept as the text). Raised: recursive aliases and
    aliases that expand past the limits."""

    path: Path
    files: frozenset[str] = frozenset()  # the files the nodes come from (includes)
    problems: Problems = field(default_factory=lambda: Problems())
    values: int = 0
    repeated: int = 0
    seen: set[int] = field(default_factory=set)
    active: set[int] = field(default_factory=set)
    constructor: yaml.constructor.SafeConstructor = field(
        default_factory=yaml.constructor.SafeConstructor
    )

    def build(self, node: yaml.Node, name: str, depth: int) -> Any:
        """The value of `node`, the value of the field `name` (for what YAML 1.1 means)."""
        self._count(node, depth)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in self.active:
                raise self._error(node, "recursive YAML alias")
            if node.tag != (_MAP if isinstance(node, yaml.MappingNode) else _SEQ):
                self.problems.add(self._tag_error(node))
                return None
            self.active.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, depth)
                return [self.build(item, name, depth + 1) for item in node.value]
            finally:
                self.active.discard(id(node))
        return self._scalar(node, name)

    def _count(self, node: yaml.Node, depth: int) -> None:
        self.values += 1
        if id(node) in self.seen:
            self.repeated += 1
        else:
            self.seen.add(id(node))
        if depth > MAX_DEPTH:
            raise self._error(node, f"aliases nest values deeper than {MAX_DEPTH} levels")
        if self.values > MAX_VALUES or self.repeated > MAX_ALIAS_VALUES:
            raise self._error(
                node,
                f"YAML aliases expand to more than {min(MAX_VALUES, MAX_ALIAS_VALUES):,} values",
                "an alias repeats what its anchor holds: aliases of aliases multiply",
            )

    def _mapping(self, node: yaml.MappingNode, depth: int) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                for source in self._merge_sources(value_node):
                    for key, value in self.build(source, "<<", depth + 1).items():
                        merged.setdefault(key, value)  # the first source given wins
                continue
            key = self.build(key_node, "", depth + 1)
            if not isinstance(key, str | int | float | bool) or key is None:
                self.problems.add(self._error(key_node, "mapping keys must be plain text"))
                continue
            if key in result:
                self.problems.add(self._error(key_node, f"duplicate key '{key}'", code="key"))
                continue
            result[key] = self.build(value_node, str(key), depth + 1)
        return {**merged, **result}

    def _merge_sources(self, node: yaml.Node) -> list[yaml.Node]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not all(isinstance(s, yaml.MappingNode) for s in sources):
            raise self._error(
                node, "a merge key (<<) takes a mapping, such as *base, or a list of them"
            )
        return list(sources)

    def _scalar(self, node: yaml.Node, name: str) -> Any:
        tag, text = node.tag, str(node.value)
        if tag == _TIMESTAMP:
            return text  # a date stays text: templates get no date objects to call
        if tag not in _PLAIN_TAGS:
            self.problems.add(self._tag_error(node))
            return None
        if not getattr(node, "style", None):  # plain (None, or "" from libyaml): YAML guesses
            if name in RATIO_FIELDS and _SEXAGESIMAL.match(text):
                return text
            problem = self._guess_problem(node, tag, text, name)
            if problem is not None:
                self.problems.add(problem)
                return text
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            raise self._error(node, f"invalid YAML value: {str(exc).splitlines()[0]}") from None

    def _guess_problem(self, node: yaml.Node, tag: str, text: str, name: str) -> SpecError | None:
        if tag == f"{_TAG}bool" and text.lower() not in _TRUTHS and name not in BOOLEAN_FIELDS:
            meaning = str(self.constructor.construct_object(node)).lower()
            return self._error(
                node,
                f"'{text}' is read by YAML 1.1 as the boolean {meaning}, not as the text '{text}'",
                f"write '{text}' in quotes for the text, or {meaning} for a boolean",
                "yaml-1.1",
            )
        if tag in (f"{_TAG}int", f"{_TAG}float") and (
            _SEXAGESIMAL.match(text) or _OCTAL.match(text)
        ):
            number = self.constructor.construct_object(node)
            return self._error(
                node,
                f"'{text}' is read by YAML 1.1 as the number {number}",
                f"write '{text}' in quotes for the text, or {number} for the number",
                "yaml-1.1",
            )
        return None

    def _tag_error(self, node: yaml.Node) -> SpecError:
        if node.tag == MERGE:
            return self._error(
                node, "'<<' merges a mapping in, as a key: `<<: *base`", code="yaml-tag"
            )
        if node.tag == "!include":
            return self._error(
                node,
                "YAML tag '!include' is not supported",
                "write `include: [file.yaml]` "
                "at the top of the storyboard: its vars, defaults, shots... are merged in",
                "yaml-tag",
            )
        return self._error(
            node,
            f"YAML tag '{node.tag}' is not supported",
            "a storyboard holds text, numbers, true/false, null, lists and mappings only",
            "yaml-tag",
        )

    def _error(
        self, node: yaml.Node, message: str, hint: str | None = None, code: str = "yaml"
    ) -> SpecError:
        mark = node.start_mark
        path = mark.name if mark.name in self.files else self.path
        return _at_mark(path, mark, message, hint, code)
