"""The review page: every shot and sequence of a storyboard on one self-contained HTML page."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from pipeline import media
from pipeline.cache import Cache, write_atomic
from pipeline.errors import MediaError
from pipeline.nodes import Sequence, depends_on
from pipeline.outputs import output_path
from pipeline.plan import Plan
from pipeline.state import ShotState, said

TEMPLATE = Path(__file__).resolve().parent / "review.html.j2"


@dataclass(frozen=True)
class Card:
    """One render as the page shows it."""

    key: str
    label: str
    shot_id: str
    variants: tuple[str, ...]
    take: int
    takes: int
    picked: bool
    prompt: str
    model: str
    size: str
    duration: int
    renderer: str
    status: str
    message: str
    seed: int | None
    cost: float | None
    price: float | None
    clip: str | None
    thumb: str | None
    still: bool = False
    after: str = ""  # what it starts from: `street (last)`
    sound: bool = False  # a voice or music: played, not shown


@dataclass(frozen=True)
class Film:
    """One format of a sequence's film."""

    format: str  # as written (16:9), or "" for a sequence without formats
    width: int
    height: int
    video: str | None


@dataclass(frozen=True)
class FilmStrip:
    """A sequence in one variant: its clips once, and its films side by side, per format."""

    sequence: Sequence
    cards: list[Card]
    films: list[Film]


def write_review(
    storyboard: str,
    plan: Plan,
    cache: Cache,
    films: Path,
    renderer: str,
) -> Path:
    """Write `<films>/review/index.html` (with thumbnails beside it) and return its path."""
    folder = films / "review"
    thumbs = folder / "thumbs"
    cards: dict[str, Card] = {}
    for row in plan.rows:
        shot = row.shot
        record = cache.clips.get(shot.key)
        clip = cache.clips.path(shot.key) if record else None
        thumb = (
            _thumbnail(clip, thumbs / f"{shot.key}.jpg", shot.duration)
            if clip and not shot.sound
            else None
        )
        cards[shot.key] = Card(
            key=shot.key,
            label=shot.label,
            shot_id=shot.shot_id,
            variants=row.variants,
            take=shot.take,
            takes=shot.takes,
            picked=shot.picked,
            prompt=shot.prompt,
            model=shot.model,
            size=f"{shot.width}x{shot.height}",
            duration=shot.duration,
            renderer=record.renderer if record else renderer,
            status=row.status,
            message="; ".join(said(row.reasons)),
            seed=record.seed if record else None,
            cost=record.cost if record else None,
            price=row.price,
            clip=_relative(clip, folder),
            thumb=_relative(thumb, folder),
            still=shot.still,
            after=depends_on(shot),
            sound=shot.sound,
        )
    strips: dict[tuple[str, str], FilmStrip] = {}
    for sequence in plan.films:
        video = output_path(films, sequence)
        film = Film(
            sequence.format,
            sequence.width,
            sequence.height,
            _relative(video if video.exists() else None, folder),
        )
        strip = strips.setdefault(
            (sequence.id, sequence.variant),
            FilmStrip(
                sequence, [cards[u.shot.key] for u in sequence.uses if u.shot.key in cards], []
            ),
        )
        strip.films.append(film)
    html = _render(storyboard, renderer, list(cards.values()), list(strips.values()), plan)
    page = folder / "index.html"
    write_atomic(page, html)
    return page


def _thumbnail(clip: Path, target: Path, duration: float) -> Path | None:
    """A middle frame of the clip, made once per key."""
    if target.exists():
        return target
    try:
        return media.thumbnail(clip, target, at=duration / 2)
    except MediaError:
        return None


def _relative(path: Path | None, start: Path) -> str | None:
    if path is None:
        return None
    return Path(os.path.relpath(path, start)).as_posix()


def _render(
    storyboard: str, renderer: str, cards: list[Card], strips: list[FilmStrip], plan: Plan
) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    by_shot: dict[tuple[str, tuple[str, ...]], list[Card]] = {}
    for card in cards:
        # An upscale or lip-sync (`hero/upscale`) sits beside the takes it is made from.
        by_shot.setdefault((card.label.split("/")[0], card.variants), []).append(card)
    spent = round(sum(c.cost or 0.0 for c in cards), 2)
    missing = [c for c in cards if c.status != ShotState.CACHED]
    totals: dict[str, Any] = {
        "shots": plan.shot_count,
        "renders": len(cards),
        "done": len(cards) - len(missing),
        "spent": spent,
        "missing_cost": round(sum(c.price or 0.0 for c in missing), 2),
        "preview": renderer == "preview",
    }
    return environment.get_template(TEMPLATE.name).render(
        storyboard=storyboard,
        renderer=renderer,
        groups=list(by_shot.values()),
        strips=strips,
        variants=[v for v in plan.variants if v],
        formats=list(dict.fromkeys(s.format for s in plan.films if s.format)),
        totals=totals,
    )
