"""The local cache and the team cache in step: pull what is missing here, push what is
missing there (as `dvc pull` and `dvc push` do). Builds call the one-key parts; the `pull` and
`push` commands call the whole-cache ones."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cache import Cache, ClipRecord, FilmRecord
from pipeline.cache.remote import Remote, open_remote
from pipeline.cache.remote_settings import remote_settings
from pipeline.errors import RemoteDamaged, UserError
from pipeline.project import project_settings
from pipeline.settings import RemoteEnvironment
from pipeline.state import RENDERS, ShotState

if TYPE_CHECKING:
    from pipeline.plan import Loaded

NO_REMOTE = "this project has no team cache"
REMOTE_HINT = (
    "set one in storyboard.toml at the project root ([remote] url = 's3://bucket/prefix'), or "
    "STORYBOARD_REMOTE=s3://bucket/prefix; credentials come from AWS_ACCESS_KEY_ID, "
    "AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL"
)

RECORD_ONLY = {"key", "path", "bytes", "created"}  # what the local cache sets itself


async def pull_clip(remote: Remote, cache: Cache, key: str, label: str) -> ClipRecord | None:
    """The team's clip of `key` into the local cache, checked; None when the team lacks it."""
    record = await remote.clip(key)
    if record is None:
        return None
    if record.key != key:
        raise RemoteDamaged(
            f"{remote.url}/clips/{key}.json: the record of {label} names another clip "
            f"({record.key[:12]}): refused",
            "delete that record from the bucket; the next build renders the shot",
        )
    return await _pull_clip_of(remote, cache, record, label)


async def _pull_clip_of(remote: Remote, cache: Cache, record: ClipRecord, label: str) -> ClipRecord:
    target = cache.tmp.path()
    await remote.fetch(record.sha256, record.bytes, target, f"the clip of {label}")
    fields = record.model_dump(exclude=RECORD_ONLY)
    return await asyncio.to_thread(cache.clips.put, record.key, target, False, **fields)


async def push_clip(
    remote: Remote, cache: Cache, record: ClipRecord, replace: bool = False
) -> ClipRecord:
    """Share a clip of the local cache; the clip the team keeps is returned. When another
    build's clip of the key got there first, this cache takes that one too, so that every
    machine's lock names the same clip."""
    kept = await remote.put_clip(record, cache.clips.path(record.key), replace)
    if kept.sha256 == record.sha256:
        return record
    return await _pull_clip_of(remote, cache, kept, record.label or record.key[:12])


async def pull_film(remote: Remote, cache: Cache, key: str, name: str) -> FilmRecord | None:
    record = await remote.film(key)
    if record is None or record.key != key:
        return None  # a film the team cannot vouch for is joined here instead
    target = cache.tmp.path()
    await remote.fetch(record.sha256, record.bytes, target, f"the film {name}")
    try:
        await asyncio.to_thread(
            cache.films.put,
            key,
            target,
            record.sha256,
            record.duration,
            record.method,
            record.qc,
            record.loudness,
        )
    finally:
        target.unlink(missing_ok=True)
    return cache.films.get(key)


async def push_film(remote: Remote, cache: Cache, record: FilmRecord) -> None:
    await remote.put_film(record, cache.films.path(record.key))


@dataclass
class Transfer:
    """What one `pull` or `push` moved."""

    clips: int = 0
    films: int = 0
    bytes: int = 0
    missing: int = 0  # wanted, and in neither place
    refused: int = 0  # damaged in the team cache: not taken


async def push_all(cache: Cache, remote: Remote, note: Callable[[str], None]) -> Transfer:
    """Every clip and film of the local cache the team cache lacks."""
    shared_clips, shared_films = await asyncio.gather(
        remote.listed("clips"), remote.listed("films")
    )
    clips = [r for r in cache.clips.records() if r.key not in shared_clips]
    films = [r for r in cache.films.records() if r.key not in shared_films]
    done = Transfer()

    async def one_clip(record: ClipRecord) -> None:
        await push_clip(remote, cache, record)
        done.clips += 1
        done.bytes += record.bytes
        note(f"pushed   {record.label or record.key[:12]} ({record.bytes / 1e6:.1f} MB)")

    async def one_film(record: FilmRecord) -> None:
        await push_film(remote, cache, record)
        done.films += 1
        done.bytes += record.bytes
        note(f"pushed   film {record.key[:12]} ({record.bytes / 1e6:.1f} MB)")

    await asyncio.gather(*(one_clip(r) for r in clips), *(one_film(r) for r in films))
    return done


async def pull_keys(
    cache: Cache,
    remote: Remote,
    clips: dict[str, str],
    films: dict[str, str],
    note: Callable[[str], None],
) -> Transfer:
    """The clips and films named (key -> label) that the local cache lacks, from the team."""
    here = cache.clips.present(list(clips))
    here_films = cache.films.keys()
    done = Transfer()

    async def one(key: str, label: str, film: bool) -> None:
        try:
            if film:
                record: ClipRecord | FilmRecord | None = await pull_film(remote, cache, key, label)
            else:
                record = await pull_clip(remote, cache, key, label)
        except RemoteDamaged as exc:
            done.refused += 1
            note(f"refused  {label}: {exc.message}")
            return
        if record is None:
            done.missing += 1
            return
        done.bytes += record.bytes
        if film:
            done.films += 1
        else:
            done.clips += 1
        note(f"pulled   {label} ({record.bytes / 1e6:.1f} MB)")

    await asyncio.gather(
        *(one(k, label, False) for k, label in clips.items() if k not in here),
        *(one(k, label, True) for k, label in films.items() if k not in here_films),
    )
    return done


def pull_storyboard(loaded: Loaded, note: Callable[[str], None]) -> Transfer:
    """Every clip of a storyboard this cache lacks and the team has, and its films."""
    if loaded.remote is None:
        raise UserError(NO_REMOTE, REMOTE_HINT)
    if loaded.remote_problem is not None:
        raise loaded.remote_problem
    clips = {
        row.shot.key: row.shot.label for row in loaded.plan.rows if row.status == ShotState.REMOTE
    }
    films = {s.key: s.name for s in loaded.plan.films}
    done = Remote.run(pull_keys(loaded.cache, loaded.remote, clips, films, note))
    done.missing = sum(1 for row in loaded.plan.rows if row.status in RENDERS)
    return done


def push_project(
    cache: Cache, root: Path, note: Callable[[str], None], environment: RemoteEnvironment
) -> Transfer:
    """Every clip and film of `cache` the project's team cache lacks."""
    settings = remote_settings(project_settings(root), environment)
    if settings is None:
        raise UserError(NO_REMOTE, REMOTE_HINT)
    return Remote.run(push_all(cache, open_remote(settings), note))
