"""Graph + cache facts -> Plan: each render and film with its state and why, and the cost.

Read-only: planning renders nothing and writes no record (a clip file the lock vouches for
is counted as cached, and recorded by the build that uses it). The facts a state depends on
are gathered here (`ShotFacts`, `FilmFacts`); `state.py` decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import captions, media
from pipeline import lock as lockfile
from pipeline.cache import Cache, ClipRecord, resolve_root
from pipeline.cache.inputs import FetchError
from pipeline.cache.remote_settings import remote_settings
from pipeline.decisions import Decisions
from pipeline.decisions import read as read_decisions
from pipeline.errors import MediaError, Problems, RemoteError
from pipeline.expand import expand
from pipeline.graph import Graph
from pipeline.hashing import sha256_file
from pipeline.lock import Lock, record_of
from pipeline.nodes import Film, Node, Still
from pipeline.outputs import OutputIndex, film_dir, output_path
from pipeline.project import ProjectSettings, project_settings
from pipeline.render import PREVIEW, is_paid, kind
from pipeline.settings import Target
from pipeline.spec import Spec
from pipeline.spec import read as read_spec
from pipeline.spec.references import file_fields, is_url, owners
from pipeline.state import (
    RENDERS,
    FilmFacts,
    LockedShots,
    Reason,
    ShotFacts,
    ShotState,
    State,
    film_state,
    said,
    shot_state,
)
from pipeline.typeface import Fonts

if TYPE_CHECKING:
    from pipeline.cache.remote import Remote


def variants_said(variants: tuple[str, ...], every: tuple[str, ...]) -> str:
    """The variants a render is used in, for a person: `all 4 variants` when every variant
    shares it, else their names; "" without a matrix."""
    named = [v for v in variants if v]
    if len(every) > 1 and set(named) >= {v for v in every if v}:
        return f"all {len(every)} variants"
    return ", ".join(named)


@dataclass(frozen=True)
class PlanRow:
    """One unique render (one key), with every variant that uses it, its state and why."""

    shot: Node
    variants: tuple[str, ...]
    status: ShotState
    reasons: tuple[Reason, ...] = ()
    paid: bool = True  # whether its renderer spends money
    node: str = ""  # its node in the graph: the key it was expanded with

    @property
    def renders(self) -> bool:
        return self.status in RENDERS

    @property
    def estimate(self) -> float | None:
        """What this row will cost now: a task in flight was paid for when it was sent."""
        return self.price if self.renders else 0.0

    @property
    def price(self) -> float | None:
        """What a render of it costs: nothing with a renderer that is free."""
        return self.shot.price if self.paid else 0.0


@dataclass(frozen=True)
class FilmRow:
    """One film (a sequence in one variant and format), its state and why."""

    film: Film
    state: State


@dataclass(frozen=True)
class Plan:
    rows: tuple[PlanRow, ...]
    film_rows: tuple[FilmRow, ...]
    shot_count: int
    graph: Graph
    # Clip files with no record that the lock vouches for by checksum: counted as cached,
    # and recorded in the cache by the build (`restore`).
    vouched: dict[str, ClipRecord] = field(default_factory=dict)

    @property
    def films(self) -> tuple[Film, ...]:
        """Every film, keyed by its clips as known when it was planned."""
        return tuple(row.film for row in self.film_rows)

    @property
    def variants(self) -> tuple[str, ...]:
        return self.graph.expansion.variants

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.graph.expansion.warnings

    @property
    def to_render(self) -> list[PlanRow]:
        """Rows a build works on: renders, tasks in flight to collect, clips to fetch."""
        return [row for row in self.rows if row.status != ShotState.CACHED]

    @property
    def cost_needed(self) -> float:
        return round(sum(row.estimate or 0.0 for row in self.to_render), 2)

    @property
    def cost_total(self) -> float:
        """What every render of the storyboard costs, cached or not."""
        return round(sum(row.price or 0.0 for row in self.rows), 2)

    @property
    def unpriced(self) -> list[PlanRow]:
        """Renders whose price nobody knows: a budget cannot hold them."""
        return [row for row in self.rows if row.renders and row.price is None]

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
                    "status": state.name,
                    "reasons": list(state.said),
                    "why": [reason.why.value for reason in state.reasons],
                }
                for s, state in ((row.film, row.state) for row in self.film_rows)
            ],
            "totals": {
                "shots": self.shot_count,
                "unique_renders": len(self.rows),
                "renders_needed": sum(1 for row in self.rows if row.renders),
                "in_flight": sum(1 for row in self.rows if row.status == ShotState.IN_FLIGHT),
                "in_team_cache": sum(1 for row in self.rows if row.status == ShotState.REMOTE),
                "cached": sum(1 for row in self.rows if row.status == ShotState.CACHED),
                "cost_needed": self.cost_needed,
                "cost_total": self.cost_total,
                "unpriced_renders": len(self.unpriced),
                "keys_known_later": sum(1 for row in self.rows if row.shot.pending),
            },
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Loaded:
    """A storyboard read, expanded for one renderer, and planned against its cache."""

    spec: Spec
    decisions: Decisions  # of its build
    plan: Plan
    cache: Cache
    renderer: str
    lock: Lock | None
    films: Path  # the folder its films go to
    outputs: OutputIndex  # the checksums of the files there (saved by whoever writes them)
    remote: Remote | None = None
    remote_problem: RemoteError | None = None  # the team cache is set but did not answer
    settings: ProjectSettings = ({}, None)  # the project's storyboard.toml, read once

    @property
    def lock_path(self) -> Path:
        return lockfile.lock_path(self.spec.path, self.renderer)


def load(target: Target, note: Callable[[str], None]) -> Loaded:
    """Read and expand the storyboard `target` names and plan it against its cache, and the
    team cache when the project has one; `note` hears repairs."""
    spec = read_spec(target.spec)  # its problems are raised with expansion's, all at once
    renderer = PREVIEW if target.preview else spec.storyboard.renderer
    environment = target.environment
    project = project_settings(spec.root)
    settings = remote_settings(project, environment.remote) if target.remote else None
    remote = None
    if settings is not None:
        from pipeline.cache.remote import open_remote  # the client: only for a team cache

        remote = open_remote(settings)
    root = resolve_root(spec.path, target.cache_override)
    cache = Cache(root, note, remote, private_urls=environment.private_urls)
    spec, decisions, graph = graph_for(spec, renderer, cache, target.max_shots)
    lock = lockfile.read(lockfile.lock_path(spec.path, renderer))
    paid = is_paid(renderer)
    films = film_dir(spec.path, spec.storyboard.name, renderer, paid, target.output_dir)
    outputs = OutputIndex.load(cache.root / "outputs.json")
    where = Where(cache, lock, outputs, films, remote)
    problem = None
    try:
        plan = make_plan(graph, where, is_paid(renderer))
    except RemoteError as exc:
        problem = exc
        plan = make_plan(graph, replace(where, remote=None), is_paid(renderer))
    return Loaded(
        spec, decisions, plan, cache, renderer, lock, films, outputs, remote, problem, project
    )


def graph_for(
    spec: Spec, renderer: str, cache: Cache, max_shots: int | None = None
) -> tuple[Spec, Decisions, Graph]:
    """The one loader of a build's graph, for every command that asks one: the storyboard
    with its inputs by URL fetched, the decisions of `renderer`'s build (its own file: a pick
    on the preview build never changes a paid film), expanded, every key known whose frames
    the cache holds."""
    decisions = read_decisions(spec.path, kind(renderer), spec.root)
    spec = fetch_inputs(spec, cache)
    fonts = Fonts(cache.fonts)
    graph = Graph.of(expand(spec, renderer, max_shots, fonts, decisions, cache.clips.flagged))
    return spec, decisions, graph.resolved_from(cache.frame)


def fetch_inputs(spec: Spec, cache: Cache) -> Spec:
    """The storyboard with each first frame it names by URL downloaded into the cache (once)
    and named by its local copy; a download that fails is one more of its problems."""
    fetched = dict(spec.files)
    problems = Problems(list(spec.problems))
    for loc, name in file_fields(spec.storyboard):
        if is_url(name) and name not in fetched:
            try:
                fetched[name] = cache.inputs.path(name)
            except FetchError as exc:
                error = spec.source.error(loc, f"'{name}' {exc}", code="url")
                problems.add(error, owners(spec.storyboard, loc))
    failed = spec.failed | problems.failed
    return replace(spec, files=fetched, problems=tuple(problems.found), failed=failed)


@dataclass(frozen=True)
class Where:
    """What a plan asks about the storyboard's keys: the cache, the lock, the films folder
    (and the checksums of its files), and the team cache."""

    cache: Cache
    lock: Lock | None
    outputs: OutputIndex
    films: Path
    remote: Remote | None = None


def make_plan(graph: Graph, where: Where, paid: bool = True) -> Plan:
    """Each render of the graph, as it is now, and each film, with its state: what the
    cache, the journal, the failures, the lock and the team cache say of its key."""
    cache, lock, remote = where.cache, where.lock, where.remote
    shots = graph.renders()
    keys = [shot.key for shot in shots]
    cached = cache.clips.present(keys)
    vouched = _vouched(cache, lock, [k for k in keys if k not in cached]) if lock else {}
    cached |= vouched.keys()
    absent = [key for key in keys if key not in cached]
    shared = remote.run(remote.present("clips", absent)) if remote and absent else set()
    facts = ShotFacts(
        cached=frozenset(cached),
        in_flight=frozenset(k for k, e in cache.journal.entries().items() if e.task_uuid),
        failures=cache.failures.all(),
        locked=LockedShots.of(lock),
        remote=frozenset(shared),
    )
    rows = []
    for node, shot in zip(graph.nodes, shots, strict=True):
        variants = graph.variants[node]
        state = shot_state(shot, variants, facts)
        rows.append(PlanRow(shot, variants, state.name, state.reasons, paid, node))
    films = graph.films()
    known = film_facts(films, where, frozenset(vouched))
    film_rows = tuple(FilmRow(film, film_state(film, known)) for film in films)
    return Plan(tuple(rows), film_rows, graph.expansion.shot_count, graph, vouched)


def film_facts(
    films: tuple[Film, ...] | list[Film],
    where: Where,
    vouched: frozenset[str] = frozenset(),
) -> FilmFacts:
    """What the state of these films depends on: the lock, the clips and films in the cache
    (and the clips the lock vouches for), the files in the films folder, the team's films."""
    keys = {render.key for film in films for render in film.renders()}
    stored = where.cache.films.checksums()
    outputs, folder = where.outputs, where.films
    return FilmFacts(
        locked=where.lock.sequences if where.lock else {},
        cached_clips=frozenset(where.cache.clips.present(keys)) | (vouched & keys),
        stored_films=stored,
        file_matches=lambda film, sha: outputs.matches(output_path(folder, film), sha),
        captions_match=lambda film, sums: _captions_match(film, sums, where),
        lock_present=where.lock is not None,
        team_films=_team_films(where.remote, [f.key for f in films if f.key not in stored]),
        refused=frozenset(k for k in keys if (f := where.cache.failures.get(k)) and f.final),
    )


