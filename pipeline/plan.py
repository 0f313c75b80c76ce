"""Shots + cache -> Plan: what is cached, what must be rendered, what it will cost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.expand import Expansion, Shot, unique_shots

CACHED = "cached"
RENDER = "render"
IN_FLIGHT = "in flight"


@dataclass(frozen=True)
class PlanRow:
    """One unique render (one key), with every variant that uses it."""

    shot: Shot
    variants: tuple[str, ...]
    status: str

    @property
    def estimate(self) -> float | None:
        return self.shot.price if self.status != CACHED else 0.0


@dataclass(frozen=True)
class Plan:
    rows: tuple[PlanRow, ...]
    shot_count: int
    expansion: Expansion

    @property
    def to_render(self) -> list[PlanRow]:
        return [row for row in self.rows if row.status != CACHED]

    @property
    def cost_needed(self) -> float:
        return round(sum(row.shot.price or 0.0 for row in self.to_render), 2)

    @property
    def unpriced(self) -> int:
        return sum(1 for row in self.to_render if row.shot.price is None)

    def to_json(self) -> dict[str, Any]:
        return {
            "shots": [_row_json(row) for row in self.rows],
            "sequences": [
                {
                    "id": s.id,
                    "variant": s.variant,
                    "name": s.name,
                    "key": s.key,
                    "duration": round(s.duration, 3),
                    "width": s.width,
                    "height": s.height,
                    "shots": [u.shot.key for u in s.uses],
                }
                for s in self.expansion.sequences
            ],
            "totals": {
                "shots": self.shot_count,
                "unique_renders": len(self.rows),
                "renders_needed": len(self.to_render),
                "cached": len(self.rows) - len(self.to_render),
                "cost_needed": self.cost_needed,
                "unpriced_renders": self.unpriced,
            },
            "warnings": list(self.expansion.warnings),
        }


def make_plan(expansion: Expansion, cached: set[str], in_flight: set[str]) -> Plan:
    variants: dict[str, list[str]] = {}
    for shot in expansion.shots:
        names = variants.setdefault(shot.key, [])
        if shot.variant and shot.variant not in names:
            names.append(shot.variant)
    rows = []
    for shot in unique_shots(expansion.shots):
        status = CACHED if shot.key in cached else IN_FLIGHT if shot.key in in_flight else RENDER
        rows.append(PlanRow(shot, tuple(variants[shot.key]), status))
    return Plan(tuple(rows), len(expansion.shots), expansion)


def _row_json(row: PlanRow) -> dict[str, Any]:
    shot = row.shot
    return {
        "key": shot.key,
        "shot": shot.label,
        "variants": list(row.variants),
        "take": shot.take,
        "model": shot.model,
        "width": shot.width,
        "height": shot.height,
        "duration": shot.duration,
        "status": row.status,
        "price": shot.price,
        "estimate": row.estimate,
    }
