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

obstore (not s3fs): conditional puts are part of its API (`mode="create"`, `mode={"e_tag"}`)
with their own exceptions, it is async and sync alike, and it brings no botocore.
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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.cache.clips import ClipRecord
from pipeline.cache.films import FilmRecord
from pipeline.cache.remote_settings import INSTALL_HINT, NO_REMOTE_ENV, RemoteSettings
from pipeline.errors import CacheError, RemoteDamaged, RemoteError, RemoteReadOnly, UserError

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
    endpoint = (
        settings.endpoint
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    options: dict[str, Any] = {
        "connect_timeout": timedelta(seconds=5),
        "timeout": timedelta(seconds=600),
        "allow_http": bool(endpoint and endpoint.startswith("http://")),
    }
    config: dict[str, Any] = {}
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
    return Remote(settings, store)


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

    def __init__(self, settings: RemoteSettings, store: Any) -> None:
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
        """Every key with a record under `kind`: one listing, a page per 1,000."""
        import obstore

        keys: set[str] = set()
        try:
            async for page in obstore.list(self.store, f"{kind}/", chunk_size=1000):
                keys.update(
                    Path(meta["path"]).stem for meta in page if meta["path"].endswith(".json")
                )
        except Exception as exc:
            raise _remote_error(exc, f"list {kind}", self.url) from None
        return keys

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

    async def _chunks(self, path: str, what: str) -> AsyncIterator[Any]:
        """The bytes of `path` as they arrive; every failure of the team cache a
        RemoteError."""
        import obstore

        try:
            result = await obstore.get_async(self.store, path)
            stream = result.stream(min_chunk_size=CHUNK)
        except FileNotFoundError:
            raise RemoteDamaged(
                f"{self.url}/{path}: the bytes of {what} are missing from the team cache",
                "its record is there but its bytes are not: push them again from a "
                "machine that has them (storyboard push)",
            ) from None
        except Exception as exc:
            raise _remote_error(exc, f"fetch {what}", self.url) from None
        while True:
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise _remote_error(exc, f"fetch {what}", self.url) from None
            yield chunk

    async def put_clip(self, record: ClipRecord, clip: Path, replace: bool = False) -> ClipRecord:
        """Share a clip; the record the team cache keeps (the first writer's) is returned.
        `replace`: this build rendered the key again on purpose (--force), so its clip takes
        the place of the record it read, and of nothing written since."""
        return await self._put(f"clips/{record.key}.json", record, clip, ClipRecord, replace)

    async def put_film(self, record: FilmRecord, film: Path) -> FilmRecord:
        return await self._put(f"films/{record.key}.json", record, film, FilmRecord, False)

    async def image_id(self, image_sha: str, provider: str) -> str | None:
        import obstore

        try:
            result = await obstore.get_async(self.store, f"uploads/{provider}/{image_sha}")
            return bytes(await result.bytes_async()).decode("utf-8").strip() or None
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise _remote_error(exc, "read an image id", self.url) from None

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
        """Give the key back, if the lease is still this build's."""
        import obstore

        if lease.lost:
            return
        with contextlib.suppress(Exception):
            current = await self._lease_read(lease.key)
            if current is not None and current[0].holder == self.holder:
                await obstore.delete_async(self.store, f"leases/{lease.key}.json")

    # -- the parts -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _slot(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # one per event loop
            self._slots = (loop, asyncio.Semaphore(self.settings.concurrency))
        async with self._slots[1]:
            yield

    async def _exists(self, path: str) -> bool:
        import obstore

        async with self._slot():
            try:
                await obstore.head_async(self.store, path)
            except FileNotFoundError:
                return False
            except Exception as exc:
                raise _remote_error(exc, f"look up {path}", self.url) from None
        return True

    async def _json(self, path: str, model: type[Model]) -> tuple[Model, str] | None:
        import obstore

        async with self._slot():
            try:
                result = await obstore.get_async(self.store, path)
                data = bytes(await result.bytes_async())
            except FileNotFoundError:
                return None
            except Exception as exc:
                raise _remote_error(exc, f"read {path}", self.url) from None
        try:
            return model.model_validate_json(data), str(result.meta.get("e_tag") or "")
        except ValidationError:
            raise RemoteDamaged(
                f"{self.url}/{path}: not a record storyboard can read",
                "it was not written by storyboard, or was damaged: delete it from the bucket",
            ) from None

    async def _create(self, path: str, data: bytes | Path) -> bool:
        """Write `path` unless it exists: True when this call wrote it."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        async with self._slot():
            try:
                await obstore.put_async(self.store, path, data, mode="create")
            except (AlreadyExistsError, PreconditionError):
                return False
            except Exception as exc:
                raise _remote_error(exc, f"write {path}", self.url) from None
        return True

    async def _put(
        self, path: str, record: Model, file: Path, model: type[Model], replace: bool
    ) -> Model:
        import obstore
        from obstore.exceptions import PreconditionError

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
            try:
                await obstore.put_async(self.store, path, data, mode={"e_tag": kept[1]})
            except PreconditionError:
                return await self._put(path, record, file, model, False)
            except Exception as exc:
                raise _remote_error(exc, f"write {path}", self.url) from None
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
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        body = self._lease_body(renderer, label)
        async with self._slot():
            try:
                result = await obstore.put_async(
                    self.store, f"leases/{key}.json", body.model_dump_json().encode(), mode="create"
                )
            except (AlreadyExistsError, PreconditionError):
                return None
            except Exception as exc:
                raise _remote_error(exc, f"take the lease of {label}", self.url) from None
        return Lease(key, body, str(result.get("e_tag") or ""))

    async def _lease_read(self, key: str) -> tuple[LeaseBody, str] | None:
        return await self._json(f"leases/{key}.json", LeaseBody)

    async def _lease_take_over(
        self, key: str, renderer: str, label: str, old: LeaseBody, etag: str
    ) -> Lease | None:
        import obstore
        from obstore.exceptions import NotFoundError, PreconditionError

        task = old.task_uuid if old.renderer == renderer else None
        body = self._lease_body(renderer, label, task)
        async with self._slot():
            try:
                result = await obstore.put_async(
                    self.store,
                    f"leases/{key}.json",
                    body.model_dump_json().encode(),
                    mode={"e_tag": etag},
                )
            except (PreconditionError, NotFoundError, FileNotFoundError):
                return None  # another build took it first, or it was released
            except Exception as exc:
                raise _remote_error(exc, f"take over the lease of {label}", self.url) from None
        return Lease(key, body, str(result.get("e_tag") or ""))

    def _lease_write(self, lease: Lease, body: LeaseBody, action: str) -> None:
        import obstore
        from obstore.exceptions import NotFoundError, PreconditionError

        with lease.guard:
            if lease.lost:
                raise RemoteError(f"{action}: the lease was taken over by another build")
            try:
                result = obstore.put(
                    self.store,
                    f"leases/{lease.key}.json",
                    body.model_dump_json().encode(),
                    mode={"e_tag": lease.etag},
                )
            except (PreconditionError, NotFoundError, FileNotFoundError):
                lease.lost = True
                raise RemoteError(
                    f"{action}: the lease was taken over by another build (this one did not "
                    "renew it in time)"
                ) from None
            except Exception as exc:
                raise _remote_error(exc, action, self.url) from None
            lease.body, lease.etag = body, str(result.get("e_tag") or "")


def _remote_error(exc: Exception, action: str, url: str) -> RemoteError:
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    detail = str(exc).splitlines()[0][:240] if str(exc) else type(exc).__name__
    if isinstance(exc, PermissionDeniedError):
        return RemoteReadOnly(
            f"the team cache {url} refuses to {action}: access denied",
            "these credentials may only read it (a CI runner's): nothing is pushed",
        )
    if isinstance(exc, UnauthenticatedError):
        return RemoteError(
            f"the team cache {url} refuses the credentials ({detail})",
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    return RemoteError(
        f"cannot {action} in the team cache {url}: {detail}",
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
