"""The review page: every shot's takes and every film of a storyboard, with what was decided
on them. One model of the page (`Board`) serves the static page (`write_review`: one HTML
file, with thumbnails and posters beside it, that works from file://) and the review app
(`review_app.py`: the same page with buttons, served on loopback).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from pipeline import thumbnails
from pipeline.cache import Cache, write_atomic
from pipeline.decisions import Decisions, line_name
from pipeline.errors import MediaError
from pipeline.nodes import Card, Clip, Film, Node, Still, TextLayer, depends_on
from pipeline.outputs import output_path
from pipeline.plan import Plan
from pipeline.project import refuse_link_out
from pipeline.qc import Findings
from pipeline.render import kind
from pipeline.state import ShotState, said

TEMPLATE = Path(__file__).resolve().parent / "review.html.j2"
DECIDABLE = (Clip, Still)  # renders with takes to pick among
THUMB_WIDTH = 480  # pixels: a take is judged at about this size


@dataclass(frozen=True)
class ShotCard:
    """One render as the page shows it: the render, and what the plan and the cache say
    of it."""

    shot: Node
    status: str
    message: str
    renderer: str
    seed: int | None
    cost: float | None
    price: float | None
    clip: str | None
    thumb: str | None
    after: str = ""  # what it starts from: `street (last)`
    findings: Findings = ()  # what the quality check found in its clip (qc.py)


@dataclass(frozen=True)
class Group:
    """A shot in the variants whose takes (and decisions) are the same: its takes side by
    side, then what is made of the picked one (an upscale, a lip-sync)."""

    id: str  # stable across plans: the page's script finds the group by it
    label: str
    variants: tuple[str, ...]
    named: str  # `sea`, or `sea [storm]` when the shot has several groups
    cards: tuple[ShotCard, ...]
    prompt: str  # the takes' prompt, said once when every take has the same
    picked: int
    verdict: str  # approved, rejected, or ""
    note: str
    decided: str  # who decided and when
    decidable: bool
    another: float | None  # what one more take costs (None: unknown)


@dataclass(frozen=True)
class StripItem:
    """A clip or card of a film, in order."""

    label: str
    take: int
    takes: int
    key: str
    duration: float
    thumb: str | None = None
    card: str = ""  # a card's words (its background and colour below)
    background: str = ""
    color: str = ""


@dataclass(frozen=True)
class FilmCard:
    """One film of a sequence in one variant and format."""

    name: str
    variant: str
    format: str  # as written (16:9), or "" for a sequence without formats
    width: int
    height: int
    state: str
    reason: str
    video: str | None
    poster: str | None
    texts: tuple[TextLayer, ...] = ()  # its text layers, as this variant says them
    findings: Findings = ()  # what the quality check found in it


@dataclass(frozen=True)
class Strip:
    """A sequence's films that are made of the same clips (the variants differ in text or
    sound only): its clips once, and its films side by side."""

    id: str
    version: str  # changes with its films' keys and states: the app replaces only those
    sequence: str
    variants: tuple[str, ...]
    items: tuple[StripItem, ...]
    transition: str
    duration: float
    films: tuple[FilmCard, ...]


@dataclass(frozen=True)
class Board:
    storyboard: str
    renderer: str
    groups: tuple[Group, ...]
    strips: tuple[Strip, ...]
    variants: tuple[str, ...]
    formats: tuple[str, ...]
    totals: dict[str, Any]
    decisions: str  # the decisions file, as the page names it

    @property
    def build(self) -> str:
        """Which build the page shows: the preview one and the paid one are kept apart."""
        return kind(self.renderer).build


@dataclass(frozen=True)
class Links:
    """Where the page finds each render's clip and thumbnail and each film and its poster:
    files beside the static page, or the app's URLs."""

    # Asked only of renders the cache holds:
    clip: Callable[[str], str]  # by render key
    thumb: Callable[[Node], str | None]
    film: Callable[[Film], str | None]
    poster: Callable[[Film], str | None]


