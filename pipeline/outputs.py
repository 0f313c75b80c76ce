"""Where a storyboard's films go, and the checksums of the files built there (a memo)."""

from __future__ import annotations

import contextlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cache import project_root, write_atomic
from pipeline.hashing import sha256_file, sha256_text
from pipeline.nodes import Film
from pipeline.project import refuse_link_out

if TYPE_CHECKING:
    pass


def film_dir(
    spec_path: Path, spec_name: str, renderer: str, paid: bool, output_dir: Path | None
) -> Path:
    """<output dir, else build/ at the project root>/<storyboard>/, and a folder of its own
    for a free renderer's films (`.../preview/`), so animatics never replace films. A link on
    the way that leaves the project is refused: films are never written through it."""
    root = project_root(spec_path)
    build_dir = output_dir or root / "build"
    folder = build_dir / folder_name(spec_name)
    folder = folder if paid else folder / renderer
    refuse_link_out(
        folder, root, "remove the link; to build elsewhere, name the folder: --output-dir DIR"
    )
    return folder.resolve()


def folder_name(name: str) -> str:
    """A storyboard's name as a folder: letters, digits, `_`, `.` and `-` (`café` ->
    `cafe`); a name with none of those gets a short hash of it."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text).strip("-.")
    return text or f"storyboard-{sha256_text(name)[:8]}"


def output_path(films: Path, sequence: Film) -> Path:
    return films / f"{sequence.name}.mp4"


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

    def remove_if_ours(self, file: Path) -> None:
        """Delete a file this tool wrote and nobody changed since (as recorded); a file it
        did not write, or one edited since, is left."""
        entry = self.entries.get(str(file))
        try:
            stat = file.stat()
        except OSError:
            return
        if isinstance(entry, dict) and (entry.get("size"), entry.get("mtime")) == (
            stat.st_size,
            stat.st_mtime_ns,
        ):
            file.unlink(missing_ok=True)
            del self.entries[str(file)]
            self.dirty = True

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
