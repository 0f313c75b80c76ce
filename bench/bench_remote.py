"""Benchmark the team cache on a local S3 server (SeaweedFS, from the `remote` extra).

1. `pull` of 50 clips of 8 MB into an empty local cache, against the transport floor: the same
   objects fetched by a bare concurrent loop of obstore's own `get` (the same concurrency,
   bytes kept in memory, no checksum, no file). Target (issue 13): within 1.5x.
2. A no-op `storyboard build` of 1,000 cached shots with the team cache set, against the same
   build without it. Target: under 2 s.

    python bench/bench_remote.py [--clips 50] [--megabytes 8] [--shots 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import find_tool, median_run
from bench_noop import fill_cache
from bench_plan import make_storyboard

from pipeline.cache import Cache, ClipRecord
from pipeline.cache.remote import Remote, open_remote
from pipeline.cache.remote_settings import RemoteSettings
from pipeline.hashing import sha256_file
from pipeline.share import pull_keys
from pipeline.testing.seaweed import SeaweedS3

PULL_TARGET = 1.5
NOOP_TARGET = 2.0


def share_clips(remote: Remote, folder: Path, count: int, megabytes: int) -> dict[str, str]:
    """`count` clips of random bytes in the team cache: key -> label."""
    source = folder / "source"
    source.mkdir()
    records = []
    for index in range(count):
        path = source / f"{index}.mp4"
        path.write_bytes(os.urandom(megabytes * 1024 * 1024))
        key = f"{index:064x}"
        records.append(
            (
                ClipRecord(
                    key=key,
                    path=str(path),
                    sha256=sha256_file(path),
                    bytes=path.stat().st_size,
                    duration=6.0,
                    width=1366,
                    height=768,
                    renderer="runware",
                    label=f"clip{index}",
                    created=time.time(),
                ),
                path,
            )
        )

    async def put_all() -> None:
        await asyncio.gather(*(remote.put_clip(record, path) for record, path in records))

    Remote.run(put_all())
    return {record.key: record.label for record, _ in records}


def time_pull(remote: Remote, folder: Path, clips: dict[str, str], run: int) -> float:
    cache = Cache(folder / f"cache-{run}")
    started = time.perf_counter()
    done = Remote.run(pull_keys(cache, remote, clips, {}, lambda message: None))
    elapsed = time.perf_counter() - started
    cache.close()
    assert done.clips == len(clips), done
    return elapsed


def time_floor(remote: Remote, clips: dict[str, str], folder: Path | None = None) -> float:
    """The same blobs through obstore's own get, as many at once as the pull allows: kept in
    memory, or (with `folder`) written to files there, neither checked nor recorded."""
    import obstore

    records = Remote.run(_records(remote, list(clips)))
    if folder is not None:
        folder.mkdir()

    async def fetch_all() -> int:
        slots = asyncio.Semaphore(remote.settings.concurrency)

        async def one(sha: str) -> int:
            async with slots:
                result = await obstore.get_async(remote.store, f"blobs/{sha}")
                data = await result.bytes_async()
                if folder is not None:
                    await asyncio.to_thread((folder / sha).write_bytes, data)
                return len(data)

        return sum(await asyncio.gather(*(one(r.sha256) for r in records)))

    started = time.perf_counter()
    Remote.run(fetch_all())
    return time.perf_counter() - started


async def _records(remote: Remote, keys: list[str]) -> list[ClipRecord]:
    found = await asyncio.gather(*(remote.clip(key) for key in keys))
    return [record for record in found if record is not None]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--megabytes", type=int, default=8)
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    storyboard = find_tool("storyboard", "pip install -e '.[remote]'")
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as temp, SeaweedS3() as s3:
        folder = Path(temp)
        env = s3.env(prefix="bench")
        os.environ.update(env)
        # The no-op first: a child forked from a process that holds the pulled bytes
        # would report them in its peak memory.
        project = folder / "noop"
        project.mkdir()
        spec = make_storyboard(project, args.shots)
        cached = fill_cache(spec, project / ".storyboard")
        command = [storyboard, "build", str(spec), "--preview", "-q"]
        with_remote = {**os.environ, **env}
        without = {k: v for k, v in with_remote.items() if k != "STORYBOARD_REMOTE"}
        median_run(command, project, 1, with_remote)  # joins the films and shares them
        seconds, memory = median_run(command, project, args.repeat, with_remote)
        alone, _ = median_run(command, project, args.repeat, without)
        verdict = "ok" if seconds < NOOP_TARGET else "MISSED"
        print(
            f"no-op build, {cached} cached shots, with the team cache: {seconds:.3f} s "
            f"({seconds / NOOP_TARGET:.2f} of the {NOOP_TARGET} s target, {verdict}; "
            f"{seconds / alone:.2f}x the same build without it, {alone:.3f} s), "
            f"peak {memory:.0f} MB"
        )

        remote = open_remote(RemoteSettings(url=env["STORYBOARD_REMOTE"]))
        clips = share_clips(remote, folder, args.clips, args.megabytes)
        total = args.clips * args.megabytes
        time_floor(remote, clips)  # warm the server's caches for both
        pulls, floors, written = [], [], []
        for run in range(args.repeat):  # interleaved: the disk's writeback hits all alike
            pulls.append(time_pull(remote, folder, clips, run))
            floors.append(time_floor(remote, clips))
            written.append(time_floor(remote, clips, folder / f"floor-{run}"))
        pull, floor, stored = (statistics.median(t) for t in (pulls, floors, written))
        ratio = pull / floor
        print(
            f"pull {args.clips} clips of {args.megabytes} MB ({total} MB): {pull:.2f} s "
            f"({total / pull:.0f} MB/s, checked by sha256 and stored in the cache)\n"
            f"  obstore's bare get into memory: {floor:.2f} s ({total / floor:.0f} MB/s): "
            f"pull is {ratio:.2f}x it (target within {PULL_TARGET}x: "
            f"{'ok' if ratio <= PULL_TARGET else 'MISSED'})\n"
            f"  obstore's bare get written to files: {stored:.2f} s: pull is "
            f"{pull / stored:.2f}x it"
        )


if __name__ == "__main__":
    main()
