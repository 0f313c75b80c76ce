"""Where each value of a storyboard came from: file, line and column, for located errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import Diagnostic, SpecError
from pipeline.spec.reading import MAX_DEPTH, MERGE


@dataclass(frozen=True)
class SourceMap:
    """Where each value of a storyboard came from (its file, line and column), so later steps
    can point at it; values of included files point into those files."""

    path: Path
    root: yaml.Node | None
    texts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # lines of each file
    # Where items of a section that did not validate were left out: (section, i) of the
    # storyboard read is (section, kept[section][i]) of the file.
    kept: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def original(self, loc: tuple[Any, ...]) -> tuple[Any, ...]:
        """`loc` of the storyboard read, as the file spells it (items left out counted)."""
        if len(loc) > 1 and loc[0] in self.kept and isinstance(loc[1], int):
            kept = self.kept[loc[0]]
            if 0 <= loc[1] < len(kept):
                return (loc[0], kept[loc[1]], *loc[2:])
        return loc

    def node(self, loc: tuple[Any, ...]) -> yaml.Node | None:
        """The node at `loc`, or None when the file does not spell it out."""
        node = self.root
        for step in self.original(loc):
            child = child_of(node, step) if node is not None else None
            if child is None:
                return None
            node = child[1]
        return node

    def where(self, loc: tuple[Any, ...], at_key: bool = False) -> tuple[Path, int, int]:
        """File, line and column (1-based) of the value at `loc`, or of its nearest parent."""
        node = self.root
        if node is None:
            return self.path, 1, 1
        mark = node.start_mark
        for step in self.original(loc):
            child = child_of(node, step)
            if child is None:
                continue  # pydantic adds union member names to locations: skip them
            key_node, node = child
            mark = key_node.start_mark if at_key and key_node is not None else node.start_mark
        return self._file(mark), mark.line + 1, mark.column + 1

    def position(self, loc: tuple[Any, ...], at_key: bool = False) -> tuple[int, int]:
        _, line, col = self.where(loc, at_key)
        return line, col

    def text_lines(self, loc: tuple[Any, ...]) -> tuple[Path, tuple[tuple[int, int], ...]]:
        """The file of the text at `loc`, and the (line, column) there of each of its lines,
        so that an error on line k of an inline template points at the file's line: exact
        for `|` blocks, where lines are kept; in folded and plain text a blank line starts
        the next line."""
        node = self.node(loc)
        path, line, col = self.where(loc)
        lines = self.texts.get(str(path), ())
        if not isinstance(node, yaml.ScalarNode) or not lines:
            return path, ((line, col),)
        first, last = node.start_mark.line, min(node.end_mark.line, len(lines) - 1)
        if node.style == "|":
            kept = tuple((i + 1, _indent(lines[i]) + 1) for i in range(first + 1, last + 1))
            return path, kept or ((line, col),)
        if node.style == ">":
            first += 1
            if first > last:
                return path, ((line, col),)
            col = _indent(lines[first]) + 1
        starts = [(first + 1, col)]
        for index in range(first + 1, last + 1):
            if not lines[index].strip():
                after = next((i for i in range(index + 1, last + 1) if lines[i].strip()), index)
                starts.append((after + 1, _indent(lines[after]) + 1))
        return path, tuple(starts)

    def error(
        self,
        loc: tuple[Any, ...],
        message: str,
        hint: str | None = None,
        at_key: bool = False,
        code: str = "invalid",
        about: tuple[str, ...] = (),
    ) -> SpecError:
        return SpecError.of([self.diagnostic(loc, message, hint, at_key, code, about)])

    def diagnostic(
        self,
        loc: tuple[Any, ...],
        message: str,
        hint: str | None = None,
        at_key: bool = False,
        code: str = "invalid",
        about: tuple[str, ...] = (),
    ) -> Diagnostic:
        path, line, col = self.where(loc, at_key)
        return Diagnostic(code, str(path), line, col, message, hint, about)

    def _file(self, mark: Any) -> Path:
        return Path(mark.name) if str(mark.name) in self.texts else self.path

    def first(self, *locs: tuple[Any, ...]) -> tuple[Any, ...]:
        """The first of `locs` that the file actually spells out (for inherited settings)."""
        for loc in locs:
            if self.has(loc):
                return loc
        return locs[-1]

    def has(self, loc: tuple[Any, ...]) -> bool:
        return self.node(loc) is not None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def child_of(node: yaml.Node, step: Any) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in mapping_pairs(node, 0):
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(step):
                return key_node, value_node
    elif (
        isinstance(node, yaml.SequenceNode)
        and isinstance(step, int)
        and 0 <= step < len(node.value)
    ):
        return None, node.value[step]
    return None


def mapping_pairs(node: yaml.MappingNode, depth: int) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    """A mapping's keys as written, then the ones it merges in (`<<: *base`), as YAML reads
    them: a value merged in points at the line where it is written."""
    merged = []
    for key_node, value_node in node.value:
        if key_node.tag == MERGE:
            merged.append(value_node)
        else:
            yield key_node, value_node
    for value_node in merged:
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if isinstance(source, yaml.MappingNode) and depth < MAX_DEPTH:
                yield from mapping_pairs(source, depth + 1)
