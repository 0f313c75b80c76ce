"""Work in flight, and why the last render of a shot failed.

    journal/<key>.json   a render started and not yet in the cache; written (and flushed to
                         disk) with the remote task id *before* the submit leaves the machine
    failures/<key>.json  how a render's last try failed: its message, and whether the
                         provider refused the request itself (final: not sent again unless
                         forced) or it may work another time

An entry that cannot be read stops the build: it may name a task that was paid for, and
skipping it would pay for the shot again.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from pipeline.cache.files import DamagedFile, read_model, write_atomic
from pipeline.errors import CacheError


class JournalEntry(BaseModel):
    """A render in flight: enough to collect it after a crash without paying again."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    renderer: str
    label: str
    started: float
    task_uuid: str | None = None
    estimate: float | None = None
    # What the provider said the task cost, once it said so: the money is spent, whatever
    # becomes of the clip.
    cost: float | None = None


class Journal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, key: str) -> JournalEntry | None:
        """The entry of one key as it is on disk now (another build may have written it)."""
        return self._load(self.folder / f"{key}.json")

    def entries(self) -> dict[str, JournalEntry]:
        if not self.folder.is_dir():
            return {}
        found = {}
        for path in sorted(self.folder.glob("*.json")):
            entry = self._load(path)
            if entry is not None:
                found[entry.key] = entry
        return found

    def write(self, entry: JournalEntry, durable: bool | None = None) -> None:
        """An entry naming a remote task is on disk before this returns: a crash after this
        call still knows the task. One without a task only says work started: no fsync.
        `durable=False` for what a crash may lose (the provider says it again)."""
        path = self.folder / f"{entry.key}.json"
        if durable is None:
            durable = entry.task_uuid is not None
        try:
            write_atomic(path, entry.model_dump_json(), durable=durable)
        except OSError as exc:
            raise CacheError(
                f"{path}: cannot write the journal ({exc.strerror or exc})",
                "nothing was submitted for this shot; free disk space or fix the folder",
            ) from None

    def clear(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / f"{key}.json").unlink()

    def _load(self, path: Path) -> JournalEntry | None:
        try:
            entry = read_model(path, JournalEntry)
        except DamagedFile as exc:
            raise CacheError(
                f"{path}: unreadable journal entry ({exc})",
                "it may name a render that was paid for; restore it, or delete it to "
                "give that task up (the shot is then paid for again)",
            ) from None
        if entry is None:
            return None
        if entry.key != path.stem:
            raise CacheError(
                f"{path}: journal entry of key {entry.key[:12]} in the file of another key",
                "restore it, or delete it to give that task up",
            )
        return entry


class Failure(BaseModel):
    """How a render's last try failed."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    message: str
    # The provider's code when it refused the request itself (a safety filter, an invalid
    # parameter): the same request is refused every time.
    code: str = ""
    final: bool = False


class Failures:
    """The last failure of each render that failed. Written durably when final: a refusal
    forgotten is a refusal paid for again (a provider may bill a refused task)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, key: str, failure: Failure) -> None:
        with contextlib.suppress(OSError):  # a note for the next build, never worth a crash
            write_atomic(self.folder / f"{key}.json", failure.model_dump_json(), failure.final)
            (self.folder / f"{key}.txt").unlink(missing_ok=True)  # an older build's note

    def clear(self, key: str) -> None:
        for suffix in (".json", ".txt"):
            with contextlib.suppress(FileNotFoundError):
                (self.folder / f"{key}{suffix}").unlink()

    def get(self, key: str) -> Failure | None:
        try:
            return read_model(self.folder / f"{key}.json", Failure)
        except DamagedFile:
            return None

    def all(self) -> dict[str, Failure]:
        """Every render's last failure, by key; a note of an older build (plain text) is a
        failure that may work another time."""
        if not self.folder.is_dir():
            return {}
        found: dict[str, Failure] = {}
        for path in self.folder.glob("*.txt"):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                found[path.stem] = Failure(message=path.read_text(encoding="utf-8"))
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(DamagedFile):
                failure = read_model(path, Failure)
                if failure is not None:
                    found[path.stem] = failure
        return found
