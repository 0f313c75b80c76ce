"""What the team cache needs of object storage: bytes by path, and writes on a condition.

`ObjectStore` is the protocol; `S3` speaks it to any S3-compatible service through obstore,
`MemoryStore` keeps objects in memory (the team cache's unit tests, and a stand-in for a
bucket where there is none). A write that loses a race is a return value (None, False),
not an error: it is how two machines agree on who holds a key. Every other failure is a
`StoreFailure`, mapped from obstore's exceptions in one place (`_mapped`); `remote.py`
says it in words once, with what it was doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


class Failure(StrEnum):
    DENIED = "denied"  # the credentials may not do this (a read-only key)
    UNAUTHENTICATED = "unauthenticated"  # the credentials are refused
    UNREACHABLE = "unreachable"  # anything else: the network, the address, the service


class StoreFailure(Exception):
    """The object store could not do what was asked."""

    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


@dataclass(frozen=True)
class Stored:
    """An object as read: its bytes and the version they are (its ETag)."""

    data: bytes
    etag: str


class ObjectStore(Protocol):
    async def exists(self, path: str) -> bool: ...

    async def read(self, path: str) -> Stored | None:
        """The object, None when there is none."""

    async def stream(self, path: str, chunk: int) -> AsyncIterator[bytes] | None:
        """The object's bytes in chunks of about `chunk` bytes as they arrive; None when
        there is none."""

    async def create(self, path: str, data: bytes | Path) -> str | None:
        """Write the object unless it exists: its version, or None when it existed."""

    async def replace(self, path: str, data: bytes, etag: str) -> str | None:
        """Write the object if it is still version `etag`: its new version, or None when
        it changed or is gone."""

    def replace_now(self, path: str, data: bytes, etag: str) -> str | None:
        """`replace`, blocking: for writes that must land before the caller goes on."""

    async def delete(self, path: str) -> None: ...

    async def names(self, prefix: str) -> list[str]:
        """The paths of every object under `prefix`."""


# -- S3, through obstore ----------------------------------------------------------------


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """obstore's exceptions as StoreFailure: the one place that knows them."""
    from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

    try:
        yield
    except (StoreFailure, FileNotFoundError):
        raise
    except PermissionDeniedError as exc:
        raise StoreFailure(Failure.DENIED, _detail(exc)) from None
    except UnauthenticatedError as exc:
        raise StoreFailure(Failure.UNAUTHENTICATED, _detail(exc)) from None
    except Exception as exc:
        raise StoreFailure(Failure.UNREACHABLE, _detail(exc)) from None


def _detail(exc: Exception) -> str:
    return str(exc).splitlines()[0][:240] if str(exc) else type(exc).__name__


@dataclass
class S3:
    """An S3-compatible bucket (and prefix), through an obstore S3Store."""

    client: Any

    async def exists(self, path: str) -> bool:
        import obstore

        with _mapped():
            try:
                await obstore.head_async(self.client, path)
            except FileNotFoundError:
                return False
        return True

    async def read(self, path: str) -> Stored | None:
        import obstore

        with _mapped():
            try:
                result = await obstore.get_async(self.client, path)
                data = bytes(await result.bytes_async())
            except FileNotFoundError:
                return None
        return Stored(data, str(result.meta.get("e_tag") or ""))

    async def stream(self, path: str, chunk: int) -> AsyncIterator[bytes] | None:
        import obstore

        with _mapped():
            try:
                result = await obstore.get_async(self.client, path)
            except FileNotFoundError:
                return None
            return self._chunks(result.stream(min_chunk_size=chunk))

    async def _chunks(self, stream: Any) -> AsyncIterator[bytes]:
        while True:
            with _mapped():
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    return
            yield chunk

    async def create(self, path: str, data: bytes | Path) -> str | None:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        with _mapped():
            try:
                result = await obstore.put_async(self.client, path, data, mode="create")
            except (AlreadyExistsError, PreconditionError):
                return None
        return str(result.get("e_tag") or "")

    async def replace(self, path: str, data: bytes, etag: str) -> str | None:
        import obstore
        from obstore.exceptions import NotFoundError, PreconditionError

        with _mapped():
            try:
                result = await obstore.put_async(self.client, path, data, mode={"e_tag": etag})
            except (PreconditionError, NotFoundError, FileNotFoundError):
                return None
        return str(result.get("e_tag") or "")

    def replace_now(self, path: str, data: bytes, etag: str) -> str | None:
        import obstore
        from obstore.exceptions import NotFoundError, PreconditionError

        with _mapped():
            try:
                result = obstore.put(self.client, path, data, mode={"e_tag": etag})
            except (PreconditionError, NotFoundError, FileNotFoundError):
                return None
        return str(result.get("e_tag") or "")

    async def delete(self, path: str) -> None:
        import obstore

        with _mapped(), contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self.client, path)

    async def names(self, prefix: str) -> list[str]:
        import obstore

        found: list[str] = []
        with _mapped():
            async for page in obstore.list(self.client, prefix, chunk_size=1000):
                found.extend(meta["path"] for meta in page)
        return found


# -- in memory ------------------------------------------------------------------------------


@dataclass
class MemoryStore:
    """Objects in a dict, with versions, as a bucket keeps them. `failing`: every call fails
    so (as a read-only key, refused credentials or a dead network would); `read_only`:
    writes are denied, reads work."""

    objects: dict[str, Stored] = field(default_factory=dict)
    failing: Failure | None = None
    read_only: bool = False
    versions: Iterator[int] = field(default_factory=itertools.count)
    guard: threading.Lock = field(default_factory=threading.Lock)

    async def _call(self, writing: bool) -> None:
        """Each call lets other tasks run, as a call over the network does, then fails as
        the store is set to."""
        await asyncio.sleep(0)
        self._now(writing)

    def _now(self, writing: bool) -> None:
        if self.failing is not None:
            raise StoreFailure(self.failing, f"the store is {self.failing}")
        if writing and self.read_only:
            raise StoreFailure(Failure.DENIED, "access denied")

    def _version(self) -> str:
        return f'"{next(self.versions)}"'

    async def exists(self, path: str) -> bool:
        await self._call(False)
        return path in self.objects

    async def read(self, path: str) -> Stored | None:
        await self._call(False)
        return self.objects.get(path)

    async def stream(self, path: str, chunk: int) -> AsyncIterator[bytes] | None:
        await self._call(False)
        stored = self.objects.get(path)
        if stored is None:
            return None
        return _pieces(stored.data, chunk)

    async def create(self, path: str, data: bytes | Path) -> str | None:
        await self._call(True)
        body = data.read_bytes() if isinstance(data, Path) else bytes(data)
        with self.guard:
            if path in self.objects:
                return None
            self.objects[path] = Stored(body, self._version())
            return self.objects[path].etag

    async def replace(self, path: str, data: bytes, etag: str) -> str | None:
        await asyncio.sleep(0)
        return self.replace_now(path, data, etag)

    def replace_now(self, path: str, data: bytes, etag: str) -> str | None:
        self._now(True)
        with self.guard:
            current = self.objects.get(path)
            if current is None or current.etag != etag:
                return None
            self.objects[path] = Stored(bytes(data), self._version())
            return self.objects[path].etag

    async def delete(self, path: str) -> None:
        await self._call(True)
        with self.guard:
            self.objects.pop(path, None)

    async def names(self, prefix: str) -> list[str]:
        await self._call(False)
        return [path for path in self.objects if path.startswith(prefix)]


async def _pieces(data: bytes, chunk: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), max(chunk, 1)):
        yield data[start : start + chunk]
