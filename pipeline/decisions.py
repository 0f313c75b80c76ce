"""Decisions on a storyboard's takes, kept in git beside it: `specs/ballroom.picks.yaml`.

One line per shot (and variant): the take picked, approved or rejected, how many takes were
asked for beyond the storyboard's, a note, who and when.

    hero: {take: 2, verdict: approved, by: Ana <ana@example.com>, at: '2026-12-02T04:31:07Z'}
    hero [caramel-ja]: {take: 3, verdict: rejected, more: 1, note: too dark, by: ..., at: ...}

A line without a variant holds for every variant a line of its own does not name. Lines are
sorted and each one stands alone, so that two people's decisions diff and merge as text. The
file wins over `pick:` in the storyboard. A decision never renders anything: asking for
another take adds a render that `storyboard build` makes (and prices, as `plan` does).
"""

from __future__ import annotations

import getpass
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import Diagnostic, SpecError, UserError
from pipeline.nodes import CARD, Sequence, Shot
from pipeline.spec.reading import check_shape, compose, read_text

if TYPE_CHECKING:
    from pipeline.plan import Plan

SUFFIX = ".picks.yaml"
MAX_BYTES = 4_000_000  # a campaign of 10,000 shots' decisions with notes fits
MAX_NOTE = 1000
MAX_BY = 200
MAX_MORE = 20  # takes asked for beyond the storyboard's: a typo must not order a hundred
Verdict = Literal["approved", "rejected"]
APPROVED: Verdict = "approved"
REJECTED: Verdict = "rejected"
HEADER = (
    "# Decisions on the takes of {name}: `storyboard pick / approve / reject` and\n"
    "# `storyboard review --serve` write this file; it wins over `pick:` in the storyboard.\n"
    "# One line per shot, or per shot and variant: `shot [variant]: {{take: 2, verdict: "
    "approved}}`.\n"
)
_NAME = re.compile(r"^(?P<label>[^\s\[\]]+)(?: \[(?P<variant>[^\[\]]+)\])?$")


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
        return " ".join(value.split())


@dataclass(frozen=True)
class Decided:
    """A decision as the file holds it: the line it is on."""

    decision: Decision
    line: int


@dataclass(frozen=True)
class Decisions:
    """The decisions file of a storyboard, read: by (label, variant), variant "" for all."""

    path: Path
    entries: dict[tuple[str, str], Decided] = field(default_factory=dict)

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


def decisions_path(spec_path: Path) -> Path:
    """`specs/ballroom.yaml` -> `specs/ballroom.picks.yaml`."""
    return spec_path.with_name(spec_path.name.rsplit(".", 1)[0] + SUFFIX)


def line_name(label: str, variant: str) -> str:
    return f"{label} [{variant}]" if variant else label


def read(spec_path: Path) -> tuple[Decisions, list[Diagnostic]]:
    """The decisions beside a storyboard (none when there is no file), and what is wrong in
    the file, each problem located; a line with a problem is left out."""
    path = decisions_path(spec_path)
    empty = Decisions(path)
    if not path.exists() and not path.is_symlink():
        return empty, []
    try:
        text = read_text(path, MAX_BYTES)
        check_shape(path, text)
        node = compose(path, text)
    except SpecError as exc:
        return empty, list(exc.diagnostics)
    if node is None:
        return empty, []
    if not isinstance(node, yaml.MappingNode):
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
    return Decisions(path, entries), problems


def _entry(
    path: Path, key_node: yaml.Node, value_node: yaml.Node, problems: list[Diagnostic]
) -> tuple[tuple[str, str], Decided] | None:
    """One line of the file, or None with its problems said."""
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


def _at(path: Path, node: yaml.Node, message: str, hint: str | None = None) -> Diagnostic:
    mark = node.start_mark
    return Diagnostic("decision", str(path), mark.line + 1, mark.column + 1, message, hint)


def render(name: str, entries: Mapping[tuple[str, str], Decision]) -> str:
    """The file's text: a header, then a line per decision, sorted by shot and variant."""
    lines = [HEADER.format(name=name)]
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


def write(spec_path: Path, changes: Mapping[tuple[str, str], Decision | None]) -> Path:
    """Apply `changes` (None removes a line) to the decisions file, atomically; the file as
    it is now is read first, so that decisions made meanwhile are kept."""
    from pipeline.cache import write_atomic

    current, problems = read(spec_path)
    if problems:
        raise UserError(
            f"{problems[0].path}:{problems[0].line}: {problems[0].message}",
            "fix the decisions file first: nothing was written",
        )
    entries = {name: decided.decision for name, decided in current.entries.items()}
    for name, decision in changes.items():
        if decision is None:
            entries.pop(name, None)
        else:
            entries[name] = decision
    write_atomic(current.path, render(spec_path.name, entries))
    return current.path


def who(folder: Path) -> str:
    """Who decides, as git names them (`Ana <ana@example.com>`), else the login name."""
    name = _git_config(folder, "user.name")
    email = _git_config(folder, "user.email")
    said = f"{name} <{email}>" if name and email else name or email or getpass.getuser()
    return said[:MAX_BY]


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


PICK, APPROVE, REJECT, NOTE = "pick", "approve", "reject", "note"
ACTIONS = (PICK, APPROVE, REJECT, NOTE)


