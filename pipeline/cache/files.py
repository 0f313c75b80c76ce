"""Files of the cache: atomic writes, per-key locks across processes, partial files."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.errors import CacheError


def fsync(path: Path) -> None:
    """Flush a file's bytes, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str, durable: bool = True) -> None:
    """Write a file so that readers see the old or the new content, never a mix.

    The content goes into a new partial file beside `path` (see `create_partial`), then is
    renamed over it: a link at `path` is replaced, never written through. `durable` also
    waits until the new content and its name are on the disk. The partial file is removed
    when writing fails, and one a killed process left is removed by the next write of the
    same file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_left_behind(path.parent, partials_of(path.name))
    temp, fd = create_partial(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    if durable:
        fsync(path.parent)


def partial_name(path: Path) -> Path:
    """A name for a partial file of `path`, beside it: `.<name>.<pid>.<random>.tmp`. The pid
    tells a killed writer's leftovers; the random part is a name no repository can have
    planted a link at."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")


# Made by this open or not at all: never a file, or a link, that was there before.
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create_partial(path: Path) -> tuple[Path, int]:
    """A new, empty partial file of `path` (see `partial_name`), open for writing."""
    temp = partial_name(path)
    return temp, os.open(temp, NEW_FILE, 0o644)


def copy_new(source: Path, target: Path) -> None:
    """Copy `source` to `target`, a file this call makes (it fails if `target` exists)."""
    with open(source, "rb") as given, os.fdopen(os.open(target, NEW_FILE, 0o644), "wb") as copy:
        shutil.copyfileobj(given, copy, 1 << 20)


def partials_of(name: str | None = None) -> str:
    """The pattern, for `remove_left_behind`, of the partial files of the file `name` (of
    any file when None); those of earlier versions have no random part."""
    # The shortest name first: a random part of digits alone is not read as an older pid.
    spelled = ".+?" if name is None else re.escape(name)
    return rf"^\.{spelled}\.(?P<pid>\d+)(\.[0-9a-f]{{16}})?\.tmp$"


def remove_left_behind(folder: Path, pattern: str) -> None:
    """Remove the entries of `folder` whose name matches `pattern` and whose `pid` group
    names a process that is gone: partial files and work folders of killed builds. A link
    there is removed itself: what it points at is never followed, nor removed."""
    matcher = re.compile(pattern)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = matcher.match(name)
        if match is None or not process_gone(int(match.group("pid"))):
            continue
        target = folder / name
        with contextlib.suppress(OSError):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()


def process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


Model = TypeVar("Model", bound=BaseModel)


class DamagedFile(Exception):
    """A file of the cache that exists and cannot be read as what it should hold."""


def read_model(path: Path, model: type[Model]) -> Model | None:
    """The record stored as JSON in `path`; None when there is no such file."""
    try:
        return model.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DamagedFile(exc.strerror or str(exc)) from None
    except (ValueError, ValidationError):
        raise DamagedFile("not what it should hold") from None


def record_of(record: Path, file: Path, model: type[Model]) -> Model | None:
    """The record in `record` of `file`, when both are there, the record is readable and
    the file has the size it records (`bytes`); None otherwise."""
    try:
        found = read_model(record, model)
        size = file.stat().st_size
    except (DamagedFile, OSError):
        return None
    return found if found is not None and size == getattr(found, "bytes", None) else None


def open_diskcache(folder: Path) -> Any:
    import diskcache

    return diskcache.Cache(str(folder))


def is_corrupt(exc: BaseException) -> bool:
    """A damaged SQLite file ("file is not a database", "malformed"), not a locked or
    read-only one (those are OperationalErrors, and nothing is wrong with their content)."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def set_aside(folder: Path) -> Path:
    """Move a damaged folder out of the way, keeping it for a post-mortem."""
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    target = folder.with_name(f"{folder.name}.damaged-{stamp}")
    os.replace(folder, target)
    return target


class KeyLocks:
    """One render of a key at a time, across processes (flock on locks/<key>.lock).

    The operating system drops a lock when its holder dies, so a killed build never leaves
    a key locked.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def try_lock(self, key: str) -> int | None:
        """Take the key's lock if no other process holds it: a file descriptor, or None."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # Never through a link: one planted there would have the lock file made elsewhere.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        path = self.folder / f"{key}.lock"
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise CacheError(
                f"{path}: the key's lock cannot be taken ({exc.strerror or exc})",
                "remove it (it may be a link planted in the cache), then build again",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def unlock(self, fd: int) -> None:
        os.close(fd)


class TempFiles:
    """Partial files, on the cache's filesystem so that moving one in is an atomic rename.

    Each name starts with the writing process's pid (files of dead builds are removed) and
    goes on at random: a renderer writing to it writes a file no one else named.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, suffix: str = ".mp4") -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"{os.getpid()}-{secrets.token_hex(8)}{suffix}"

    def clean(self) -> None:
        remove_left_behind(self.folder, r"^(?P<pid>\d+)-")
