"""What no storyboard of a cache still uses, and removing it.

Every storyboard that ever built into the cache is recorded there (cache/storyboards.py), so
gc keeps what any of them uses whatever paths it is given: each storyboard's shots for every
renderer, every key its locks name, and whatever is in flight. A storyboard or lock that cannot
be read keeps the keys of its last build, and is listed; when gc cannot know what one uses at
all, it removes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from pipeline import lock as lockfile
from pipeline.cache import Cache, ClipRecord, FilmRecord, Registered
from pipeline.errors import StoryboardError, UserError
from pipeline.plan import graph_for
from pipeline.render import RENDERERS
from pipeline.spec import find_storyboards
from pipeline.spec import load as load_spec


@dataclass(frozen=True)
class Unreadable:
    path: Path
    problem: str
    kept: int  # keys kept because its last build used them
    known: bool  # whether what it uses is known (from its last build)


@dataclass(frozen=True)
class Collection:
    unused: list[ClipRecord]
    in_use: int
    in_flight: int
    storyboards: list[Path]
    unreadable: list[Unreadable]
    unused_films: list[FilmRecord]

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.unused) + sum(r.bytes for r in self.unused_films)

    @property
    def blocked(self) -> list[Unreadable]:
        """What makes removing anything unsafe: things whose use is not known at all."""
        return [u for u in self.unreadable if not u.known]


def collect(cache: Cache, paths: list[Path]) -> Collection:
    """What is unused (nothing is removed): `paths` add storyboards never built here."""
    registered, broken = cache.storyboards.entries()
    specs: dict[Path, Registered | None] = {Path(r.spec): r for r in registered}
    found, unparsed = find_storyboards(paths)
    for path in found:
        specs.setdefault(path.resolve(), None)
    used: set[str] = set()  # clip keys and film keys: both are content hashes
    unreadable = [Unreadable(p, problem, 0, known=False) for p, problem in unparsed]
    unreadable += [Unreadable(p, "the record of a storyboard is damaged", 0, False) for p in broken]
    for spec_path, entry in specs.items():
        last_build = set(chain.from_iterable(entry.keys.values())) if entry else set()
        problems = _uses(spec_path, entry, used, cache)
        for path, problem in problems:
            used |= last_build
            unreadable.append(Unreadable(path, problem, len(last_build), entry is not None))
    in_flight = set(cache.journal.entries())
    records = cache.clips.records()
    unused = [r for r in records if r.key not in used and r.key not in in_flight]
    unused.sort(key=lambda r: r.created)
    films = [r for r in cache.films.records() if r.key not in used]
    return Collection(
        unused=unused,
        in_use=sum(1 for r in records if r.key in used),
        in_flight=len(in_flight),
        storyboards=sorted(specs),
        unreadable=unreadable,
        unused_films=sorted(films, key=lambda r: r.created),
    )


def _uses(
    spec_path: Path, entry: Registered | None, used: set[str], cache: Cache
) -> list[tuple[Path, str]]:
    """Add the keys a storyboard and its locks use to `used`; what could not be read."""
    problems = []
    locks = {Path(p) for p in entry.locks} if entry else set()
    locks |= {lockfile.lock_path(spec_path, renderer) for renderer in RENDERERS}
    for lock_path in sorted(locks):
        try:
            lock = lockfile.read(lock_path)
        except StoryboardError as exc:
            problems.append((lock_path, exc.message))
            continue
        if lock is not None:
            used.update(lock.shots)
            used.update(entry.key for entry in lock.sequences.values())
    try:
        loaded = load_spec(spec_path)
        for renderer in RENDERERS:
            # With the frames the cache holds: a shot that starts from another's frame is
            # kept by the key that frame gives it.
            _, _, graph = graph_for(loaded, renderer, cache)
            used.update(shot.key for shot in graph.renders())
            used.update(sequence.key for sequence in graph.films())
    except StoryboardError as exc:
        problems.append((spec_path, exc.render().splitlines()[0]))
    return problems


def remove(cache: Cache, collection: Collection) -> None:
    """Remove the unused clips, unless something's use could not be known."""
    if collection.blocked:
        names = ", ".join(str(u.path) for u in collection.blocked)
        raise UserError(
            f"gc removes nothing: what these use cannot be known: {names}",
            "fix them (or move them away), or tell gc they are gone: storyboard gc --forget SPEC",
        )
    for record in collection.unused:
        cache.clips.forget(record.key)
    for film in collection.unused_films:
        cache.films.forget(film.key)
    cache.frames.prune({record.sha256 for record in cache.clips.records()})