def board(
    storyboard: str,
    plan: Plan,
    cache: Cache,
    decisions: Decisions,
    links: Links,
    renderer: str,
) -> Board:
    """The page's model of a storyboard as planned."""
    graph = plan.graph
    rows = {row.shot.key: row for row in plan.rows}
    held = cache.clips.present(list(rows))
    cards = {
        key: _card(row, cache if key in held else None, renderer, links)
        for key, row in rows.items()
    }
    groups = _groups(graph.expansion.shots, graph, cards, decisions, rows)
    film_states = {row.film.name: row.state for row in plan.film_rows}
    strips = _strips(plan.films, film_states, links, graph, held, cache)
    missing = [c for c in cards.values() if c.status != ShotState.CACHED]
    totals = {
        "shots": graph.expansion.shot_count,
        "renders": len(cards),
        "done": len(cards) - len(missing),
        "spent": round(sum(c.cost or 0.0 for c in cards.values()), 2),
        "missing_cost": round(sum(c.price or 0.0 for c in missing), 2),
        "preview": not kind(renderer).paid,
        "approved": sum(1 for g in groups if g.verdict == "approved"),
        "decidable": sum(1 for g in groups if g.decidable),
        "stale": sum(1 for s in strips for f in s.films if f.state != "current"),
    }
    return Board(
        storyboard,
        renderer,
        tuple(groups),
        tuple(strips),
        tuple(v for v in plan.variants if v),
        tuple(dict.fromkeys(s.format for s in plan.films if s.format)),
        totals,
        decisions.path.name,
    )


def _card(row: Any, cache: Cache | None, renderer: str, links: Links) -> ShotCard:
    """A render's card; `cache` None for one the cache does not hold."""
    shot = row.shot
    record = cache.clips.get(shot.key) if cache is not None else None
    return ShotCard(
        shot=shot,
        status=row.status,
        message="; ".join(said(row.reasons)),
        renderer=record.renderer if record else renderer,
        seed=record.seed if record else None,
        cost=record.cost if record else None,
        price=row.price,
        clip=links.clip(shot.key) if record else None,
        thumb=links.thumb(shot) if record and not shot.sound else None,
        after=depends_on(shot),
        findings=(record.qc or ()) if record else (),
    )


def _groups(
    shots: tuple[Node, ...],
    graph: Any,
    cards: dict[str, ShotCard],
    decisions: Decisions,
    rows: dict[str, Any],
) -> list[Group]:
    """A group per shot and set of variants with the same takes and the same decision."""
    by_label: dict[str, dict[str, list[Node]]] = {}
    for shot in shots:
        by_label.setdefault(shot.base_label, {}).setdefault(shot.variant, []).append(shot)
    groups = []
    for label, variants in by_label.items():
        alike: dict[tuple[Any, ...], list[str]] = {}
        for variant, renders in variants.items():
            keys = tuple(graph.shot(r.key).key for r in renders)
            found = decisions.find(renders[0].shot_id, label, variant)
            decision = found[1].decision if found else None
            picked = next((r.take for r in renders if r.picked and r.label == label), 1)
            state = (decision.verdict, decision.note, decision.by, decision.at) if decision else ()
            alike.setdefault((keys, picked, state), []).append(variant)
        several = len(alike) > 1
        for (keys, picked, state), names in alike.items():
            # A take the quality check found something in comes after the clean ones.
            takes = sorted(
                (cards[k] for k in dict.fromkeys(keys) if k in cards),
                key=lambda card: bool(card.findings),
            )
            first = variants[names[0]][0]
            prompts = {c.shot.prompt for c in takes if c.shot.label == label}
            verdict, note, by, at = state or ("", "", "", "")
            named = line_name(label, ", ".join(names)) if several else label
            row = rows.get(graph.shot(first.key).key)  # priced as the plan prices it
            another = row.price if row is not None else first.price
            groups.append(
                Group(
                    id=_group_id(label, names),
                    label=label,
                    variants=tuple(v for v in names if v),
                    named=named,
                    cards=tuple(takes),
                    prompt=prompts.pop() if len(prompts) == 1 else "",
                    picked=picked,
                    verdict=verdict or "",
                    note=note,
                    decided=f"{by.split(' <')[0]} {at[:16].replace('T', ' ')}".strip(),
                    decidable=isinstance(first, DECIDABLE),
                    another=another,
                )
            )
    return groups


