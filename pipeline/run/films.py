"""The film step: each film made once per key. A film already there is left; one made before
(here or by the team) is placed from the cache; the rest are joined, here or on the cluster,
and kept. `state.film_state` says which, from the facts `plan.film_facts` gathers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pipeline import captions, media, qc
from pipeline.assemble import assemble, clean_work_folders, clip_input, failure
from pipeline.cache import Cache, ClipRecord, write_atomic
from pipeline.cache.remote import Remote
from pipeline.cards import draw_missing
from pipeline.cluster import FilmJob, join_on_cluster
from pipeline.errors import MediaError, RemoteDamaged, RemoteError, RemoteReadOnly, shown
from pipeline.lock import Lock, MadeFilm
from pipeline.measure import Loudness, listen
from pipeline.nodes import Card, Film, Node
from pipeline.outputs import OutputIndex, output_path
from pipeline.plan import Where, film_facts
from pipeline.qc import Findings, qc_json
from pipeline.share import pull_film, push_film
from pipeline.state import FilmFacts, FilmState, Joined, film_state


class FilmReporter(Protocol):
    """Where the film step says what it does: a line per event, and the joins as they go
    (a progress display counts them, and the time they take)."""

    def note(self, message: str) -> None: ...

    def films_joining(self, count: int) -> None: ...

    def film_started(self, name: str) -> None: ...

    def film_finished(self, name: str, ok: bool) -> None: ...


@dataclass(frozen=True)
class SequenceOutcome:
    sequence: Film
    status: Joined
    path: Path
    method: str = ""
    sha256: str = ""
    bytes: int = 0
    duration: float = 0.0  # of the film as made (its clips may differ from what was asked)
    error: str | None = None
    findings: Findings | None = None  # what the quality check found in it (None: unchecked)
    loudness: Loudness | None = None  # its sound, measured as made
    captions: dict[str, str] = field(default_factory=dict)  # caption files: name -> sha256

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence.name,
            "status": self.status,
            "path": str(self.path),
            "method": self.method,
            "duration": round(self.duration or self.sequence.duration, 3),
            "error": self.error,
            "qc": qc_json(self.findings),
            "loudness": (
                self.loudness.figures(self.sequence.recipe.loudness) if self.loudness else None
            ),
            "captions": [str(self.path.with_name(name)) for name in sorted(self.captions)],
        }


@dataclass(frozen=True)
class Joining:
    """A film to join: where it is in the list, its clips' records (one per piece of its
    recipe), and every other file its recipe names, by key or digest."""

    index: int
    film: Film
    records: list[ClipRecord]
    files: dict[str, Path]


@dataclass(frozen=True)
class Sharing:
    """The team cache and the cluster, as the film step uses them."""

    remote: Remote | None = None
    push: bool = True
    cluster: str | None = None  # a Dask scheduler's address


def join(
    sequences: list[Film],
    where: Where,
    reporter: FilmReporter,
    sharing: Sharing = Sharing(),
    check: bool = False,
) -> list[SequenceOutcome]:
    """Each film of `sequences`, made once per key (see the module's note). The facts are
    asked again as the step changes them: films pulled, cards drawn. With `check` (a paid
    build), each film joined is checked for what it shows (qc.py); a film made before says
    what its check found then."""
    note = reporter.note
    clean_work_folders(where.films)
    facts, problems = _ready_to_join(sequences, where, note, sharing)
    results: dict[int, SequenceOutcome] = {}
    to_join: list[Joining] = []
    for index, sequence in enumerate(sequences):
        settled = _settled(sequence, film_state(sequence, facts).name, problems, where, note)
        if isinstance(settled, SequenceOutcome):
            results[index] = settled
        else:
            to_join.append(replace(settled, index=index))
    reporter.films_joining(len(to_join))
    results.update(_joined_all(to_join, where, sharing, reporter))
    made = [_captioned(results[index], where, note) for index in sorted(results)]
    where.outputs.save()
    return [_quality(outcome, where.cache, note) for outcome in made] if check else made


def _quality(
    outcome: SequenceOutcome, cache: Cache, note: Callable[[str], None]
) -> SequenceOutcome:
    """A film with what the quality check finds in it: checked now when this build joined
    it, else as its stored record says (None: never checked). Its picture is what its takes
    show, as each was checked when delivered (a take kept before the check existed is checked
    now, once); its sound and length are the film's own."""
    film = outcome.sequence
    if outcome.status != Joined.BUILT:
        stored = cache.films.get(film.key)
        return replace(outcome, findings=stored.qc if stored is not None else None)
    try:
        takes = [_take_findings(use.shot, cache) for use in film.uses]
        sound = listen(outcome.path) if qc.needs_listening(film) else None
        voice = _voice_length(film, cache)
    except (MediaError, OSError, ValueError) as exc:
        problem = exc.message if isinstance(exc, MediaError) else str(exc)
        note(f"warning: the quality check of {film.name} could not be made: {problem}")
        return outcome
    findings = qc.of_film(film, outcome.duration, takes, sound, voice)
    cache.films.checked(film.key, findings)
    if findings:
        note(f"warning: qc: film {film.name}: {qc.said(findings)}")
    return replace(outcome, findings=findings)


def _take_findings(shot: Node, cache: Cache) -> qc.Findings | None:
    """What the check found in a take a film uses: as its record keeps it, or checked now
    (and kept) when it was never checked (a paid take kept before the check existed)."""
    record = cache.clips.get(shot.key)
    if record is None or isinstance(shot, Card):  # a card is drawn here, not paid for
        return None
    if record.qc is not None:
        return record.qc
    path = cache.clips.path(shot.key)
    info, _ = media.check_render(path, shot.output, watch=qc.watch_for(shot))
    findings = qc.of_render(shot, info)
    cache.clips.put_record(record.model_copy(update={"qc": findings}))
    return findings


def _voice_length(film: Film, cache: Cache) -> float:
    """Seconds of the voice-over a film mixes (0 without one): a render's, as recorded, or a
    file's, as decoded."""
    voice = film.voice
    if voice is None or film.recipe.voice is None:
        return 0.0
    if voice.render is not None:
        record = cache.clips.get(voice.render.key)
        return record.duration if record is not None else 0.0
    return media.sound_info(film.files[voice.digest]).duration


def _ready_to_join(
    sequences: list[Film], where: Where, note: Callable[[str], None], sharing: Sharing
) -> tuple[FilmFacts, dict[str, str]]:
    """What is known of the films once the team's films are pulled and the missing cards
    drawn; and why each card that could not be drawn was not, by its key."""
    cache = where.cache
    local = replace(where, remote=None)  # the team's films are asked of once
    facts = film_facts(sequences, replace(where, remote=sharing.remote))
    wanted = [s for s in sequences if film_state(s, facts).name == FilmState.REMOTE]
    if wanted and sharing.remote is not None and _pull_films(sharing.remote, cache, wanted, note):
        facts = film_facts(sequences, local)
    done = (FilmState.CURRENT, FilmState.STORED)
    joining = [s for s in sequences if film_state(s, facts).name not in done]
    drawn, problems = draw_missing(joining, cache, note)
    for problem in problems.values():
        note(f"failed   {problem}")
    if drawn:
        facts = film_facts(sequences, local)
    return facts, problems


def _settled(
    sequence: Film,
    state: FilmState,
    problems: dict[str, str],
    where: Where,
    note: Callable[[str], None],
) -> SequenceOutcome | Joining:
    """A film's outcome when it needs no join (current, placed from the cache, blocked,
    failed), else what joining it takes."""
    cache = where.cache
    path = output_path(where.films, sequence)
    if state == FilmState.CURRENT:  # its clips are not needed, nor even in this cache
        return _current(sequence, path, where.lock, cache)
    placed = _placed(sequence, path, cache, where.outputs) if state == FilmState.STORED else None
    if placed is not None:
        note(f"placed   {sequence.name} (made before, from the cache) -> {shown(path)}")
        return placed
    failed = [problems[u.shot.key] for u in sequence.uses if u.shot.key in problems]
    if failed:
        error = f"its card could not be drawn: {failed[0]}"
        return SequenceOutcome(sequence, Joined.FAILED, path, error=error)
    records = [cache.clips.get(piece.source) for piece in sequence.recipe.pieces]
    missing = [u.shot.label for u, r in zip(sequence.uses, records, strict=True) if r is None]
    sounds = sound_files(sequence, cache)
    if isinstance(sounds, list) or missing:
        names = ", ".join(dict.fromkeys([*missing, *(sounds if isinstance(sounds, list) else [])]))
        return SequenceOutcome(sequence, Joined.BLOCKED, path, error=f"clips missing: {names}")
    too_long = _voice_too_long(sequence, cache)
    if too_long:
        note(f"failed   sequence {sequence.name}: {too_long}")
        return SequenceOutcome(sequence, Joined.FAILED, path, error=too_long)
    held = [record for record in records if record is not None]
    return Joining(-1, sequence, held, {**sequence.files, **sounds})


def _joined_all(
    to_join: list[Joining], where: Where, sharing: Sharing, reporter: FilmReporter
) -> dict[int, SequenceOutcome]:
    """The films to join, joined here (and shared with the team) or on the cluster."""
    cache, outputs, films, note = where.cache, where.outputs, where.films, reporter.note
    if sharing.cluster and sharing.remote is not None and to_join:
        return _joined_on_cluster(to_join, films, cache, outputs, sharing, reporter)
    results: dict[int, SequenceOutcome] = {}
    checked: dict[str, media.ClipInfo] = {}  # a clip shared by films is hashed once
    for job in to_join:
        path = output_path(films, job.film)
        reporter.film_started(job.film.name)
        outcome = _joined(job, path, checked, cache, outputs, note)
        reporter.film_finished(job.film.name, outcome.status == Joined.BUILT)
        results[job.index] = outcome
    if sharing.remote is not None and sharing.push:
        built = [o for o in results.values() if o.status == Joined.BUILT]
        _push_films(sharing.remote, cache, built, note)
    return results


def _pull_films(
    remote: Remote, cache: Cache, sequences: list[Film], note: Callable[[str], None]
) -> int:
    """The films of `sequences` the team made, into the local cache: how many came."""

    async def one(sequence: Film) -> bool:
        try:
            return await pull_film(remote, cache, sequence.key, sequence.name) is not None
        except RemoteDamaged as exc:
            note(f"warning: {exc.message}; joining it here instead")
            return False

    async def every() -> list[bool]:
        return list(await asyncio.gather(*(one(s) for s in sequences)))

    try:
        return sum(Remote.run(every()))
    except RemoteError as exc:
        note(f"warning: {exc.message}; films are joined here")
        return 0


def _push_films(
    remote: Remote, cache: Cache, outcomes: list[SequenceOutcome], note: Callable[[str], None]
) -> None:
    records = [r for o in outcomes if (r := cache.films.get(o.sequence.key)) is not None]
    if not records:
        return

    async def every() -> None:
        await asyncio.gather(*(push_film(remote, cache, record) for record in records))

    try:
        Remote.run(every())
    except RemoteReadOnly:
        return  # a CI runner's key: it reads the team cache and writes nothing
    except RemoteError as exc:
        note(f"warning: films not shared ({exc.message}); `storyboard push` shares them later")


def _joined_on_cluster(
    jobs: list[Joining],
    films: Path,
    cache: Cache,
    outputs: OutputIndex,
    sharing: Sharing,
    reporter: FilmReporter,
) -> dict[int, SequenceOutcome]:
    assert sharing.remote is not None and sharing.cluster is not None
    note = reporter.note
    for job in jobs:
        reporter.film_started(job.film.name)
    made = join_on_cluster(
        sharing.cluster,
        sharing.remote,
        cache,
        [FilmJob.of(job.film, job.records, job.files) for job in jobs],
        note,
    )
    results = {}
    for job, film in zip(jobs, made, strict=True):
        index, sequence = job.index, job.film
        path = output_path(films, sequence)
        if isinstance(film, str):
            note(f"failed   sequence {sequence.name}: {film}")
            reporter.film_finished(sequence.name, False)
            results[index] = SequenceOutcome(sequence, Joined.FAILED, path, error=film)
            continue
        placed = _placed(sequence, path, cache, outputs)
        reporter.film_finished(sequence.name, placed is not None)
        if placed is None:
            error = "the film joined on the cluster could not be placed"
            results[index] = SequenceOutcome(sequence, Joined.FAILED, path, error=error)
            continue
        note(
            f"joined   {sequence.name} ({film.duration:.2f} s, {film.method}, cluster) -> {shown(path)}"
        )
        results[index] = replace(placed, status=Joined.BUILT, method=film.method)
    return results


def _current(sequence: Film, path: Path, previous: Lock | None, cache: Cache) -> SequenceOutcome:
    stored = cache.films.get(sequence.key)
    loudness = stored.loudness if stored is not None else None
    if _unchanged(sequence, previous):
        assert previous is not None
        locked = previous.sequences[sequence.name]
        return SequenceOutcome(
            sequence,
            Joined.CURRENT,
            path,
            "",
            locked.sha256,
            locked.bytes,
            locked.duration,
            loudness=loudness,
            captions=dict(locked.captions),
        )
    sha, size, length = (stored.sha256, stored.bytes, stored.duration) if stored else ("", 0, 0.0)
    return SequenceOutcome(sequence, Joined.CURRENT, path, "", sha, size, length, loudness=loudness)


def _placed(
    sequence: Film, path: Path, cache: Cache, outputs: OutputIndex
) -> SequenceOutcome | None:
    try:
        record = cache.films.place(sequence.key, path)
    except OSError:
        return None  # joined again instead
    if record is None:
        return None
    outputs.record(path, record.sha256)
    return SequenceOutcome(
        sequence,
        Joined.PLACED,
        path,
        "stored",
        record.sha256,
        record.bytes,
        record.duration,
        loudness=record.loudness,
    )


def sound_files(film: Film, cache: Cache) -> dict[str, Path] | list[str]:
    """The files of the film's generated voice and bed, by key (as its recipe names them);
    or the labels of those the cache does not hold yet."""
    found: dict[str, Path] = {}
    missing = []
    for sound in (film.voice, film.bed):
        if sound is None or sound.render is None:
            continue
        record = cache.clips.get(sound.render.key)
        if record is None:
            missing.append(sound.render.label)
        else:
            found[sound.render.key] = cache.root / record.path
    return missing or found


def _voice_too_long(sequence: Film, cache: Cache) -> str:
    """Why a generated voice does not fit in its film ("" when it does): it runs past the
    film's end from where it starts. Known once the voice is spoken."""
    voice = sequence.voice.render if sequence.voice is not None else None
    record = cache.clips.get(voice.key) if voice is not None else None
    if voice is None or record is None or sequence.voice is None:
        return ""
    start = sequence.voice.at
    room = sequence.duration - start
    if record.duration <= room + 0.05:
        return ""
    return (
        f"{sequence.voice_at}: sequence '{sequence.name}': voice '{voice.label}' is "
        f"{record.duration:.2f} s long, {record.duration - room:.2f} s more than the "
        f"{room:g} s of film from voice_start {start:g} s: shorten its text, "
        "speed it up (speed:), or start it earlier"
    )


def _joined(
    joining: Joining,
    path: Path,
    checked: dict[str, media.ClipInfo],
    cache: Cache,
    outputs: OutputIndex,
    note: Callable[[str], None],
) -> SequenceOutcome:
    sequence = joining.film
    try:
        clips = [
            clip_input(cache.clips.path(record.key), piece, record, checked, use.named)
            for piece, use, record in zip(
                sequence.recipe.pieces, sequence.uses, joining.records, strict=True
            )
        ]
        started = time.monotonic()
        made = assemble(sequence.recipe, clips, joining.files, path, sequence.name)
    except MediaError as exc:
        error = failure(exc, sequence.loudness_at)
        note(f"failed   sequence {sequence.name}: {error}")
        return SequenceOutcome(sequence, Joined.FAILED, path, error=error)
    sha = outputs.record(path)
    cache.films.put(
        sequence.key, path, sha, made.info.duration, made.method, loudness=made.loudness
    )
    note(
        f"joined   {sequence.name} ({made.info.duration:.2f} s, {made.method}, "
        f"{time.monotonic() - started:.1f} s{_said(made.loudness)}) -> {shown(path)}"
    )
    return SequenceOutcome(
        sequence,
        Joined.BUILT,
        path,
        made.method,
        sha,
        path.stat().st_size,
        made.info.duration,
        loudness=made.loudness,
    )


def _said(loudness: Loudness | None) -> str:
    if loudness is None or loudness.silent:
        return ""
    return f", {loudness.integrated:.1f} LUFS, peak {loudness.true_peak:.1f} dBTP"


def made(films: tuple[Film, ...], outcomes: list[SequenceOutcome], where: Where) -> list[MadeFilm]:
    """The films the lock records: those this build made or left current; of the others,
    those the lock names unchanged (their files may be on another machine) and those that
    are current (`film_state` decides)."""
    done = (Joined.BUILT, Joined.CURRENT, Joined.PLACED)
    kept = {o.sequence.name: o for o in outcomes if o.status in done}
    facts = film_facts(films, replace(where, remote=None))
    found = []
    for film in films:
        path = output_path(where.films, film)
        outcome = kept.get(film.name)
        if outcome is not None:
            length = outcome.duration or film.duration
            found.append(
                MadeFilm(film, path, outcome.sha256, outcome.bytes, length, outcome.captions)
            )
        elif _unchanged(film, where.lock) or film_state(film, facts).name == FilmState.CURRENT:
            current = _current(film, path, where.lock, where.cache)
            found.append(
                MadeFilm(
                    film, path, current.sha256, current.bytes, current.duration, current.captions
                )
            )
    return found


def _unchanged(film: Film, lock: Lock | None) -> bool:
    locked = lock.sequences.get(film.name) if lock else None
    return locked is not None and locked.key == film.key


def _captioned(
    outcome: SequenceOutcome, where: Where, note: Callable[[str], None]
) -> SequenceOutcome:
    """A film made or put back, with its caption files written beside it (atomically): its
    voice-over's sentences timed over the voice render's measured length, and its subtitle
    cues. A film whose voice's length is not known here (neither this cache nor the lock
    has the voice) fails: its captions could not be timed. A film without captions has
    those this tool wrote beside an earlier film of its name removed."""
    film = outcome.sequence
    given = film.recipe.captions
    if outcome.status not in (Joined.BUILT, Joined.PLACED):
        return outcome
    if given is None:  # the captions an earlier film of this name had are not this one's
        for path in captions.paths(outcome.path).values():
            where.outputs.remove_if_ours(path)
        return outcome
    length = _spoken_length(given.voice, where)
    error = "its captions cannot be timed: the voice is in neither this cache nor the lock"
    if length is not None:
        cues = captions.timed(given, length, outcome.duration or film.duration)
        made = captions.texts(cues)
        try:
            for suffix, path in captions.paths(outcome.path).items():
                write_atomic(path, made[suffix])
                where.outputs.record(path)
            return replace(outcome, captions=captions.checksums(made, outcome.path))
        except OSError as exc:
            error = f"cannot write its captions ({exc.strerror or exc})"
    note(f"failed   sequence {film.name}: {error}")
    return replace(outcome, status=Joined.FAILED, error=error)


def _spoken_length(voice: str, where: Where) -> float | None:
    """Seconds of the voice render the captions are timed over, as measured when it was
    cached (or as the lock records it); 0 when they time no voice."""
    if not voice:
        return 0.0
    record = where.cache.clips.get(voice)
    if record is not None:
        return record.duration
    locked = where.lock.shots.get(voice) if where.lock is not None else None
    return locked.duration if locked is not None else None
