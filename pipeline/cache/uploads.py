"""Images uploaded to a provider: image sha256 -> the provider's image id (a memo: losing it
costs an upload, nothing more)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from pipeline.cache.files import is_corrupt, open_diskcache, set_aside


class Uploads:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._store: Any = None

    def get(self, image_sha: str, provider: str) -> str | None:
        store = self._open()
        value = store.get(f"{provider}:{image_sha}") if store is not None else None
        return value if isinstance(value, str) else None

    def put(self, image_sha: str, provider: str, image_id: str) -> None:
        store = self._open()
        if store is not None:
            with contextlib.suppress(OSError, sqlite3.Error):
                store[f"{provider}:{image_sha}"] = image_id

    def forget(self, image_sha: str, provider: str) -> None:
        store = self._open()
        if store is not None:
            store.pop(f"{provider}:{image_sha}", None)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _open(self) -> Any:
        if self._store is None:
            try:
                self._store = open_diskcache(self.folder)
            except sqlite3.DatabaseError as exc:
                if not is_corrupt(exc):
                    return None
                set_aside(self.folder)
                self._store = open_diskcache(self.folder)
            except OSError:
                return None  # unwritable: images are uploaded again, nothing is lost
        return self._store
