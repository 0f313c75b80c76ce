"""Images uploaded to a provider: image sha256 -> the provider's image id (a memo: losing it
costs an upload, nothing more). With a team cache, the ids are shared: an image one machine
uploaded is not uploaded by the next (a provider that no longer knows an id is answered by
uploading again)."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.cache.files import is_corrupt, open_diskcache, set_aside
from pipeline.errors import RemoteError

if TYPE_CHECKING:
    from pipeline.cache.remote import Remote


class Uploads:
    def __init__(self, folder: Path, team: Remote | None = None) -> None:
        self.folder = folder
        self.team = team
        self._store: Any = None

    async def find(self, image_sha: str, provider: str) -> str | None:
        """The image's id here, else the team's."""
        known = self.get(image_sha, provider)
        if known is not None or self.team is None:
            return known
        try:
            shared = await self.team.image_id(image_sha, _provider_name(provider))
        except RemoteError:
            return None  # a memo: the image is uploaded again
        if shared is not None:
            self.put(image_sha, provider, shared)
        return shared

    async def share(self, image_sha: str, provider: str, image_id: str) -> None:
        self.put(image_sha, provider, image_id)
        if self.team is not None:
            with contextlib.suppress(RemoteError):
                await self.team.put_image_id(image_sha, _provider_name(provider), image_id)

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


def _provider_name(provider: str) -> str:
    """A provider's endpoint as a name for the team cache (it holds / and :)."""
    return hashlib.sha256(provider.encode("utf-8")).hexdigest()[:16]
