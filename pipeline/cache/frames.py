"""Frames taken from clips, that shots start from: one PNG per clip and frame, kept by the
clip's checksum (its content), with the hash of the frame's pixels beside it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pipeline import media
from pipeline.cache.files import partial_name, write_atomic
from pipeline.nodes import frame_name


class FrameStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Two shots of one build may start from the same frame at once: one takes it.
        self._taking: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, clip_sha: str, at: str | float) -> Path:
        return self.folder / clip_sha[:2] / f"{clip_sha}-{frame_name(at)}.png"

    def of(self, clip: Path, clip_sha: str, at: str | float) -> tuple[Path, str]:
        """The frame's PNG and pixel hash, taken from the clip the first time it is asked."""
        image = self.path(clip_sha, at)
        with self._lock(image):
            return self._taken(clip, image, at)

    def _taken(self, clip: Path, image: Path, at: str | float) -> tuple[Path, str]:
        digest_file = image.with_suffix(".sha256")
        if image.is_file() and digest_file.is_file():
            return image, digest_file.read_text(encoding="ascii").strip()
        image.parent.mkdir(parents=True, exist_ok=True)
        temp = partial_name(image)
        try:
            digest = media.extract_frame(clip, at, temp)
            os.replace(temp, image)
        finally:
            temp.unlink(missing_ok=True)
        write_atomic(digest_file, digest, durable=False)
        return image, digest

    def adopt(self, clip_sha: str, at: str | float, image: Path, digest: str) -> None:
        """Keep a frame taken while its clip was checked (the PNG is moved in)."""
        target = self.path(clip_sha, at)
        with self._lock(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(image, target)
            write_atomic(target.with_suffix(".sha256"), digest, durable=False)

    def _lock(self, image: Path) -> threading.Lock:
        with self._guard:
            return self._taking.setdefault(image, threading.Lock())

    def prune(self, clips: set[str]) -> None:
        """Remove the frames of clips (by checksum) the cache no longer holds."""
        for image in self.folder.glob("*/*-*"):
            if not image.name.startswith(".") and image.name.split("-", 1)[0] not in clips:
                image.unlink(missing_ok=True)
