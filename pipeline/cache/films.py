"""Films by key: a joined sequence is kept like a clip, so no build joins it twice.

    films/ab/<key>.mp4   the film (a hard link to the file built, where the disk allows)
    films/ab/<key>.json  its record: checksum, size, length, how it was joined, the
                         loudness of its sound as measured

A revert, a one-sequence build, or two branches that share a film place the stored film
(checked against its record) instead of joining it again.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from pipeline.cache.files import copy_new, partial_name, record_of, write_atomic
from pipeline.hashing import sha256_file
from pipeline.measure import Loudness
from pipeline.qc import Findings


class FilmRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    sha256: str
    bytes: int
    duration: float
    method: str
    created: float
    qc: Findings | None = None  # what the quality check found in it; None: not checked
    loudness: Loudness | None = None  # its sound, measured as made (None: it has none)


class FilmStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.mp4"

    def keys(self) -> frozenset[str]:
        """The keys of the films stored (by their records: one look per folder)."""
        if not self.folder.is_dir():
            return frozenset()
        return frozenset(p.stem for p in self.folder.glob("*/*.json"))

    def checksums(self) -> dict[str, str]:
        """key -> sha256 of every film stored."""
        return {record.key: record.sha256 for record in self.records()}

    def get(self, key: str) -> FilmRecord | None:
        """The record of a stored film whose file is there at its recorded size."""
        return record_of(self._record(key), self.path(key), FilmRecord)

    def records(self) -> list[FilmRecord]:
        found = (self.get(key) for key in sorted(self.keys()))
        return [record for record in found if record is not None]

    def put(
        self,
        key: str,
        film: Path,
        sha256: str,
        duration: float,
        method: str,
        qc: Findings | None = None,
        loudness: Loudness | None = None,
    ) -> None:
        """Keep a film just built. A memo: a film that cannot be kept is joined again later."""
        with contextlib.suppress(OSError):
            _link_or_copy(film, self.path(key))
            record = FilmRecord(
                key=key,
                sha256=sha256,
                bytes=film.stat().st_size,
                duration=duration,
                method=method,
                created=time.time(),
                qc=qc,
                loudness=loudness,
            )
            write_atomic(self._record(key), record.model_dump_json(), durable=False)

    def checked(self, key: str, findings: Findings) -> None:
        """Keep what the quality check found in a stored film with its record (a memo too)."""
        record = self.get(key)
        if record is not None:
            with contextlib.suppress(OSError):
                updated = record.model_copy(update={"qc": findings})
                write_atomic(self._record(key), updated.model_dump_json(), durable=False)

    def place(self, key: str, output: Path) -> FilmRecord | None:
        """Put the stored film of `key` at `output`, if it is whole (its checksum is its
        record's); None when it is not, and then it is dropped."""
        record = self.get(key)
        if record is None:
            return None
        if sha256_file(self.path(key)) != record.sha256:
            self.forget(key)
            return None
        _link_or_copy(self.path(key), output)
        return record

    def forget(self, key: str) -> None:
        for path in (self._record(key), self.path(key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _record(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"


def _link_or_copy(source: Path, target: Path) -> None:
    """`target` becomes `source`'s content at once (a hard link, else a copy), replacing any
    file there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = partial_name(target)
    try:
        try:
            os.link(source, temp)  # makes a new name, or fails: never follows one
        except OSError:
            copy_new(source, temp)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
