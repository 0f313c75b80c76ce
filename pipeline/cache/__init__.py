"""The cache: what was rendered, what is in flight, and what may be deleted.

Layout under the cache root (default `.storyboard/` at the project root):
    clips/ab/<key>.mp4|.json  the clips and their records (clips.py); index/ lists them (a
                              still's image is kept under the same name: files are keys)
    films/ab/<key>.mp4|.json  joined films by sequence key, and their records (films.py)
    inputs/                   first frames named by URL, downloaded once (inputs.py)
    frames/ab/<clip sha>-<frame>.png  frames taken from clips that shots start from
                              (frames.py), with their pixel hash beside them
    fonts/<sha256>.font       project fonts as the OpenType Sanitizer rewrote them, by the
                              sha256 of the file given (typeface.py): what is drawn with
    journal/<key>.json        renders in flight, written before any submit (journal.py)
    failures/<key>.json       why a render's last try failed, and whether finally (journal.py)
    uploads/                  image sha256 -> provider image id (uploads.py), shared with
                              the team cache (remote.py) when there is one
    storyboards/              the storyboards that build here, for gc (storyboards.py)
    locks/<key>.lock          one render of a key at a time, across processes (files.py)
    tmp/                      partial files of live builds (files.py)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cache.clips import ClipRecord, ClipStore
from pipeline.cache.files import (
    KeyLocks,
    TempFiles,
    partials_of,
    remove_left_behind,
    write_atomic,
)
from pipeline.cache.films import FilmRecord, FilmStore
from pipeline.cache.frames import FrameStore
from pipeline.cache.inputs import FetchedInputs
from pipeline.cache.journal import Failure, Failures, Journal, JournalEntry
from pipeline.cache.storyboards import Registered, StoryboardRegistry
from pipeline.cache.uploads import Uploads
from pipeline.errors import CacheError, MediaError
from pipeline.nodes import Node, Still
from pipeline.project import MARKERS, project_root, refuse_link_out

if TYPE_CHECKING:
    from pipeline.cache.remote import Remote

__all__ = [
    "Cache",
    "ClipRecord",
    "Failure",
    "FilmRecord",
    "JournalEntry",
    "Registered",
    "project_root",
    "resolve_root",
    "write_atomic",
]

CACHE_DIRNAME = MARKERS[0]


def resolve_root(spec_path: Path, override: str | None) -> Path:
    """The cache folder: the one asked for (`--cache-dir`, or STORYBOARD_CACHE_DIR as the
    command read it), else the project's `.storyboard/`."""
    if override:
        return Path(override).expanduser().resolve()
    project = project_root(spec_path)
    root = project / CACHE_DIRNAME
    _refuse_links_out(root, project)
    return root


def _refuse_links_out(root: Path, project: Path) -> None:
    """The project's own cache, which a repository may ship: neither it nor a folder of it
    may be a link out of the project, where everything the cache writes would land."""
    hint = "remove the link; to keep the cache elsewhere, name it: --cache-dir DIR"
    refuse_link_out(root, project, hint)
    with contextlib.suppress(OSError), os.scandir(root) as entries:
        for entry in entries:
            if entry.is_symlink():
                refuse_link_out(Path(entry.path), project, hint)


def _ignore(message: str) -> None:
    return None


class Cache:
    """The parts of one cache folder. `note` hears what the cache repaired on its own."""

    def __init__(
        self,
        root: Path,
        note: Callable[[str], None] = _ignore,
        team: Remote | None = None,
        private_urls: bool = False,
    ) -> None:
        if root.exists() and not root.is_dir():
            raise CacheError(
                f"{root}: the cache must be a folder, and this is a file",
                "give --cache-dir (or STORYBOARD_CACHE_DIR) a folder",
            )
        self.root = root
        self.clips = ClipStore(root, note)
        self.films = FilmStore(root / "films")
        self.inputs = FetchedInputs(root / "inputs", private_urls)
        self.frames = FrameStore(root / "frames")
        self.fonts = root / "fonts"
        self.journal = Journal(root / "journal")
        self.failures = Failures(root / "failures")
        self.uploads = Uploads(root / "uploads", team)
        self.storyboards = StoryboardRegistry(root / "storyboards")
        self.locks = KeyLocks(root / "locks")
        self.tmp = TempFiles(root / "tmp")

    def clean(self) -> None:
        """Remove what killed builds left half-written: partial clips, and the temporary
        files of records they were writing."""
        self.tmp.clean()
        for folder in (
            self.journal.folder,
            self.failures.folder,
            self.storyboards.folder,
            self.fonts,
        ):
            remove_left_behind(folder, partials_of())
        self._settle_delivered()

    def _settle_delivered(self) -> None:
        """A build killed between storing a clip and clearing its journal entry leaves the
        entry of a task already delivered: it goes once the clip in the cache is that task's
        (a forced render of a cached key journals a new task: its entry stays)."""
        for key, entry in self.journal.entries().items():
            record = self.clips.get(key)
            if entry.task_uuid and record and record.remote_ids.get("taskUUID") == entry.task_uuid:
                self.journal.clear(key)

    def frame(self, upstream: Node, at: str | float) -> tuple[Path, str, float | None] | None:
        """An upstream render's frame and its hash: a still's image, a whole clip or sound
        (with its length in seconds), or a frame taken from its clip (once). None while the
        render is not here, or its frame cannot be taken (the shot waits; the build says
        why)."""
        record = self.clips.get(upstream.key)
        if record is None:
            return None
        path = self.root / record.path
        if at == "" or isinstance(upstream, Still):  # the whole output: a still, a clip, a voice
            return path, record.sha256, record.duration
        try:
            taken, digest = self.frames.of(path, record.sha256, at)
        except (MediaError, OSError):
            return None
        return taken, digest, None

    def close(self) -> None:
        self.clips.close()
        self.uploads.close()
