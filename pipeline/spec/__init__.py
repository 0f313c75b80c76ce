"""Storyboard YAML -> validated Storyboard, with every error located as path:line:col."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import Diagnostic, Problems, SpecError
from pipeline.project import project_root
from pipeline.spec import reading
from pipeline.spec.reading import Builder, Including, check_shape, compose, read_text
from pipeline.spec.references import check_references, find_template_dirs
from pipeline.spec.schema import Storyboard
from pipeline.spec.source import SourceMap, mapping_pairs
from pipeline.spec.validation import validated


@dataclass(frozen=True)
class Spec:
    """A loaded storyboard: the validated model, its file, and where its values came from."""

    storyboard: Storyboard
    path: Path
    source: SourceMap
    template_dirs: tuple[Path, ...]
    root: Path  # the project: everything the storyboard reads is inside it
    files: dict[str, Path] = field(default_factory=dict)  # each file it names, checked
    problems: tuple[Diagnostic, ...] = ()  # what is wrong with it, in the order found
    failed: frozenset[str] = frozenset()  # ids of the items a problem is found in
    left_out: frozenset[tuple[Any, ...]] = frozenset()  # fields a problem leaves at default

    @property
    def folder(self) -> Path:
        return self.path.parent

    def stands_in(self, loc: tuple[Any, ...]) -> bool:
        """Whether the value at `loc` is a default standing in for one with a problem (a
        check of it would be a second complaint about one mistake, or a wrong one)."""
        return self.source.original(loc) in self.left_out


def load(path: Path | str) -> Spec:
    """Read, parse and validate a storyboard and what it includes; its problems, every one
    found, are one SpecError."""
    spec = read(path)
    if spec.problems:
        raise SpecError.of(list(spec.problems))
    return spec


def loads(text: str, path: Path | str = "storyboard.yaml") -> Spec:
    """`load`, of a storyboard given as text (as if it were the file `path`: what it names
    is found beside that)."""
    spec = _read(Path(path), text)
    if spec.problems:
        raise SpecError.of(list(spec.problems))
    return spec


def read(path: Path | str) -> Spec:
    """The storyboard at `path` with the problems found in it (`Spec.problems`): a shot,
    still or sequence that does not validate is left out, so that the rest is checked too.
    Raises SpecError only when nothing more can be checked: a file that is no YAML mapping,
    or a mistake outside shots, stills and sequences."""
    return _read(Path(path), None)


def _read(path: Path, given: str | None) -> Spec:
    """The storyboard of `path`, or of the text `given` as that file."""
    texts: dict[str, tuple[str, ...]] = {}
    node = reading.parse(path, texts, given)  # looked up here: tests count what is parsed
    root = project_root(path)
    if isinstance(node, yaml.MappingNode):
        node = Including(root, texts).resolve(path, node, (path.resolve(),))
    source = SourceMap(path, node, texts)
    problems = Problems()
    builder = Builder(path, frozenset(texts), problems=problems)
    data = builder.build(node, "", 0) if node is not None else None
    if not isinstance(data, dict):
        shape = "a storyboard must be a YAML mapping (version:, name:, shots: ...)"
        problems.add(source.error((), shape))
        raise SpecError.of(problems.found)
    valid = validated(source, data, problems)
    storyboard, source = valid.storyboard, replace(source, kept=valid.kept)
    template_dirs = find_template_dirs(source, storyboard, root, problems)
    files = check_references(storyboard, source, template_dirs, root, valid.dropped, problems)
    failed = frozenset(problems.failed | valid.dropped)
    found = tuple(problems.found)
    return Spec(storyboard, path, source, template_dirs, root, files, found, failed, valid.left_out)


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
                text = read_text(path)
                check_shape(path, text)
                node = compose(path, text)
            except SpecError as exc:
                unreadable.append((path, exc.render().splitlines()[0]))
                continue
            if isinstance(node, yaml.MappingNode):
                keys = {
                    k.value for k, _ in mapping_pairs(node, 0) if isinstance(k, yaml.ScalarNode)
                }
                if {"version", "shots"} <= keys:
                    found.append(path)
    return found, unreadable
