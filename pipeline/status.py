"""Plan + films -> a line per shot and sequence: its state, and why (from state.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from pipeline.measure import Loudness
from pipeline.nodes import Film, Node
from pipeline.plan import Plan, variants_said
from pipeline.qc import Findings, qc_json
from pipeline.state import FilmState, ShotState, said


@dataclass(frozen=True)
class StatusRow:
    kind: str  # "shot", "still" or "sequence"
    name: str
    variants: tuple[str, ...]
    take: int
    status: str
    reasons: tuple[str, ...] = ()
    in_variants: str = ""  # the variants, for a person: `all 4 variants`
    qc: Findings | None = None  # what the quality check found (None: never checked)
    loudness: dict[str, float] | None = None  # a film's: its target, its sound as measured

    def to_json(self) -> dict[str, Any]:
        shown = {
            "kind": self.kind,
            "name": self.name,
            "variants": list(self.variants),
            "take": self.take,
            "status": self.status,
            "reasons": list(self.reasons),
            "qc": qc_json(self.qc),
        }
        return shown | ({"loudness": self.loudness} if self.kind == "sequence" else {})


# The kinds of render status counts, in the order it counts them: every kind there is
# (one without rows, a card, is not said).
COUNTED = get_args(Node)


def statuses(
    plan: Plan,
    checked: Callable[[str], Findings | None] = lambda key: None,
    heard: Callable[[str], Loudness | None] = lambda key: None,
) -> list[StatusRow]:
    """A row per render and film; `checked`: what the quality check found in a render's
    clip or a film, by key (as the cache keeps it); `heard`: a film's loudness as measured
    when it was made, by key."""
    rows = [
        StatusRow(
            row.shot.one,
            row.shot.label,
            row.variants,
            row.shot.take,
            row.status,
            (*said(row.reasons), *_decided(row.shot)),
            variants_said(row.variants, plan.variants),
            checked(row.shot.key),
        )
        for row in plan.rows
    ]
    for sequence, state in ((row.film, row.state) for row in plan.film_rows):
        rows.append(
            StatusRow(
                "sequence",
                sequence.name,
                (sequence.variant,),
                0,
                state.name,
                state.said,
                sequence.variant,
                checked(sequence.key),
                _loudness(sequence, heard(sequence.key)),
            )
        )
    return rows


def _loudness(film: Film, measured: Loudness | None) -> dict[str, float] | None:
    """A film's loudness as `status --json` says it: its target and what it measured."""
    return measured.figures(film.recipe.loudness) if measured is not None else None


def _decided(shot: Node) -> tuple[str, ...]:
    """What the decisions file says of the picked take: it wins over `pick:`."""
    return (shot.decided,) if shot.decided and shot.picked else ()


def summary_line(name: str, rows: list[StatusRow]) -> str:
    """`ballroom: shots 7/8 cached, 1 changed; sequences 4/6 current, 2 changed` (and
    `stills 1/1 cached; ` first, when there are stills; voices, music, lip-syncs and
    upscales each counted apart too, where there are some)."""
    parts = []
    kinds = [(kind.one, kind.many, ShotState.CACHED) for kind in COUNTED]
    for kind, many, done in [*kinds, ("sequence", "sequences", FilmState.CURRENT)]:
        mine = [r for r in rows if r.kind == kind]
        if not mine:
            continue
        counts: dict[str, int] = {}
        for row in mine:
            counts[row.status] = counts.get(row.status, 0) + 1
        ready = counts.pop(done, 0)
        extra = "".join(f", {n} {status}" for status, n in sorted(counts.items()))
        parts.append(f"{many} {ready}/{len(mine)} {done}{extra}")
    return f"{name}: " + "; ".join(parts)
