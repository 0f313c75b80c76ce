"""Decisions on takes, as a person makes them: a pick, an approval, a rejection (and another
take asked for), a note; what each changes in the decisions file (decisions.py holds the
file), and what a build asks of them (`approved`, `unapproved`). A decision never renders
anything: asking for another take adds a render that `storyboard build` makes (and prices,
as `plan` does)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.decisions import (
    APPROVED,
    MAX_MORE,
    REJECTED,
    Decision,
    Decisions,
    checked_note,
    line_name,
)
from pipeline.errors import UserError
from pipeline.nodes import Card, Film, Node
from pipeline.plan import Plan

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
class DecisionResult:
    """What a decision changes in the file, and what it says it did; the renders it adds
    (more takes), as the plan after it counts and prices them: the next build makes them."""

    changes: dict[tuple[str, str], Decision | None]
    said: tuple[str, ...]
    renders: int = 0
    cost: float = 0.0
    unpriced: int = 0  # of those renders, the ones whose price is not known


def decide(
    decisions: Decisions,
    renders: Sequence[Node],
    label: str,
    variants: tuple[str, ...],
    act: Act,
) -> DecisionResult:
    """The lines `act` writes for the shot `label` in `variants` (each of `renders` is one
    take of it in one variant, as expanded): a line per variant, or one for the shot when
    it decides the same in every variant it has."""
    checked_note(act.note)
    by_variant: dict[str, list[Node]] = {}
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
    return DecisionResult(changes, tuple(said))


def _applied(old: Decision, act: Act, takes: list[Node], name: str) -> Decision:
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
    # Validated as the others are: a copy with changes would skip the checks of its fields.
    return Decision.model_validate({**old.model_dump(), "by": act.by, "at": act.at, "note": note})


def _said(name: str, act: Act, new: Decision) -> str:
    if act.action == PICK:
        return f"{name}: take {new.take} picked"
    if act.action == APPROVE:
        return f"{name}: take {new.take} approved"
    if act.action == REJECT:
        asked = "; one more take asked for" if act.another else ""
        return f"{name}: take {new.take} rejected{asked}"
    return f"{name}: note {'kept' if not new.note else repr(new.note)}"


def approved(decisions: Decisions, shot: Node, variant: str) -> bool:
    """Whether the take a film uses of a shot (or its upscale, lip-sync) is approved."""
    found = decisions.find(shot.shot_id, shot.base_label, variant)
    if found is None:
        return False
    decision = found[1].decision
    return decision.verdict == APPROVED and decision.take in (None, shot.take)


def unapproved(decisions: Decisions, film: Film) -> list[str]:
    """The shots of a film whose take it uses is not approved: `hero take 2`."""
    return list(
        dict.fromkeys(
            f"{use.shot.base_label} take {use.shot.take}"
            for use in film.uses
            if not isinstance(use.shot, Card) and not approved(decisions, use.shot, film.variant)
        )
    )


def with_renders(outcome: DecisionResult, before: Plan, after: Plan) -> DecisionResult:
    """`outcome` with the renders the decision added (more takes), as the plan after it
    prices them."""
    known = {row.shot.key for row in before.rows}
    added = [row for row in after.rows if row.renders and row.shot.key not in known]
    return DecisionResult(
        outcome.changes,
        outcome.said,
        len(added),
        round(sum(row.estimate or 0.0 for row in added), 4),
        sum(1 for row in added if row.estimate is None),
    )
