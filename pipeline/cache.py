"""The clip cache: a diskcache index, content-addressed clip files, and a journal of work in flight.

Layout under the cache root (default `.storyboard/` at the project root):
    index/              diskcache: shot key -> clip record
    clips/ab/<key>.mp4  the clips, named by key
    journal/<key>.json  renders started and not yet in the cache (written before any submit)
    locks/<key>.lock    one render of a key at a time, across processes
    uploads/            diskcache: image sha256 -> provider image id
    tmp/                partial files; same filesystem as clips/ so a rename is atomic
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

CACHE_ENV = "STORYBOARD_CACHE_DIR"
CACHE_DIRNAME = ".storyboard"


class ClipRecord(BaseModel):
    """What the cache knows of one rendered clip."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    path: str
    sha256: str
    bytes: int
    duration: float
    width: int
    height: int
    seed: int | None = None
    cost: float | None = None
    renderer: str
    remote_ids: dict[str, str] = {}
    label: str = ""
    created: float


class JournalEntry(BaseModel):
    """A render in flight: enough to collect it after a crash without paying again."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    renderer: str
    label: str
    started: float
    task_uuid: str | None = None
    estimate: float | None = None


def project_root(spec_path: Path) -> Path:
    """The nearest folder above the storyboard holding `.storyboard/` or `.git/`, else its own."""
    folder = spec_path.resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / CACHE_DIRNAME).is_dir() or (candidate / ".git").exists():
            return candidate
    return folder


def resolve_root(spec_path: Path, override: str | None) -> Path:
    chosen = override or os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser().resolve()
    return project_root(spec_path) / CACHE_DIRNAME


@dataclass
class Cache:
    root: Path

    def __post_init__(self) -> None:
        self._index: Any = None
        self._uploads: Any = None

    # -- read side: never creates anything, so `plan` leaves no trace ---------------------------

    def keys(self) -> set[str]:
        index = self._open_index(create=False)
        return set(index.iterkeys()) if index is not None else set()

    def get(self, key: str) -> ClipRecord | None:
        index = self._open_index(create=False)
        data = index.get(key) if index is not None else None
        return ClipRecord.model_validate(data) if data else None

    def records(self) -> list[ClipRecord]:
        index = self._open_index(create=False)
        if index is None:
            return []
        return [ClipRecord.model_validate(index[k]) for k in list(index.iterkeys()) if k in index]

    def clip_path(self, key: str) -> Path:
        return self.root / "clips" / key[:2] / f"{key}.mp4"

    def journal(self) -> dict[str, JournalEntry]:
        folder = self.root / "journal"
        if not folder.is_dir():
            return {}
        entries: dict[str, JournalEntry] = {}
        for path in folder.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                entry = JournalEntry.model_validate_json(path.read_text(encoding="utf-8"))
                entries[entry.key] = entry
        return entries

    # -- write side ------------------------------------------------------------------------------

    def temp_path(self, suffix: str = ".mp4") -> Path:
        folder = self.root / "tmp"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{os.getpid()}-{time.monotonic_ns()}{suffix}"

    def put(self, key: str, clip: Path, **fields: Any) -> ClipRecord:
        """Move a validated clip into the cache by atomic rename, then index it."""
        target = self.clip_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        _fsync(clip)
        os.replace(clip, target)
        _fsync(target.parent)
        record = ClipRecord(
            key=key,
            path=str(target.relative_to(self.root)),
            bytes=target.stat().st_size,
            created=time.time(),
            **fields,
        )
        self._open_index(create=True)[key] = record.model_dump()
        with contextlib.suppress(FileNotFoundError):
            (self.root / "failures" / f"{key}.txt").unlink()
        return record

    def forget(self, key: str) -> None:
        """Drop a key from the index and remove its clip (gc, or a clip found damaged)."""
        index = self._open_index(create=False)
        if index is not None:
            index.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            self.clip_path(key).unlink()

    def journal_write(self, entry: JournalEntry) -> None:
        """An entry naming a remote task is on disk before this returns: a crash after this
        call still knows the task. One without a task only says work started: no fsync."""
        path = self.root / "journal" / f"{entry.key}.json"
        write_atomic(path, entry.model_dump_json(), durable=entry.task_uuid is not None)

    def journal_clear(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / "journal" / f"{key}.json").unlink()

    def failure_write(self, key: str, message: str) -> None:
        """Remember why a shot's last render failed, for the review page."""
        folder = self.root / "failures"
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / f"{key}.txt", message)

    def failures(self) -> dict[str, str]:
        folder = self.root / "failures"
        if not folder.is_dir():
            return {}
        return {p.stem: p.read_text(encoding="utf-8") for p in folder.glob("*.txt")}

    def try_lock(self, key: str) -> int | None:
        """Take the per-key lock if no other process holds it: a file descriptor, or None.

        The operating system drops the lock when its holder dies, so a killed build never
        leaves a key locked.
        """
        folder = self.root / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def unlock(self, fd: int) -> None:
        os.close(fd)

    def clean_tmp(self) -> None:
        """Remove partial files left by builds that were killed (their pid is in the name)."""
        folder = self.root / "tmp"
        if not folder.is_dir():
            return
        for path in folder.iterdir():
            if _owner_dead(path.name):
                with contextlib.suppress(OSError):
                    path.unlink()

    # -- uploads: image content -> provider image id -----------------------------------------

    def upload_get(self, image_sha: str, provider: str) -> str | None:
        uploads = self._open_uploads()
        value = uploads.get(f"{provider}:{image_sha}")
        return value if isinstance(value, str) else None

    def upload_put(self, image_sha: str, provider: str, image_id: str) -> None:
        self._open_uploads()[f"{provider}:{image_sha}"] = image_id

    def upload_forget(self, image_sha: str, provider: str) -> None:
        self._open_uploads().pop(f"{provider}:{image_sha}", None)

    def close(self) -> None:
        for handle in (self._index, self._uploads):
            if handle is not None:
                handle.close()
        self._index = self._uploads = None

    def _open_index(self, create: bool) -> Any:
        if self._index is None:
            folder = self.root / "index"
            if not create and not folder.is_dir():
                return None
            import diskcache

            self._index = diskcache.Cache(str(folder))
        return self._index

    def _open_uploads(self) -> Any:
        if self._uploads is None:
            import diskcache

            self._uploads = diskcache.Cache(str(self.root / "uploads"))
        return self._uploads


def _owner_dead(name: str) -> bool:
    pid_text = name.split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _fsync(path: Path) -> None:
    """Flush a file's bytes, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str, durable: bool = True) -> None:
    """Write a file so that readers see the old or the new content, never a mix.

    `durable` also waits until the new content and its name are on the disk.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        temp.write_text(data, encoding="utf-8")
    else:
        temp.write_bytes(data)
    if durable:
        _fsync(temp)
    os.replace(temp, path)
    if durable:
        _fsync(path.parent)
