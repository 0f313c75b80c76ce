"""Decisions on a storyboard's takes, kept in git beside it, one file per build as the locks
are: `specs/ballroom.picks.yaml` for the paid build, `specs/ballroom.preview.picks.yaml` for
the preview build. A build reads only its own: a pick on an animatic never changes a paid film.

One line per shot (and variant): the take picked, approved or rejected, how many takes were
asked for beyond the storyboard's, a note, who and when.

    hero: {take: 2, verdict: approved, by: Ana <ana@example.com>, at: '2026-12-02T04:31:07Z'}
    hero [caramel-ja]: {take: 3, verdict: rejected, more: 1, note: too dark, by: ..., at: ...}

A line without a variant holds for every variant a line of its own does not name. Lines are
sorted and each one stands alone, so that two people's decisions diff and merge as text. The
file wins over `pick:` in the storyboard. A decision never renders anything: asking for
another take adds a render that `storyboard build` makes (and prices, as `plan` does).

The file comes from git like the storyboard, so it is read as one: a bounded read of a
regular file inside the project, no YAML tags, a merge conflict left in it said as one. It is
written by one process at a time (a lock under the project's .storyboard/), and what is
about to be written is read back first: nothing that would not read back lands.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import Diagnostic, SpecError, UserError, shown
from pipeline.project import ROOT_HINT, OutsideProject, confined, project_root, read_bounded
from pipeline.spec.reading import check_shape, compose

if TYPE_CHECKING:
    from pipeline.render import RendererKind

SUFFIX = ".picks.yaml"  # the paid build's
PREVIEW_SUFFIX = ".preview.picks.yaml"  # the preview build's, as its lock is `.preview.lock`
PAID_BUILD, PREVIEW_BUILD = "paid build", "preview build"
# Where writers of a decisions file queue: under the project's .storyboard/, which git does
# not track, so that a repository cannot ship the lock file (or a link in its place).
LOCK_FOLDER = (".storyboard", "decisions")
MAX_BYTES = 4_000_000  # a campaign of 10,000 shots' decisions with notes fits
MAX_NOTE = 1000
MAX_BY = 200
MAX_MORE = 20  # takes asked for beyond the storyboard's: a typo must not order a hundred
Verdict = Literal["approved", "rejected"]
APPROVED: Verdict = "approved"
REJECTED: Verdict = "rejected"
HEADER = (
    "# Decisions on the takes of the {build} of {name}: `storyboard pick / approve / reject`\n"
    "# and `storyboard review --serve` write this file; it wins over `pick:` in the storyboard.\n"
    "# One line per shot, or per shot and variant: `shot [variant]: {{take: 2, verdict: "
    "approved}}`.\n"
)
_NAME = re.compile(r"^(?P<label>[^\s\[\]]+)(?: \[(?P<variant>[^\[\]]+)\])?$")
_YAML = "tag:yaml.org,2002:"
_MAP = f"{_YAML}map"
_PLAIN = frozenset(f"{_YAML}{name}" for name in ("str", "int", "float", "bool", "null"))
# A line git leaves where a merge conflicted: `<<<<<<< HEAD`, `=======`, `>>>>>>> theirs`.
_CONFLICT = re.compile(r"^(<{7}|\|{7}|={7}|>{7})(?=\s|$)", re.M)
# Characters a terminal acts on (escape sequences, bidirectional overrides): a name from git
# config or a note may hold them, and every decision is printed somewhere.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Half of a character: what Python makes of bytes that are not UTF-8 on a command line, or
# of half an emoji in JSON. No file can hold it as text.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _one_line(value: str) -> str:
    return " ".join(_CONTROL.sub(" ", value).split())


class Decision(BaseModel):
    """What was decided on one shot in one variant (or in all of them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    take: int | None = Field(default=None, ge=1)
    verdict: Verdict | None = None
    more: int = Field(default=0, ge=0, le=MAX_MORE)
    note: str = Field(default="", max_length=MAX_NOTE)
    by: str = Field(default="", max_length=MAX_BY)
    at: str = Field(default="", max_length=40)

    @field_validator("note", "by")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return _one_line(value)


@dataclass(frozen=True)
class Decided:
    """A decision as the file holds it: the line it is on."""

    decision: Decision
    line: int


@dataclass(frozen=True)
class Decisions:
    """The decisions file of one build of a storyboard, read: by (label, variant), variant
    "" for all."""

    path: Path
    entries: dict[tuple[str, str], Decided] = field(default_factory=dict)
    paid: bool = True  # the paid build's file, else the preview build's
    # What is wrong in the file, each problem located (its line is left out of `entries`):
    # said with the storyboard's own problems, all at once.
    problems: tuple[Diagnostic, ...] = ()

    @property
    def build(self) -> str:
        return PAID_BUILD if self.paid else PREVIEW_BUILD

    @property
    def named(self) -> str:
        """The build and its file, as messages that say a decision was written name them:
        `preview build: specs/reel.preview.picks.yaml`."""
        return f"{self.build}: {shown(self.path)}"

    def find(self, shot_id: str, label: str, variant: str) -> tuple[str, Decided] | None:
        """The decision that holds for a shot's render (by its label, else its id) in a
        variant, and the name of its line; the variant's own line comes first."""
        for name in dict.fromkeys((label, shot_id)):
            for among in dict.fromkeys((variant, "")):
                decided = self.entries.get((name, among))
                if decided is not None:
                    return line_name(name, among), decided
        return None

    def where(self, decided: Decided) -> str:
        return f"{self.path}:{decided.line}"


Changes = Mapping[tuple[str, str], Decision | None]  # None removes a line
Result = TypeVar("Result")


def decisions_path(spec_path: Path, build: RendererKind) -> Path:
    """`specs/ballroom.yaml` -> `specs/ballroom.picks.yaml` for a paid build,
    `specs/ballroom.preview.picks.yaml` for a free one."""
    return spec_path.with_name(spec_path.stem + (SUFFIX if build.paid else PREVIEW_SUFFIX))


def line_name(label: str, variant: str) -> str:
    return f"{label} [{variant}]" if variant else label


def read(spec_path: Path, build: RendererKind, root: Path | None = None) -> Decisions:
    """The decisions of one build of a storyboard, from that build's file alone (none when
    it is absent), with what is wrong in the file. `root` is the project (else found from
    the storyboard)."""
    empty = Decisions(decisions_path(spec_path, build), paid=build.paid)
    found, problems = read_file(empty, root or project_root(spec_path))
    return replace(found, problems=tuple(problems))


def read_file(file: Decisions, root: Path) -> tuple[Decisions, list[Diagnostic]]:
    """The decisions in the file `file` names, read afresh."""
    empty = Decisions(file.path, paid=file.paid)
    if not os.path.lexists(file.path):
        return empty, []
    try:
        text = _text(file.path, root)
    except SpecError as exc:
        return empty, list(exc.diagnostics)
    return parse(empty, text)


def _text(path: Path, root: Path) -> str:
    """The file's text, read as every file a repository ships is: a regular file of at
    most MAX_BYTES. Through a link only as a template is: to a visible file inside the
    project."""
    try:
        if Path(os.path.realpath(path)) != Path(os.path.realpath(path.parent)) / path.name:
            confined(path, root, path.name)
        data = read_bounded(path, MAX_BYTES, path.name)
    except OutsideProject as exc:
        hint = ROOT_HINT.format(root=root)
        raise SpecError(path, 1, 1, str(exc), hint, code="decision") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(path, 1, 1, f"not UTF-8 text ({exc.reason})", code="decision") from None


def parse(file: Decisions, text: str) -> tuple[Decisions, list[Diagnostic]]:
    """The decisions `text` holds, as the file `file` names, and its problems located."""
    path = file.path
    empty = Decisions(path, paid=file.paid)
    conflict = _conflict(path, text)
    if conflict is not None:
        return empty, [conflict]
    try:
        check_shape(path, text)
        node = compose(path, text)
    except SpecError as exc:
        return empty, list(exc.diagnostics)
    if node is None:
        return empty, []
    if not isinstance(node, yaml.MappingNode) or node.tag != _MAP:
        return empty, [_at(path, node, "the decisions file must be a mapping of `shot: {...}`")]
    entries: dict[tuple[str, str], Decided] = {}
    problems: list[Diagnostic] = []
    for key_node, value_node in node.value:
        found = _entry(path, key_node, value_node, problems)
        if found is None:
            continue
        name, decided = found
        if name in entries:
            shown = line_name(*name)
            problems.append(
                _at(path, key_node, f"'{shown}' is decided twice (line {entries[name].line})")
            )
            continue
        entries[name] = decided
    return Decisions(path, entries, file.paid), problems


def _conflict(path: Path, text: str) -> Diagnostic | None:
    """The first line a git merge left conflicted in the file, said as a problem."""
    found = _CONFLICT.search(text)
    if found is None:
        return None
    return Diagnostic(
        "decision",
        str(path),
        text.count("\n", 0, found.start()) + 1,
        1,
        f"a git merge conflict is left in the decisions file ({found.group(1)})",
        "resolve the merge: keep one line per shot (both sides' lines of different shots) "
        "and delete the <<<<<<<, ======= and >>>>>>> lines",
    )


def _entry(
    path: Path, key_node: yaml.Node, value_node: yaml.Node, problems: list[Diagnostic]
) -> tuple[tuple[str, str], Decided] | None:
    """One line of the file, or None with its problems said."""
    tagged = _tagged(path, key_node, value_node)
    if tagged is not None:
        problems.append(tagged)
        return None
    matched = _NAME.match(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
    if matched is None:
        shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "this key"
        problems.append(
            _at(
                path,
                key_node,
                f"'{shown}' names no shot: write `shot` or `shot [variant]`",
            )
        )
        return None
    label, variant = matched["label"], matched["variant"] or ""
    shown = line_name(label, variant)
    if not isinstance(value_node, yaml.MappingNode) or not all(
        isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)
        for k, v in value_node.value
    ):
        problems.append(
            _at(path, value_node, f"decision '{shown}': write {{take: 2, verdict: approved}}")
        )
        return None
    fields = {
        k.value: (v.value if v.tag != "tag:yaml.org,2002:null" else None)
        for k, v in value_node.value
    }
    values = {k: v for k, v in fields.items() if v not in (None, "")}
    try:
        decision = Decision.model_validate(values)
    except ValidationError as exc:
        nodes = {k.value: (k, v) for k, v in value_node.value}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            extra = error["type"] == "extra_forbidden"
            hint = f"a decision has {', '.join(Decision.model_fields)}" if extra else None
            message = f"decision '{shown}': {name}: {error['msg'].lower()}"
            at = nodes[name][0 if extra else 1] if name in nodes else value_node
            problems.append(_at(path, at, message, hint))
        return None
    return (label, variant), Decided(decision, key_node.start_mark.line + 1)


def _tagged(path: Path, key_node: yaml.Node, value_node: yaml.Node) -> Diagnostic | None:
    """A YAML tag on a line (`take: !!python/object ...`, `note: !mine x`), said as a
    problem: a decisions file holds plain values, as a storyboard does."""
    nodes = [key_node, value_node]
    if isinstance(value_node, yaml.MappingNode):
        nodes += [node for pair in value_node.value for node in pair]
    for node in nodes:
        plain = node.tag == _MAP if isinstance(node, yaml.MappingNode) else node.tag in _PLAIN
        if not plain and not isinstance(node, yaml.SequenceNode):
            tag = node.tag.replace(_YAML, "!!", 1)
            return _at(
                path,
                node,
                f"the YAML tag {tag} is not read in a decisions file",
                "write plain values: `shot: {take: 2, verdict: approved, note: text}`",
            )
    return None


def _at(path: Path, node: yaml.Node, message: str, hint: str | None = None) -> Diagnostic:
    mark = node.start_mark
    return Diagnostic("decision", str(path), mark.line + 1, mark.column + 1, message, hint)


def render(file: Decisions, entries: Mapping[tuple[str, str], Decision]) -> str:
    """The file's text: a header, then a line per decision, sorted by shot and variant."""
    name = file.path.name.removesuffix(SUFFIX if file.paid else PREVIEW_SUFFIX)
    lines = [HEADER.format(build=file.build, name=name)]
    for label, variant in sorted(entries):
        fields = entries[(label, variant)].model_dump(exclude_defaults=True)
        dumped = yaml.safe_dump(
            {line_name(label, variant): fields},
            default_flow_style=None,
            sort_keys=False,
            allow_unicode=True,
            width=1_000_000,
        )
        lines.append(dumped)
    return "".join(lines)


def update(
    file: Decisions, root: Path, work: Callable[[Decisions], tuple[Changes, Result]]
) -> Result:
    """Change the decisions file `file` names, one process at a time: under its lock the
    file as it is now is read, `work` says what changes (and what to return), and the new
    text is written atomically once it reads back as exactly those decisions."""
    with _exclusive(file.path, root):
        current, problems = read_file(file, root)
        if problems:
            error = SpecError.of(problems)
            error.hint = error.hint or "fix the decisions file first: nothing was written"
            raise error
        changes, result = work(current)
        _land(current, changes)
    return result


def write(file: Decisions, root: Path, changes: Changes) -> Path:
    """Apply `changes` to the decisions file `file` names (see `update`)."""
    update(file, root, lambda current: (changes, None))
    return file.path


def _land(current: Decisions, changes: Changes) -> None:
    """Write the decisions `current` holds with `changes` applied, if they read back."""
    from pipeline.cache import write_atomic

    entries = {name: decided.decision for name, decided in current.entries.items()}
    for name, decision in changes.items():
        if decision is None:
            entries.pop(name, None)
        else:
            entries[name] = decision
    text = render(current, entries)
    back, problems = parse(current, text)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        problems.append(Diagnostic("decision", str(current.path), 1, 1, exc.reason))
    if problems or {name: d.decision for name, d in back.entries.items()} != entries:
        why = problems[0].message if problems else "they read back as others"
        raise UserError(
            f"{current.path}: the decisions would not read back as written ({why})",
            "nothing was written",
        )
    write_atomic(current.path, data)


@contextlib.contextmanager
def _exclusive(path: Path, root: Path) -> Iterator[None]:
    """The decisions file `path` to this process (and thread) alone until the block ends:
    writers queue on an flock, so each reads what the one before wrote. The system drops
    the lock of a process that dies."""
    # Named by where the file is, as every process spells it (the links of its folders
    # followed): a CLI and an app in other folders queue on one lock.
    relative = os.path.relpath(os.path.join(os.path.realpath(path.parent), path.name), root)
    digest = hashlib.sha256(relative.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    fd = _lock_file(root, f"{path.name}.{digest}.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _lock_file(root: Path, name: str) -> int:
    """The lock file `name` under the project's LOCK_FOLDER, opened, made when missing;
    never through a link (each folder and the file are opened with O_NOFOLLOW)."""
    shown = os.path.join(root, *LOCK_FOLDER, name)
    folder = -1
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        for part in LOCK_FOLDER:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=folder)
            inner = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder
            )
            os.close(folder)
            folder = inner
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(name, flags, 0o644, dir_fd=folder)
    except OSError as exc:
        raise UserError(
            f"cannot lock the decisions file with {shown} ({exc.strerror or exc})",
            f"{os.path.join(root, *LOCK_FOLDER)} must be a folder (not a link): storyboard "
            "keeps its locks there; nothing was written",
        ) from None
    finally:
        if folder >= 0:
            os.close(folder)


def who(folder: Path) -> str:
    """Who decides, as git names them (`Ana <ana@example.com>`), else the login name; with
    no control character (git config is anyone's text, and decisions are printed)."""
    name = _git_config(folder, "user.name")
    email = _git_config(folder, "user.email")
    said = f"{name} <{email}>" if name and email else name or email or getpass.getuser()
    return _one_line(said)[:MAX_BY]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git_config(folder: Path, key: str) -> str:
    try:
        result = subprocess.run(
            ["git", "config", "--get", key],
            cwd=folder,
            capture_output=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.decode(errors="replace").strip() if result.returncode == 0 else ""


def checked_note(note: str | None) -> str | None:
    """A note as given, refused when it is not text (nothing is written then)."""
    if note is None:
        return None
    if len(note) > MAX_NOTE:
        raise UserError(f"a note is at most {MAX_NOTE:,} characters, not {len(note):,}")
    found = _SURROGATE.search(note)
    if found is not None:
        around = note[max(0, found.start() - 20) : found.start() + 20]
        raise UserError(
            f"a note must be text: it holds no character at position {found.start() + 1} "
            f"({around!r}): bytes that are not UTF-8, or half of an emoji",
            "nothing was written",
        )
    return note
