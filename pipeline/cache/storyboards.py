"""The storyboards that have built into this cache, so that gc keeps what any of them uses.

    storyboards/<hash of the storyboard's path>.json
        the storyboard's path, its lock files, and the keys of its last build per renderer

gc asks every storyboard here (and any it is given) what it uses now, and keeps the keys a
storyboard used at its last build when it cannot be read.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from pipeline.cache.files import DamagedFile, read_model, write_atomic


class Registered(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    spec: str
    locks: list[str] = []
    keys: dict[str, list[str]] = {}
    updated: float = 0.0


class StoryboardRegistry:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def record(self, spec: Path, locks: Iterable[Path], renderer: str, keys: Iterable[str]) -> None:
        """Remember that `spec` builds here, and the keys its build with `renderer` uses."""
        spec = spec.resolve()
        known = self._read(self._file(spec))
        entry = Registered(
            spec=str(spec),
            locks=sorted({*(known.locks if known else []), *(str(p.resolve()) for p in locks)}),
            keys={**(known.keys if known else {}), renderer: sorted(set(keys))},
            updated=time.time(),
        )
        write_atomic(self._file(spec), entry.model_dump_json(indent=1), durable=False)

    def entries(self) -> tuple[list[Registered], list[Path]]:
        """Every storyboard recorded here, and the record files that could not be read."""
        if not self.folder.is_dir():
            return [], []
        found, broken = [], []
        for path in sorted(self.folder.glob("*.json")):
            entry = self._read(path)
            if entry is None:
                broken.append(path)
            else:
                found.append(entry)
        return found, broken

    def forget(self, spec: Path) -> bool:
        path = self._file(spec.resolve())
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            return True
        return False

    def _file(self, spec: Path) -> Path:
        digest = hashlib.sha256(str(spec).encode("utf-8")).hexdigest()[:20]
        return self.folder / f"{digest}.json"

    @staticmethod
    def _read(path: Path) -> Registered | None:
        try:
            return read_model(path, Registered)
        except DamagedFile:
            return None
