"""The team cache's protocol on an in-memory object store: records, blobs and leases, each
failure of the store said once, in words. No server, no process; SeaweedFS proves the same
against a real S3 in test_remote.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pipeline.cache import Cache, ClipRecord
from pipeline.cache.remote import LeaseBody, Remote
from pipeline.cache.remote_settings import RemoteSettings
from pipeline.cache.store import Failure, MemoryStore, Stored
from pipeline.errors import RemoteDamaged, RemoteError, RemoteReadOnly
from pipeline.hashing import sha256_file
from pipeline.nodes import Node
from pipeline.run.leases import Team
from tests.conftest import a_shot

SETTINGS = RemoteSettings(url="s3://team/t", lease_seconds=2)


def machine(store: MemoryStore) -> Remote:
    """A machine of the team: its own holder name, the team's bucket."""
    return Remote(SETTINGS, store)


def record(tmp_path: Path, key: str, content: bytes) -> tuple[ClipRecord, Path]:
    clip = tmp_path / f"{key}.mp4"
    clip.write_bytes(content)
    found = ClipRecord(
        key=key,
        path=f"clips/{key}.mp4",
        sha256=sha256_file(clip),
        bytes=len(content),
        duration=6.0,
        width=1366,
        height=768,
        renderer="runware",
        label=key,
        created=time.time(),
    )
    return found, clip


def shot(key: str) -> Node:
    return a_shot(key)


def test_the_first_clip_shared_is_the_keys_and_a_forced_render_replaces_it(tmp_path) -> None:
    store = MemoryStore()
    first, second = machine(store), machine(store)
    mine, mine_clip = record(tmp_path, "k", b"mine")
    (tmp_path / "other").mkdir()
    theirs, theirs_clip = record(tmp_path / "other", "k", b"theirs")
    assert Remote.run(first.put_clip(mine, mine_clip)).sha256 == mine.sha256
    kept = Remote.run(second.put_clip(theirs, theirs_clip))
    assert kept.sha256 == mine.sha256  # the first writer's
    replaced = Remote.run(second.put_clip(theirs, theirs_clip, replace=True))
    assert replaced.sha256 == theirs.sha256
    assert Remote.run(first.clip("k")).sha256 == theirs.sha256


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"not the clip", "is damaged"),
        (None, "are missing from the team cache"),
    ],
)
def test_a_blob_that_is_not_its_records_never_enters_the_cache(tmp_path, blob, message) -> None:
    store = MemoryStore()
    remote = machine(store)
    clip, path = record(tmp_path, "k", b"the clip's bytes")
    Remote.run(remote.put_clip(clip, path))
    if blob is None:
        del store.objects[f"blobs/{clip.sha256}"]
    else:
        store.objects[f"blobs/{clip.sha256}"] = Stored(blob, '"x"')
    target = tmp_path / "fetched.mp4"
    with pytest.raises(RemoteDamaged, match=message):
        Remote.run(remote.fetch(clip.sha256, clip.bytes, target, "the clip of k"))
    assert not target.exists()


@pytest.mark.parametrize(
    ("failure", "kind", "message"),
    [
        (Failure.DENIED, RemoteReadOnly, "refuses to write clips/k.json: access denied"),
        (Failure.UNAUTHENTICATED, RemoteError, "refuses the credentials"),
        (Failure.UNREACHABLE, RemoteError, "cannot look up blobs/"),
    ],
)
def test_each_failure_of_the_store_is_said_once_in_words(tmp_path, failure, kind, message) -> None:
    store = MemoryStore()
    remote = machine(store)
    clip, path = record(tmp_path, "k", b"bytes")
    Remote.run(remote.put_clip(clip, path))  # the blob is there: the record write fails
    del store.objects["clips/k.json"]
    if failure == Failure.DENIED:
        store.read_only = True  # reads work: the record write is refused
    else:
        store.failing = failure
    with pytest.raises(kind) as caught:
        Remote.run(remote.put_clip(clip, path))
    assert type(caught.value) is kind
    assert message in caught.value.message
    assert caught.value.hint  # what to do: credentials, the address, or work without it


def test_of_two_machines_racing_for_a_key_one_holds_it(tmp_path) -> None:
    store = MemoryStore()
    machines = [machine(store) for _ in range(8)]

    async def race() -> list[object]:
        never = asyncio.Event()

        async def one(remote: Remote) -> object:
            async def delivered() -> bool:
                return False

            try:
                return await asyncio.wait_for(
                    remote.acquire("k", "runware", "k", delivered, never, lambda _: None), 0.3
                )
            except TimeoutError:
                return None  # still waiting for the holder

        return list(await asyncio.gather(*(one(m) for m in machines)))

    leases = Remote.run(race())
    assert sum(lease is not None for lease in leases) == 1


def test_a_dead_machines_lease_is_taken_over_with_its_task(tmp_path) -> None:
    store = MemoryStore()
    dead = LeaseBody(
        holder="gone:1:x",
        host="gone",
        pid=1,
        renderer="runware",
        label="k",
        taken=time.time() - 60,
        expires=time.time() - 30,  # a whole lease period past by this clock
        task_uuid="task-1",
    )
    store.objects["leases/k.json"] = Stored(dead.model_dump_json().encode(), '"dead"')
    notes: list[str] = []

    async def take() -> object:
        async def delivered() -> bool:
            return False

        return await machine(store).acquire(
            "k", "runware", "k", delivered, asyncio.Event(), notes.append
        )

    lease = Remote.run(take())
    assert lease is not None and lease.body.task_uuid == "task-1"
    assert any("took over the lease of gone (pid 1)" in n and "task-1" in n for n in notes)


def test_a_lease_taken_over_refuses_its_old_holders_writes(tmp_path) -> None:
    store = MemoryStore()
    holder = machine(store)

    async def take() -> object:
        async def delivered() -> bool:
            return False

        return await holder.acquire("k", "runware", "k", delivered, asyncio.Event(), print)

    lease = Remote.run(take())
    current = store.objects["leases/k.json"]
    assert store.replace_now("leases/k.json", b"{}", current.etag) is not None  # a taker
    with pytest.raises(RemoteError, match="taken over by another build"):
        holder.note_task(lease, "task-2")
    assert lease.lost
    assert store.objects["leases/k.json"].data == b"{}"  # the taker's stays


def test_a_read_only_key_renders_without_leases_and_says_so_once(tmp_path) -> None:
    store = MemoryStore(read_only=True)
    cache = Cache(tmp_path / "cache")
    notes: list[str] = []
    team = Team(machine(store), cache, "runware", notes.append, asyncio.Event())

    async def claims() -> list[object]:
        both = [team.claim(shot("a"), False), team.claim(shot("b"), False)]
        return [await asyncio.wait_for(claim, 5) for claim in both]

    first, second = Remote.run(claims())
    assert first.lease is None and second.lease is None and first.record is None
    assert sum("renders take no lease" in n for n in notes) == 1


def test_a_clip_the_team_has_is_pulled_not_rendered(tmp_path) -> None:
    store = MemoryStore()
    clip, path = record(tmp_path, "k", b"the team's clip")
    Remote.run(machine(store).put_clip(clip, path))
    cache = Cache(tmp_path / "cache")
    team = Team(machine(store), cache, "runware", print, asyncio.Event())
    claim = Remote.run(team.claim(shot("k"), False))
    assert claim.record is not None and claim.lease is None
    assert cache.clips.get("k").sha256 == clip.sha256
    assert cache.clips.path("k").read_bytes() == b"the team's clip"