def _group_id(label: str, variants: list[str]) -> str:
    return "g" + _digest(label, *variants)


def _digest(*parts: str) -> str:
    """A short stable name for the page's script (an HTML id starts with a letter)."""
    return "s" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def _strips(
    films: tuple[Film, ...],
    states: dict[str, Any],
    links: Links,
    graph: Any,
    held: set[str],
    cache: Cache,
) -> list[Strip]:
    """A strip per sequence and distinct list of clips, its films in the order planned."""
    strips: dict[tuple[str, tuple[str, ...]], list[Film]] = {}
    for film in films:
        film = graph.film(film)
        clips = tuple(use.shot.key for use in film.uses if not isinstance(use.shot, Card))
        strips.setdefault((film.id, clips), []).append(film)
    made = []
    for (sequence_id, clips), members in strips.items():
        first = members[0]
        variants = tuple(dict.fromkeys(f.variant for f in members if f.variant))
        shown = [_film(f, states.get(f.name), links, cache) for f in members]
        made.append(
            Strip(
                id=_digest(sequence_id, *clips),
                version=_digest(*(f"{f.name}:{f.state}:{f.video}" for f in shown)),
                sequence=sequence_id,
                variants=variants,
                items=tuple(_item(use.shot, use.length, links, held) for use in first.uses),
                transition=(
                    "cuts"
                    if first.transition == "cut"
                    else f"{first.transition} {first.overlap:g} s"
                ),
                duration=first.duration,
                films=tuple(shown),
            )
        )
    return made


def _item(shot: Node, length: float, links: Links, held: set[str]) -> StripItem:
    if isinstance(shot, Card):
        request = shot.request
        return StripItem(
            shot.label,
            1,
            1,
            shot.key,
            length,
            card=shot.prompt,
            background=_css_colour(request.get("background"), "black"),
            color=_css_colour(request.get("color"), "white"),
        )
    thumb = links.thumb(shot) if shot.key in held else None
    return StripItem(shot.base_label, shot.take, shot.takes, shot.key, length, thumb)


def _css_colour(value: Any, default: str) -> str:
    """A card's colour as CSS: ffmpeg's `0xRRGGBB` and `name@0.5` (the storyboard's
    schema allows only these shapes) become `#RRGGBB` and `name`."""
    text = str(value or default).split("@")[0]
    text = "#" + text[2:] if text.startswith("0x") else text
    return text if re.fullmatch(r"#[0-9A-Fa-f]{6}|[A-Za-z]{3,30}", text) else default


def _film(film: Film, state: Any, links: Links, cache: Cache) -> FilmCard:
    name = str(state.name) if state is not None else "new"
    reason = state.said[0] if state is not None and state.said else ""
    stored = cache.films.get(film.key)
    return FilmCard(
        name=film.name,
        variant=film.variant,
        format=film.format,
        width=film.width,
        height=film.height,
        state=name,
        reason=reason,
        video=links.film(film),
        poster=links.poster(film),
        texts=film.texts,
        findings=(stored.qc or ()) if stored is not None else (),
    )


# -- the static page ----------------------------------------------------------------------


