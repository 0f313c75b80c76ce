"""Plan + lock + built files -> whether each shot and sequence is current, stale or missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.films import OutputIndex, output_path
from pipeline.lock import Lock
from pipeline.plan import CACHED, IN_FLIGHT, Plan

CURRENT = "current"
STALE = "stale"
MISSING = "missing"


@dataclass(frozen=True)
class StatusRow:
    kind: str  # "shot" or "sequence"
    name: str
    variants: tuple[str, ...]
    take: int
    status: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "variants": list(self.variants),
            "take": self.take,
            "status": self.status,
            "detail": self.detail,
        }


def statuses(plan: Plan, lock: Lock | None, outputs: OutputIndex, films: Path) -> list[StatusRow]:
    locked_identity = {}
    if lock is not None:
        for key, entry in lock.shots.items():
            locked_identity[(entry.shot, tuple(entry.variants), entry.take)] = key
    rows = []
    for row in plan.rows:
        shot = row.shot
        identity = (shot.label, row.variants, shot.take)
        if row.status == CACHED:
            status, detail = CURRENT, ""
        elif row.status == IN_FLIGHT:
            status, detail = IN_FLIGHT, "journaled: the next build collects it"
        elif identity in locked_identity:
            status, detail = STALE, "changed since the lock: renders again"
        else:
            status, detail = MISSING, "not rendered yet"
        rows.append(StatusRow("shot", shot.label, row.variants, shot.take, status, detail))
    for sequence in plan.expansion.sequences:
        path = output_path(films, sequence)
        locked = lock.sequences.get(sequence.name) if lock else None
        if not path.exists():
            status, detail = MISSING, "not built yet"
        elif locked is None or locked.key != sequence.key:
            status, detail = STALE, "its shots or settings changed since it was built"
        elif not outputs.matches(path, locked.sha256):
            status, detail = STALE, "the file differs from the lock"
        else:
            status, detail = CURRENT, str(path)
        rows.append(StatusRow("sequence", sequence.name, (sequence.variant,), 0, status, detail))
    outputs.save()
    return rows


def summary_line(name: str, rows: list[StatusRow]) -> str:
    """`ballroom: shots 8/8 current; sequences 4/6 current, 2 stale`."""
    parts = []
    for kind in ("shot", "sequence"):
        mine = [r for r in rows if r.kind == kind]
        if not mine:
            continue
        counts: dict[str, int] = {}
        for row in mine:
            counts[row.status] = counts.get(row.status, 0) + 1
        current = counts.pop(CURRENT, 0)
        extra = "".join(f", {n} {status}" for status, n in sorted(counts.items()))
        parts.append(f"{kind}s {current}/{len(mine)} current{extra}")
    return f"{name}: " + "; ".join(parts)
