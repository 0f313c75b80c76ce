"""Rendered clips, content-addressed by shot key, with the record of each beside it.

    clips/ab/<key>.mp4    the clip
    clips/ab/<key>.json   its record (size, length, checksum, cost, seed, remote ids)
    index/                diskcache: key -> record, a fast listing of what is there

The records beside the clips are the truth; the index is rebuilt from them when it is lost
or damaged, so losing it costs a rescan and never a render.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline.cache.files import (
    DamagedFile,
    fsync,
    is_corrupt,
    open_diskcache,
    read_model,
    set_aside,
    write_atomic,
)
from pipeline.qc import Findings

FORMAT_MARKER = "records-beside-clips"  # in index/: every indexed clip has its record file


class ClipRecord(BaseModel):
    """What the cache knows of one rendered clip, as it was delivered (not as asked)."""

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
    # What the quality check found in the clip as delivered (qc.py); None: never checked
    # (a free render, or one kept before the check existed).
    qc: Findings | None = None


class ClipStore:
    def __init__(self, root: Path, note: Callable[[str], None]) -> None:
        self.root = root
        self.folder = root / "clips"
        self._note = note
        self._index: Any = None
        self._unwritable = False
        self._opening = threading.Lock()

    # -- reading: creates nothing unless clips exist without an index -------------------------

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.mp4"

    def get(self, key: str) -> ClipRecord | None:
        index = self._open(create=False)
        data = index.get(key) if index is not None else None
        if data:
            return ClipRecord.model_validate(data)
        return self._adopt(key)

    def flagged(self, key: str) -> bool:
        """Whether the quality check found something in the clip of `key` (False when the
        cache has no clip of it, or it was never checked)."""
        record = self.get(key)
        return bool(record is not None and record.qc)

    def present(self, keys: Collection[str]) -> set[str]:
        """Which of `keys` have a clip: the index, then the record files it may lack."""
        index = self._open(create=False)
        indexed = set(index.iterkeys()) if index is not None else set()
        found = {key for key in keys if key in indexed}
        missing: dict[str, list[str]] = {}
        for key in keys:
            if key not in found:
                missing.setdefault(key[:2], []).append(key)
        for prefix, wanted in missing.items():
            try:
                names = set(os.listdir(self.folder / prefix))  # one look per folder, not per key
            except OSError:
                continue
            found.update(k for k in wanted if f"{k}.json" in names and self._adopt(k))
        return found

    def records(self) -> list[ClipRecord]:
        """Every clip the cache holds, read from the records beside the clips."""
        self._open(create=False)  # indexes written before records were kept beside clips
        return list(self._stored_records())

    # -- writing ------------------------------------------------------------------------------

    def put(self, key: str, clip: Path, durable: bool = True, **fields: Any) -> ClipRecord:
        """Move a checked clip into the cache by atomic rename, then record and index it.
        `durable=False` for a clip that exists elsewhere (the team cache's): a crash may then
        lose it, and a record whose clip is short is never believed, so it is fetched again."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if durable:
            fsync(clip)
        os.replace(clip, target)
        if durable:
            fsync(target.parent)
        record = ClipRecord(
            key=key,
            path=str(target.relative_to(self.root)),
            bytes=target.stat().st_size,
            created=time.time(),
            **fields,
        )
        self.put_record(record, durable)
        return record

    def put_record(self, record: ClipRecord, durable: bool = True) -> None:
        """Record a clip whose file is in place (a new one, or one found without a record)."""
        index = self._open(create=True)  # first: a new index is not a lost one
        write_atomic(self._record_path(record.key), record.model_dump_json(), durable=durable)
        if index is not None:
            index[record.key] = record.model_dump()

    def forget(self, key: str) -> None:
        """Drop a clip, its record and its index entry (gc)."""
        index = self._open(create=False)
        if index is not None:
            index.pop(key, None)
        for path in (self._record_path(key), self.path(key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    # -- the index and its healing ----------------------------------------------------------

    def _record_path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def _open(self, create: bool) -> Any:
        """The index; rebuilt from the records when it is missing or damaged. None when there
        is nothing to index yet (and `create` is false), or the cache cannot be written."""
        with self._opening:  # clips are stored from several threads at once
            return self._index if self._index is not None else self._open_now(create)

    def _open_now(self, create: bool) -> Any:
        if self._unwritable:
            return None
        folder = self.root / "index"
        lost = not folder.is_dir()
        if lost and not create and not self._has_records():
            return None
        try:
            try:
                self._index = open_diskcache(folder)
            except sqlite3.DatabaseError as exc:
                if not is_corrupt(exc):
                    raise
                aside = set_aside(folder)
                self._index = open_diskcache(folder)
                self._rebuild(f"the cache index was damaged ({exc}; kept as {aside.name})")
            else:
                if lost and self._has_records():
                    self._rebuild("the cache index was missing")
                elif not (folder / FORMAT_MARKER).exists():
                    self._write_missing_records()
        except (OSError, sqlite3.OperationalError):
            # A read-only cache: the records beside the clips still answer every question.
            self._index = None
            self._unwritable = True
        return self._index

    def _has_records(self) -> bool:
        return self.folder.is_dir() and any(self.folder.glob("*/*.json"))

    def _rebuild(self, reason: str) -> None:
        count = 0
        for record in self._stored_records():
            self._index[record.key] = record.model_dump()
            count += 1
        (self.root / "index" / FORMAT_MARKER).touch()
        self._note(f"{reason}: rebuilt it from {count} clip records")

    def _write_missing_records(self) -> None:
        """Indexes made before records were kept beside the clips: write those records."""
        for key in list(self._index.iterkeys()):
            data = self._index.get(key)
            if data and not self._record_path(key).exists() and self.path(key).exists():
                record = ClipRecord.model_validate(data)
                write_atomic(self._record_path(key), record.model_dump_json())
        (self.root / "index" / FORMAT_MARKER).touch()

    def _stored_records(self) -> Iterator[ClipRecord]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*/*.json")):
            record = self._read_record(path)
            if record is not None:
                yield record

    def _read_record(self, path: Path) -> ClipRecord | None:
        """A record whose clip is in place at the recorded size; None otherwise."""
        try:
            record = read_model(path, ClipRecord)
        except DamagedFile as exc:
            self._note(f"{path}: unreadable clip record ignored ({exc})")
            return None
        if record is None:
            return None
        try:
            size = self.path(record.key).stat().st_size
        except OSError:
            return None
        return record if size == record.bytes else None

    def _adopt(self, key: str) -> ClipRecord | None:
        """A clip whose record is on disk but not in the index: index it now."""
        path = self._record_path(key)
        if not path.exists():
            return None
        record = self._read_record(path)
        if record is not None and self._index is not None:
            with contextlib.suppress(OSError, sqlite3.Error):
                self._index[key] = record.model_dump()
        return record