def write_review(
    storyboard: str,
    plan: Plan,
    cache: Cache,
    films: Path,
    renderer: str,
    decisions: Decisions,
    root: Path,
    note: Callable[[str], None] = lambda message: None,
) -> Path:
    """Write `<films>/review/index.html` (thumbnails and posters beside it) and return it;
    `note` hears how many thumbnails are made first (once per render, on every core). A link
    on the way that leaves the project `root` is refused before anything is written."""
    folder = films / "review"
    for written in (folder / "index.html", folder / "thumbs", folder / "posters"):
        refuse_link_out(written, root, "remove the link: the review page is written in its place")
    make_thumbnails(plan, cache, folder / "thumbs", note)
    links = static_links(cache, films, folder)
    page = folder / "index.html"
    write_atomic(page, render_page(board(storyboard, plan, cache, decisions, links, renderer)))
    return page


def make_thumbnails(plan: Plan, cache: Cache, folder: Path, note: Callable[[str], None]) -> None:
    """The thumbnail of every picture render the cache holds that has none yet, made on
    every core (PyAV releases the interpreter while it decodes)."""
    shots = [row.shot for row in plan.rows if not row.shot.sound]
    held = cache.clips.present([shot.key for shot in shots])
    missing = [
        shot
        for shot in shots
        if shot.key in held and not (folder / f"{shot.key}-{THUMB_WIDTH}.jpg").exists()
    ]
    if not missing:
        return
    if len(missing) > 50:
        note(f"making {len(missing):,} thumbnails for the review page (once: they are kept)")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        jobs = [
            pool.submit(thumbnail, cache.clips.path(s.key), folder, s.key, s.duration / 2)
            for s in missing
        ]
        for job in jobs:
            job.result()


def static_links(cache: Cache, films: Path, folder: Path) -> Links:
    """Files beside the page, named relative to it: thumbnails and posters made once."""

    def clip(key: str) -> str:
        return _relative(cache.clips.path(key), folder) or ""

    def thumb(shot: Node) -> str | None:
        made = thumbnail(cache.clips.path(shot.key), folder / "thumbs", shot.key, shot.duration / 2)
        return _relative(made, folder)

    def film(sequence: Film) -> str | None:
        video = output_path(films, sequence)
        return _relative(video, folder) if video.exists() else None

    def poster(sequence: Film) -> str | None:
        video = output_path(films, sequence)
        if not video.exists():
            return None
        return _relative(make_poster(video, folder / "posters", sequence, 480), folder)

    return Links(clip, thumb, film, poster)


def poster_time(film: Film) -> float:
    """The moment a film's poster shows: the middle of its first clip (a pick changes it
    more often than any later one), past a title card."""
    start = 0.0
    for use in film.uses:
        if not isinstance(use.shot, Card):
            return start + use.length / 2
        start += use.length - film.overlap
    return film.duration / 2


def thumbnail(
    video: Path, folder: Path, key: str, at: float, width: int = THUMB_WIDTH, exact: bool = False
) -> Path | None:
    """The keyframe of a clip at or before `at` seconds (`exact`: the frame at `at`), made
    once per key (and width); None when the file has no frame to show."""
    target = folder / f"{key}-{width}.jpg"
    if target.exists():
        return target
    try:
        return thumbnails.thumbnail(video, target, at, width, exact)
    except MediaError:
        return None


def make_poster(video: Path, folder: Path, film: Film, width: int) -> Path | None:
    """A film's poster: its frame at `poster_time`, made once per film key (and width)."""
    return thumbnail(video, folder, film.key, poster_time(film), width, exact=True)


def _relative(path: Path | None, start: Path) -> str | None:
    if path is None:
        return None
    return Path(os.path.relpath(path, start)).as_posix()


@functools.cache
def _template() -> jinja2.Template:
    """The page's template, compiled once per process (the app renders it per request)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE.name)


def render_page(model: Board, app: bool = False, part: str = "page") -> str:
    """The page (or, for the app, one `part` of it: `strips`), as HTML."""
    template = _template()
    if part == "strips":
        return "".join(
            template.blocks["strips"](template.new_context({"board": model, "app": app}))
        )
    return template.render(board=model, app=app)
