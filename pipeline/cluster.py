"""Films joined on a Dask distributed cluster, for campaigns whose films outnumber one
machine's cores.

Renders stay driven from the build's machine (their work is remote already). Each film is one
job: a worker fetches the film's clips from the team cache (checked by checksum), joins them
with the same code a local build uses, and shares the film in the team cache; the build then
fetches it like any film the team made. Workers need `storyboard[remote]` installed and the
team cache's credentials in their environment (AWS_*): no secret travels with a job.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.assemble import assemble, clip_input, failure
from pipeline.cache import Cache, ClipRecord, FilmRecord
from pipeline.cache.remote import Remote, open_remote
from pipeline.cache.remote_settings import INSTALL_HINT, RemoteSettings
from pipeline.errors import MediaError, RemoteError, StoryboardError, UserError
from pipeline.hashing import sha256_file
from pipeline.nodes import Film, JoinRecipe
from pipeline.project import ProjectSettings
from pipeline.settings import CLUSTER_ENV
from pipeline.share import pull_film, push_clip


def ignored_cluster(project: ProjectSettings) -> str | None:
    """A warning when the project's settings name a cluster: it is not used."""
    settings, path = project
    remote = settings.get("remote")
    named = "cluster" in settings or (isinstance(remote, dict) and "cluster" in remote)
    if not named:
        return None
    return (
        f"warning: {path}: `cluster` is ignored: a repository cannot choose where films are "
        f"joined (a cluster's answers run code here); give --cluster or {CLUSTER_ENV}"
    )


@dataclass(frozen=True)
class FilmJob:
    """Everything a worker needs to join one film: its recipe, its clips' records (fetched
    there from the team cache), and the bytes of every other file the recipe names, by key
    or digest (a bed, a voice, fonts, a logo: a worker may not see the build's files)."""

    name: str
    key: str
    recipe: JoinRecipe
    clips: tuple[ClipRecord, ...]  # one per piece of the recipe
    named: tuple[tuple[str, str], ...]  # how messages name each piece, and its shot
    inputs: dict[str, bytes] = field(default_factory=dict)
    loudness_at: str = ""  # where its loudness target is said (nodes.Film.loudness_at)

    @classmethod
    def of(cls, film: Film, clips: list[ClipRecord], files: Mapping[str, Path]) -> FilmJob:
        inputs = {source: path.read_bytes() for source, path in files.items()}
        named = tuple(use.named for use in film.uses)
        return cls(film.name, film.key, film.recipe, tuple(clips), named, inputs, film.loudness_at)


def join_on_cluster(
    address: str,
    remote: Remote,
    cache: Cache,
    jobs: list[FilmJob],
    note: Callable[[str], None],
) -> list[FilmRecord | str]:
    """Each job's film record, or why it failed, in the order of `jobs`. The films are in the
    team cache (and fetched into the local one) when this returns."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UserError(
            "--cluster needs Dask distributed, which is not installed", INSTALL_HINT
        ) from None
    _share_clips(remote, cache, jobs, note)
    try:
        client = Client(address, timeout="15s")
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: not an address
        raise UserError(
            f"cannot reach the cluster at {address} ({exc})",
            "start a scheduler and workers (dask scheduler; dask worker ADDRESS), or build "
            "without --cluster",
        ) from None
    results: dict[int, FilmRecord | str] = {}
    with client:
        workers = len(client.scheduler_info().get("workers", {}))
        note(f"cluster  {address}: {len(jobs)} film(s) over {workers} worker(s)")
        futures = {
            client.submit(join_film, remote.settings, job, pure=False): index
            for index, job in enumerate(jobs)
        }
        for future in as_completed(futures):
            index = futures[future]
            try:
                results[index] = future.result()
            except Exception as exc:  # a worker that died, or a fault of this tool there
                results[index] = f"the cluster failed to join it: {exc!r}"
    made = {i: r for i, r in results.items() if isinstance(r, FilmRecord)}
    names = {i: jobs[i].name for i in made}
    results.update(Remote.run(_fetched(remote, cache, made, names)))
    return [results[index] for index in range(len(jobs))]


def join_film(settings: RemoteSettings, job: FilmJob) -> FilmRecord | str:
    """On a worker: fetch the clips, join them, share the film. A failure a person can act on
    comes back as its message."""
    try:
        return _join(open_remote(settings), job)
    except MediaError as exc:
        return failure(exc, job.loudness_at)
    except StoryboardError as exc:
        return exc.message


def _join(remote: Remote, job: FilmJob) -> FilmRecord:
    with tempfile.TemporaryDirectory(prefix="storyboard-film-") as folder:
        work = Path(folder)
        unique = {record.key: record for record in job.clips}

        async def fetch_all() -> None:
            await asyncio.gather(
                *(
                    remote.fetch(r.sha256, r.bytes, work / f"{r.key}.mp4", f"the clip of {r.label}")
                    for r in unique.values()
                )
            )

        Remote.run(fetch_all())
        files = {}
        for number, (source, data) in enumerate(job.inputs.items()):
            files[source] = work / f"input-{number}"
            files[source].write_bytes(data)
        checked: dict = {}
        clips = [
            clip_input(work / f"{record.key}.mp4", piece, record, checked, named)
            for piece, record, named in zip(job.recipe.pieces, job.clips, job.named, strict=True)
        ]
        film = work / "film.mp4"
        made = assemble(job.recipe, clips, files, film, job.name)
        record = FilmRecord(
            key=job.key,
            sha256=sha256_file(film),
            bytes=film.stat().st_size,
            duration=made.info.duration,
            method=made.method,
            created=time.time(),
            loudness=made.loudness,
        )
        Remote.run(remote.put_film(record, film))
        return record


def _share_clips(
    remote: Remote, cache: Cache, jobs: list[FilmJob], note: Callable[[str], None]
) -> None:
    """The workers read clips from the team cache: send it those it lacks."""
    records = {record.key: record for job in jobs for record in job.clips}

    async def share() -> None:
        there = await remote.present("clips", records)
        missing = [r for key, r in records.items() if key not in there]
        if missing:
            note(f"cluster  sharing {len(missing)} clip(s) the workers need")
        await asyncio.gather(*(push_clip(remote, cache, record) for record in missing))

    try:
        Remote.run(share())
    except RemoteError as exc:
        raise RemoteError(
            f"the cluster's workers cannot get the clips: {exc.message}", exc.hint
        ) from None


async def _fetched(
    remote: Remote, cache: Cache, made: dict[int, FilmRecord], names: dict[int, str]
) -> dict[int, FilmRecord | str]:
    """The films the workers shared, into the local cache, all at once."""

    async def one(index: int) -> FilmRecord | str:
        if cache.films.get(made[index].key) is not None:
            return made[index]
        try:
            fetched = await pull_film(remote, cache, made[index].key, names[index])
        except RemoteError as exc:
            return exc.message
        return fetched if fetched is not None else "the cluster's film is not in the team cache"

    found = await asyncio.gather(*(one(index) for index in made))
    return dict(zip(made, found, strict=True))
