"""The team cache on S3-compatible object storage, and the leases that keep a team from paying
twice for one shot.

    s3://bucket/prefix/
      blobs/<sha256>              the bytes of a clip or film, named by their checksum
      clips/<key>.json            a clip's record: created after its blob, so a record always
                                  has its bytes; never overwritten (the first writer wins)
      films/<key>.json            a film's record, likewise
      uploads/<provider>/<sha256> the provider's id of an uploaded image
      leases/<key>.json           who renders a key now, and the task it sent

Every write is a conditional create (`If-None-Match: *`); a lease's renewal and takeover
replace only the version they read (`If-Match`), so of two machines racing for a key exactly
one holds it. What is fetched is checked: bytes that do not hash to their record's checksum
never enter a local cache.

The bucket is an `ObjectStore` (store.py): obstore's S3Store in use, a MemoryStore in unit
tests. obstore (not s3fs): conditional puts are part of its API (`mode="create"`,
`mode={"e_tag"}`) with their own exceptions, it is async and sync alike, and it brings no
botocore. A store's failures are put in words here, once (`_doing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.cache.clips import ClipRecord
from pipeline.cache.films import FilmRecord
from pipeline.cache.remote_settings import INSTALL_HINT, RemoteSettings
from pipeline.cache.store import S3, Failure, ObjectStore, StoreFailure
from pipeline.errors import CacheError, RemoteDamaged, RemoteError, RemoteReadOnly, UserError
from pipeline.settings import NO_REMOTE_ENV

if TYPE_CHECKING:
    from obstore._store import ClientConfig, S3Config

CHUNK = 8 * 1024 * 1024

Model = TypeVar("Model", bound=BaseModel)
Result = TypeVar("Result")


def open_remote(settings: RemoteSettings) -> Remote:
    try:
        from obstore.store import S3Store
    except ImportError:
        raise UserError(
            f"a team cache is set ({settings.url}) but its library is not installed",
            INSTALL_HINT,
        ) from None
    endpoint = settings.endpoint
    options: ClientConfig = {
        "connect_timeout": timedelta(seconds=5),
        "timeout": timedelta(seconds=600),
        "allow_http": bool(endpoint and endpoint.startswith("http://")),
    }
    config: S3Config = {}
    if endpoint:
        config["endpoint"] = endpoint
    if settings.region:
        config["region"] = settings.region
    try:
        store = S3Store(
            settings.bucket,
            prefix=settings.prefix or None,
            config=config,
            client_options=options,
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=30)},
        )
    except (ValueError, TypeError) as exc:  # obstore's refusal of an address or option
        raise UserError(f"the team cache {settings.url} cannot be used: {exc}") from None
    return Remote(settings, S3(store))


class LeaseBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    holder: str  # host:pid:random, unique to one build
    host: str
    pid: int
    renderer: str
    label: str
    taken: float
    expires: float  # by the holder's clock
    task_uuid: str | None = None  # the task the holder sent: a taker collects it


@dataclass
class Lease:
    """A key this build holds in the team cache. Its writes go one at a time."""

    key: str
    body: LeaseBody
    etag: str
    lost: bool = False
    guard: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Sighting:
    etag: str
    since: float


class Remote:
    """One team cache. Methods are async; `run` drives one from code that is not."""

    def __init__(self, settings: RemoteSettings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    @property
    def url(self) -> str:
        return self.settings.url

    @staticmethod
    def run(work: Coroutine[Any, Any, Result]) -> Result:
        return asyncio.run(work)

    # -- records and bytes ---------------------------------------------------------------------

    async def clip(self, key: str) -> ClipRecord | None:
        found = await self._json(f"clips/{key}.json", ClipRecord)
        return found[0] if found else None

    async def film(self, key: str) -> FilmRecord | None:
        found = await self._json(f"films/{key}.json", FilmRecord)
        return found[0] if found else None

    async def present(self, kind: str, keys: Iterable[str]) -> set[str]:
        """Which of `keys` have a record under `kind` ("clips" or "films")."""
        wanted = list(dict.fromkeys(keys))

        async def has(key: str) -> str | None:
            return key if await self._exists(f"{kind}/{key}.json") else None

        found = await asyncio.gather(*(has(key) for key in wanted))
        return {key for key in found if key is not None}

    async def listed(self, kind: str) -> set[str]:
        """Every key with a record under `kind`: one listing."""
        with self._doing(f"list {kind}"):
            names = await self.store.names(f"{kind}/")
        return {Path(name).stem for name in names if name.endswith(".json")}

    async def fetch(self, sha256: str, size: int, target: Path, what: str) -> None:
        """The blob `sha256` into `target`, checked as it arrives; a blob that is not what its
        record says is refused and `target` removed."""
        path = f"blobs/{sha256}"
        digest = hashlib.sha256()
        got = 0
        async with self._slot():
            try:
                with open(target, "wb") as handle:
                    async for chunk in self._chunks(path, what):
                        got += len(chunk)
                        if got > size:
                            break  # longer than its record says: damaged, said below
                        # Off the event loop: hashing and writing 8 MB holds it for ~30 ms.
                        await asyncio.to_thread(_keep, chunk, digest, handle)
            except OSError as exc:  # the local disk: the team cache's errors are RemoteErrors
                _remove(target)
                raise CacheError(
                    f"{target.parent}: cannot write {what} fetched from the team cache "
                    f"({exc.strerror or exc})",
                    "free disk space or fix the cache folder, then build again",
                ) from None
            except BaseException:
                _remove(target)
                raise
        if got != size or digest.hexdigest() != sha256:
            _remove(target)
            raise RemoteDamaged(
                f"{self.url}/{path}: the team cache's copy of {what} is damaged ({got} bytes "
                f"with sha256 {digest.hexdigest()[:12]}, its record says {size} bytes with "
                f"{sha256[:12]}): refused",
                "push a good copy from a machine that has one (storyboard push), or render "
                "it again with --force",
            )

    async def _chunks(self, path: str, what: str) -> AsyncIterator[bytes]:
        """The bytes of `path` as they arrive; every failure of the team cache a
        RemoteError."""
        with self._doing(f"fetch {what}"):
            stream = await self.store.stream(path, CHUNK)
            if stream is None:
                raise RemoteDamaged(
                    f"{self.url}/{path}: the bytes of {what} are missing from the team cache",
                    "its record is there but its bytes are not: push them again from a "
                    "machine that has them (storyboard push)",
                )
            async for chunk in stream:
                yield chunk

    async def put_clip(self, record: ClipRecord, clip: Path, replace: bool = False) -> ClipRecord:
        """Share a clip; the record the team cache keeps (the first writer's) is returned.
        `replace`: this build rendered the key again on purpose (--force), so its clip takes
        the place of the record it read, and of nothing written since."""
        return await self._put(f"clips/{record.key}.json", record, clip, ClipRecord, replace)

    async def put_film(self, record: FilmRecord, film: Path) -> FilmRecord:
        return await self._put(f"films/{record.key}.json", record, film, FilmRecord, False)

    async def image_id(self, image_sha: str, provider: str) -> str | None:
        with self._doing("read an image id"):
            found = await self.store.read(f"uploads/{provider}/{image_sha}")
        if found is None:
            return None
        return found.data.decode("utf-8", errors="replace").strip() or None

    async def put_image_id(self, image_sha: str, provider: str, image_id: str) -> None:
        await self._create(f"uploads/{provider}/{image_sha}", image_id.encode("utf-8"))

    # -- leases --------------------------------------------------------------------------------

    async def acquire(
        self,
        key: str,
        renderer: str,
        label: str,
        delivered: Callable[[], Awaitable[bool]],
        stop: asyncio.Event,
        note: Callable[[str], None],
    ) -> Lease | None:
        """The key's lease, once no live build of the team holds it; None when `delivered()`
        says another build's clip arrived meanwhile, or when `stop` is set.

        A lease is expired when this build has seen the same version of it for a whole lease
        period (the holder stopped renewing it: it died), or when its expiry is a whole period
        past by this machine's clock (clocks of two machines may differ by less than that).
        An expired lease is taken over, and the task its holder sent comes with it.
        """
        ttl = self.settings.lease_seconds
        seen: _Sighting | None = None
        told = False
        while not stop.is_set():
            lease = await self._lease_create(key, renderer, label)
            if lease is not None:
                if await delivered():  # the last holder shared its clip, then let go
                    await self.release(lease)
                    return None
                return lease
            current = await self._lease_read(key)
            if current is None:
                continue  # released between the two calls: try again
            body, etag = current
            if seen is None or seen.etag != etag:
                seen = _Sighting(etag, time.monotonic())
            stale = time.monotonic() - seen.since >= ttl or time.time() > body.expires + ttl
            if stale:
                taken = await self._lease_take_over(key, renderer, label, body, etag)
                if taken is not None:
                    note(
                        f"{label}: took over the lease of {body.host} (pid {body.pid}), which "
                        "stopped renewing it"
                        + (f"; collecting its task {body.task_uuid}" if body.task_uuid else "")
                    )
                    return taken
                continue
            if await delivered():
                return None
            if not told:
                told = True
                note(f"{label}: {body.host} (pid {body.pid}) is rendering it; waiting for its clip")
            await _sleep_or_stop(stop, min(5.0, ttl / 4))
        return None

    def note_task(self, lease: Lease, task_uuid: str) -> None:
        """Write the task into the lease before it is sent (blocking, on purpose): if this
        build dies, whoever takes the lease over collects the task instead of paying again."""
        updated = lease.body.model_copy(update={"task_uuid": task_uuid})
        self._lease_write(lease, updated, f"record task {task_uuid} in the lease of {lease.key}")

    async def keep(self, lease: Lease, note: Callable[[str], None]) -> None:
        """Renew the lease until cancelled."""
        ttl = self.settings.lease_seconds
        while not lease.lost:
            await asyncio.sleep(ttl / 3)
            updated = lease.body.model_copy(update={"expires": time.time() + ttl})
            try:
                await asyncio.to_thread(
                    self._lease_write, lease, updated, f"renew the lease of {lease.key}"
                )
            except RemoteError as exc:
                if lease.lost:
                    note(f"{lease.body.label}: {exc.message}")
                    return
                note(f"{lease.body.label}: {exc.message}; trying again")

    async def release(self, lease: Lease) -> None:
        """Give the key back, if the lease is still this build's. A release that fails
        leaves the lease to expire: a build never stops for it."""
        if lease.lost:
            return
        with contextlib.suppress(RemoteError):
            current = await self._lease_read(lease.key)
            if current is not None and current[0].holder == self.holder:
                with self._doing(f"release the lease of {lease.key}"):
                    await self.store.delete(f"leases/{lease.key}.json")

    # -- the parts -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _slot(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # one per event loop
            self._slots = (loop, asyncio.Semaphore(self.settings.concurrency))
        async with self._slots[1]:
            yield

    @contextlib.contextmanager
    def _doing(self, action: str) -> Iterator[None]:
        """The store's failures while doing `action`, in words: the one place."""
        try:
            yield
        except StoreFailure as exc:
            raise _remote_error(exc, action, self.url) from None

    async def _exists(self, path: str) -> bool:
        async with self._slot():
            with self._doing(f"look up {path}"):
                return await self.store.exists(path)

    async def _json(self, path: str, model: type[Model]) -> tuple[Model, str] | None:
        async with self._slot():
            with self._doing(f"read {path}"):
                found = await self.store.read(path)
        if found is None:
            return None
        try:
            return model.model_validate_json(found.data), found.etag
        except ValidationError:
            raise RemoteDamaged(
                f"{self.url}/{path}: not a record storyboard can read",
                "it was not written by storyboard, or was damaged: delete it from the bucket",
            ) from None

    async def _create(self, path: str, data: bytes | Path) -> bool:
        """Write `path` unless it exists: True when this call wrote it."""
        async with self._slot():
            with self._doing(f"write {path}"):
                return await self.store.create(path, data) is not None

    async def _put(
        self, path: str, record: Model, file: Path, model: type[Model], replace: bool
    ) -> Model:
        sha = getattr(record, "sha256")  # noqa: B009 - ClipRecord and FilmRecord both have it
        if not await self._exists(f"blobs/{sha}"):
            await self._create(f"blobs/{sha}", file)
        data = record.model_dump_json().encode("utf-8")
        if await self._create(path, data):
            return record
        kept = await self._json(path, model)
        if kept is None:  # deleted between the two calls: write it again
            return await self._put(path, record, file, model, replace)
        if not replace or getattr(kept[0], "sha256") == sha:  # noqa: B009
            return kept[0]
        async with self._slot():
            with self._doing(f"write {path}"):
                written = await self.store.replace(path, data, kept[1])
        if written is None:
            return await self._put(path, record, file, model, False)
        return record

    def _lease_body(self, renderer: str, label: str, task: str | None = None) -> LeaseBody:
        now = time.time()
        host, pid = socket.gethostname(), os.getpid()
        return LeaseBody(
            holder=self.holder,
            host=host,
            pid=pid,
            renderer=renderer,
            label=label,
            taken=now,
            expires=now + self.settings.lease_seconds,
            task_uuid=task,
        )

    async def _lease_create(self, key: str, renderer: str, label: str) -> Lease | None:
        body = self._lease_body(renderer, label)
        async with self._slot():
            with self._doing(f"take the lease of {label}"):
                etag = await self.store.create(
                    f"leases/{key}.json", body.model_dump_json().encode()
                )
        return None if etag is None else Lease(key, body, etag)

    async def _lease_read(self, key: str) -> tuple[LeaseBody, str] | None:
        return await self._json(f"leases/{key}.json", LeaseBody)

    async def _lease_take_over(
        self, key: str, renderer: str, label: str, old: LeaseBody, etag: str
    ) -> Lease | None:
        """The lease, taken from its holder; None when another build took it first, or it
        was released."""
        task = old.task_uuid if old.renderer == renderer else None
        body = self._lease_body(renderer, label, task)
        async with self._slot():
            with self._doing(f"take over the lease of {label}"):
                new = await self.store.replace(
                    f"leases/{key}.json", body.model_dump_json().encode(), etag
                )
        return None if new is None else Lease(key, body, new)

    def _lease_write(self, lease: Lease, body: LeaseBody, action: str) -> None:
        with lease.guard:
            if lease.lost:
                raise RemoteError(f"{action}: the lease was taken over by another build")
            with self._doing(action):
                etag = self.store.replace_now(
                    f"leases/{lease.key}.json", body.model_dump_json().encode(), lease.etag
                )
            if etag is None:
                lease.lost = True
                raise RemoteError(
                    f"{action}: the lease was taken over by another build (this one did not "
                    "renew it in time)"
                )
            lease.body, lease.etag = body, etag


def _remote_error(exc: StoreFailure, action: str, url: str) -> RemoteError:
    if exc.failure == Failure.DENIED:
        return RemoteReadOnly(
            f"the team cache {url} refuses to {action}: access denied",
            "these credentials may only read it (a CI runner's): nothing is pushed",
        )
    if exc.failure == Failure.UNAUTHENTICATED:
        return RemoteError(
            f"the team cache {url} refuses the credentials ({exc.detail})",
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    return RemoteError(
        f"cannot {action} in the team cache {url}: {exc.detail}",
        "check the address (AWS_ENDPOINT_URL) and the network, or run with "
        f"{NO_REMOTE_ENV}=1 to work without the team cache",
    )


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _keep(chunk: Any, digest: Any, handle: Any) -> None:
    view = memoryview(chunk)
    digest.update(view)
    handle.write(view)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