@dataclass(frozen=True)
class Act:
    """One decision as a person makes it, on one shot."""

    action: str  # one of ACTIONS
    take: int | None = None  # pick: the take; approve, reject: the picked one if None
    note: str | None = None  # None: the note is kept
    another: bool = False  # reject: and ask for one more take
    by: str = ""
    at: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a decision changes in the file, and what it says it did; the renders it adds
    (more takes), as the plan after it counts and prices them: the next build makes them."""

    changes: dict[tuple[str, str], Decision | None]
    said: tuple[str, ...]
    renders: int = 0
    cost: float = 0.0
    unpriced: int = 0  # of those renders, the ones whose price is not known


def decide(
    decisions: Decisions, renders: list[Shot], label: str, variants: tuple[str, ...], act: Act
) -> Outcome:
    """The lines `act` writes for the shot `label` in `variants` (each of `renders` is one
    take of it in one variant, as expanded): a line per variant, or one for the shot when
    it decides the same in every variant it has."""
    if act.note is not None and len(act.note) > MAX_NOTE:
        raise UserError(f"a note is at most {MAX_NOTE:,} characters, not {len(act.note):,}")
    by_variant: dict[str, list[Shot]] = {}
    for render in renders:
        if render.label == label:
            by_variant.setdefault(render.variant, []).append(render)
    if not by_variant:
        raise UserError(f"no shot '{label}' to decide on")
    chosen = variants or tuple(by_variant)
    unknown = [v for v in chosen if v not in by_variant]
    if unknown:
        raise UserError(
            f"'{label}' has no variant '{unknown[0]}'",
            f"its variants: {', '.join(v for v in by_variant if v)}",
        )
    decided: dict[str, Decision] = {}
    said: list[str] = []
    for variant in chosen:
        takes = by_variant[variant]
        found = decisions.find(takes[0].shot_id, label, variant)
        old = found[1].decision if found else Decision()
        new = _applied(old, act, takes, line_name(label, variant))
        decided[variant] = new
        said.append(_said(line_name(label, variant), act, new))
    changes: dict[tuple[str, str], Decision | None] = {}
    values = list(decided.values())
    if set(chosen) == set(by_variant) and len(chosen) > 1 and all(v == values[0] for v in values):
        changes[(label, "")] = values[0]
        changes.update({(label, variant): None for variant in chosen})
        said = [_said(label, act, values[0])]
    else:
        changes.update({(label, variant): d for variant, d in decided.items()})
    return Outcome(changes, tuple(said))


def _applied(old: Decision, act: Act, takes: list[Shot], name: str) -> Decision:
    count = max(t.takes for t in takes)
    picked = next((t.take for t in takes if t.picked), 1)
    take = act.take if act.take is not None else picked
    if take > count:
        raise UserError(
            f"'{name}' has {count} take(s), not {take}",
            "reject a take with --another to ask for one more",
        )
    note = old.note if act.note is None else act.note
    if act.action == PICK:
        # A take picked anew is not approved yet: approving says which take it was.
        return Decision(take=take, more=old.more, note=note, by=act.by, at=act.at)
    if act.action == APPROVE:
        return Decision(take=take, verdict=APPROVED, more=old.more, note=note, by=act.by, at=act.at)
    if act.action == REJECT:
        more = old.more + (1 if act.another else 0)
        if more > MAX_MORE:
            raise UserError(f"'{name}': {MAX_MORE} more takes were asked for already")
        return Decision(take=take, verdict=REJECTED, more=more, note=note, by=act.by, at=act.at)
    return old.model_copy(update={"by": act.by, "at": act.at, "note": note})


def _said(name: str, act: Act, new: Decision) -> str:
    if act.action == PICK:
        return f"{name}: take {new.take} picked"
    if act.action == APPROVE:
        return f"{name}: take {new.take} approved"
    if act.action == REJECT:
        asked = "; one more take asked for" if act.another else ""
        return f"{name}: take {new.take} rejected{asked}"
    return f"{name}: note {'kept' if not new.note else repr(new.note)}"


def approved(decisions: Decisions, shot: Shot, variant: str) -> bool:
    """Whether the take a film uses of a shot (or its upscale, lip-sync) is approved."""
    found = decisions.find(shot.shot_id, shot.base_label, variant)
    if found is None:
        return False
    decision = found[1].decision
    return decision.verdict == APPROVED and decision.take in (None, shot.take)


def unapproved(decisions: Decisions, film: Sequence) -> list[str]:
    """The shots of a film whose take it uses is not approved: `hero take 2`."""
    return list(
        dict.fromkeys(
            f"{use.shot.base_label} take {use.shot.take}"
            for use in film.uses
            if use.shot.model != CARD and not approved(decisions, use.shot, film.variant)
        )
    )


def with_renders(outcome: Outcome, before: Plan, after: Plan) -> Outcome:
    """`outcome` with the renders the decision added (more takes), as the plan after it
    prices them."""
    known = {row.shot.key for row in before.rows}
    added = [row for row in after.rows if row.renders and row.shot.key not in known]
    return Outcome(
        outcome.changes,
        outcome.said,
        len(added),
        round(sum(row.estimate or 0.0 for row in added), 4),
        sum(1 for row in added if row.estimate is None),
    )
