"""Where a storyboard's films go, and the checksums of the files built there."""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cache import Cache, project_root, write_atomic
from pipeline.errors import RemoteError
from pipeline.hashing import sha256_file, sha256_text
from pipeline.lock import Lock
from pipeline.nodes import Sequence
from pipeline.render import is_paid
from pipeline.state import FilmFacts

if TYPE_CHECKING:
    from pipeline.cache.remote import Remote


def film_dir(spec_path: Path, spec_name: str, renderer: str, output_dir: Path | None) -> Path:
    """<output dir, else build/ at the project root>/<storyboard>/, and a folder of its own
    for a free renderer's films (`.../preview/`), so animatics never replace films."""
    build_dir = (output_dir or project_root(spec_path) / "build").resolve()
    folder = build_dir / folder_name(spec_name)
    return folder if is_paid(renderer) else folder / renderer


def folder_name(name: str) -> str:
    """A storyboard's name as a folder: letters, digits, `_`, `.` and `-` (`café` ->
    `cafe`); a name with none of those gets a short hash of it."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text).strip("-.")
    return text or f"storyboard-{sha256_text(name)[:8]}"


def output_path(films: Path, sequence: Sequence) -> Path:
    return films / f"{sequence.name}.mp4"


def film_facts(
    sequences: tuple[Sequence, ...] | list[Sequence],
    lock: Lock | None,
    cache: Cache,
    outputs: OutputIndex,
    films: Path,
    remote: Remote | None = None,
) -> FilmFacts:
    """What the state of these sequences' films depends on: the lock, the clips and films
    in the cache, and the files in the films folder."""
    keys = {use.shot.key for sequence in sequences for use in sequence.uses}
    stored = cache.films.checksums()
    return FilmFacts(
        locked=lock.sequences if lock else {},
        cached_clips=frozenset(cache.clips.present(keys)),
        stored_films=stored,
        file_matches=lambda sequence, sha: outputs.matches(output_path(films, sequence), sha),
        lock_present=lock is not None,
        team_films=_team_films(remote, [s.key for s in sequences if s.key not in stored]),
    )


def _team_films(remote: Remote | None, keys: list[str]) -> frozenset[str]:
    if remote is None or not keys:
        return frozenset()
    try:
        return frozenset(remote.run(remote.present("films", keys)))
    except RemoteError:
        return frozenset()  # said when the plan asked the team cache for its clips


@dataclass
class OutputIndex:
    """Checksums of built files by (size, mtime), so a no-op build does not re-hash films."""

    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirty: bool = False

    @classmethod
    def load(cls, path: Path) -> OutputIndex:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            entries = {}
        return cls(path, entries if isinstance(entries, dict) else {})

    def sha256(self, file: Path) -> str | None:
        try:
            stat = file.stat()
        except OSError:
            return None
        entry = self.entries.get(str(file))
        if (
            isinstance(entry, dict)
            and entry.get("size") == stat.st_size
            and entry.get("mtime") == stat.st_mtime_ns
        ):
            return str(entry.get("sha256"))
        return self.record(file)

    def matches(self, file: Path, sha: str) -> bool:
        return self.sha256(file) == sha

    def record(self, file: Path, sha: str | None = None) -> str:
        """Remember a file's checksum (computed here unless it is known)."""
        stat = file.stat()
        sha = sha or sha256_file(file)
        self.entries[str(file)] = {"size": stat.st_size, "mtime": stat.st_mtime_ns, "sha256": sha}
        self.dirty = True
        return sha

    def save(self) -> None:
        """Keep the checksums for the next run; a memo, so a read-only cache only costs time."""
        if self.dirty:
            with contextlib.suppress(OSError):
                write_atomic(self.path, json.dumps(self.entries, sort_keys=True))
            self.dirty = False