def _captions_match(film: Film, sums: Mapping[str, str], where: Where) -> bool:
    """Whether a film's caption files are beside it with these checksums (by file name)."""
    if film.recipe.captions is None:
        return True
    wanted = captions.paths(output_path(where.films, film))
    if set(sums) != {path.name for path in wanted.values()}:
        return False
    return all(where.outputs.matches(path, sums[path.name]) for path in wanted.values())


def _team_films(remote: Remote | None, keys: list[str]) -> frozenset[str]:
    if remote is None or not keys:
        return frozenset()
    try:
        return frozenset(remote.run(remote.present("films", keys)))
    except RemoteError:
        return frozenset()  # said when the plan asked the team cache for its clips


def _vouched(cache: Cache, lock: Lock, keys: list[str]) -> dict[str, ClipRecord]:
    """Clip files with no record (a cache from before records were kept beside clips, whose
    index was lost) that the lock vouches for by checksum: cached, not paid for again. The
    records they will be given."""
    found = {}
    for key in keys:
        locked = lock.shots.get(key)
        if locked is None:
            continue
        path = cache.clips.path(key)
        if not path.is_file() or sha256_file(path) != locked.sha256:
            continue
        try:
            info = media.probe(path)
        except MediaError:
            continue
        relative = str(path.relative_to(cache.root))
        found[key] = record_of(key, locked, relative, path.stat().st_size, info)
    return found


def restore(plan: Plan, cache: Cache) -> None:
    """Record in the cache the clips the lock vouched for when the storyboard was planned."""
    for record in plan.vouched.values():
        cache.clips.put_record(record)


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
        "still": isinstance(shot, Still),
        "kind": shot.kind,
        "key_known": not shot.pending,
        "after": [
            {
                "shot": a.label,
                "frame": a.frame,
                "key": a.upstream,
                "known": bool(shot.image_hashes[a.slot]),
            }
            for a in shot.after
        ],
        "status": row.status,
        "reasons": list(said(row.reasons)),
        "why": [reason.why.value for reason in row.reasons],
        "price": row.price,
        "estimate": row.estimate,
    }
