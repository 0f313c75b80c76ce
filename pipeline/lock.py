"""`<spec>.lock`: what every shot and sequence resolved to, in git-friendly JSON.

Hailuo takes no seed, so the lock (with the cache) is what makes a film reproducible: per shot
its key, the seed the provider reported, renderer, cost, remote videoUUID and clip checksum; per
sequence its key, output checksum and duration. Preview builds keep their own
`<spec>.preview.lock`, so an animatic never overwrites the record of paid renders.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.cache import ClipRecord, write_atomic
from pipeline.errors import SpecError, message_of
from pipeline.media import ClipInfo
from pipeline.nodes import Film, Node
from pipeline.project import MAX_LOCK_BYTES, OutsideProject, confined, project_root, read_bounded
from pipeline.render import kind

LOCK_VERSION = 3  # 3: each film's join recipe (2: its clips and settings; 1: no requests)


class LockedShot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    shot: str
    variants: list[str]
    take: int
    renderer: str
    seed: int | None = None
    cost: float | None = None
    video_uuid: str | None = None
    image_uuid: str | None = None  # a still's
    audio_uuid: str | None = None  # a voice's or music's
    sha256: str
    duration: float  # of the clip as delivered (0 for a still)
    # The request as sent (images by content hash): the model, size, duration and prompt, one
    # field per line, so that a diff of the lock reads as a change of prompts.
    request: dict[str, Any] | None = None


class LockedSequence(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    path: str
    sha256: str
    bytes: int
    duration: float
    shots: list[str] = []  # the shots it joins, in order, by label
    # Its join recipe (nodes.JoinRecipe), of which its key is the digest: what changed in a
    # film is said from it. None in a lock written before recipes (version 2).
    recipe: dict[str, Any] | None = None
    # Its caption files beside it, by name: their sha256 (none when it has no captions).
    captions: dict[str, str] = {}


class Lock(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = LOCK_VERSION
    storyboard: str
    renderer: str
    shots: dict[str, LockedShot] = {}
    sequences: dict[str, LockedSequence] = {}


def lock_path(spec_path: Path, renderer: str) -> Path:
    suffix = ".lock" if kind(renderer).paid else ".preview.lock"
    return spec_path.with_name(spec_path.stem + suffix)


def read(path: Path) -> Lock | None:
    """The lock at `path`, None when there is none. A lock comes from git like the
    storyboard: it is read bounded, and one that is not a lock is a located error."""
    if not os.path.lexists(path):
        return None
    hint = "restore it from git, or delete it to record the next build afresh"
    try:
        confined(path, project_root(path.parent), path.name)  # never read through a link out
        data = read_bounded(path, MAX_LOCK_BYTES, path.name)
        return Lock.model_validate_json(data)  # pydantic's own parser: a third of json's time
    except OutsideProject as exc:
        raise SpecError(path, 1, 1, f"not a lock file: {exc}", hint) from None
    except ValidationError as exc:
        raise _lock_error(path, data, exc, hint) from None


def _lock_error(path: Path, data: bytes, exc: ValidationError, hint: str) -> SpecError:
    """Where a lock is not one: the line and column of text that is not JSON (as Python's
    parser places it), else the field that is wrong."""
    try:
        json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as bad:
        return SpecError(path, 1, 1, f"not a lock file: not UTF-8 text ({bad.reason})", hint)
    except json.JSONDecodeError as bad:
        return SpecError(path, bad.lineno, bad.colno, f"not a lock file: {bad.msg}", hint)
    problem = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in problem["loc"]) or "lock"
    return SpecError(path, 1, 1, f"not a valid lock file: {field}: {message_of(problem)}", hint)


def render(lock: Lock) -> str:
    """Sorted keys, two-space indent, one field per line: small, readable git diffs."""
    data = lock.model_dump()
    for entry in data["shots"].values():
        for name in ("image_uuid", "audio_uuid"):
            if entry[name] is None:
                del entry[name]  # a clip's: locks written before stills stay as they were
    for entry in data["sequences"].values():
        if not entry["captions"]:
            del entry["captions"]  # a film without captions: its entry stays as it was
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(path: Path, lock: Lock) -> bool:
    """Write the lock if it changed; whether it did."""
    text = render(lock)
    with contextlib.suppress(OutsideProject, UnicodeDecodeError):
        if read_bounded(path, MAX_LOCK_BYTES).decode("utf-8") == text:
            return False
    write_atomic(path, text)
    return True


# -- the one mapping between the cache's records and the lock ----------------------------


def locked_shot(shot: Node, variants: tuple[str, ...], record: ClipRecord) -> LockedShot:
    """What the lock says of a render the cache holds."""
    return LockedShot(
        shot=shot.label,
        variants=list(variants),
        take=shot.take,
        renderer=record.renderer,
        seed=record.seed,
        cost=record.cost,
        video_uuid=record.remote_ids.get("videoUUID"),
        image_uuid=record.remote_ids.get("imageUUID"),
        audio_uuid=record.remote_ids.get("audioUUID"),
        sha256=record.sha256,
        duration=record.duration,
        request=shot.request,
    )


def record_of(key: str, locked: LockedShot, path: str, size: int, info: ClipInfo) -> ClipRecord:
    """The cache's record of a clip file the lock vouches for (by its checksum)."""
    ids = {"videoUUID": locked.video_uuid} if locked.video_uuid else {}
    if locked.image_uuid:
        ids["imageUUID"] = locked.image_uuid
    if locked.audio_uuid:
        ids["audioUUID"] = locked.audio_uuid
    return ClipRecord(
        key=key,
        path=path,
        sha256=locked.sha256,
        bytes=size,
        duration=info.duration,
        width=info.width,
        height=info.height,
        seed=locked.seed,
        cost=locked.cost,
        renderer=locked.renderer,
        remote_ids=ids,
        label=locked.shot,
        created=time.time(),
    )


@dataclass(frozen=True)
class MadeFilm:
    """A film as the lock records it: the file made, whatever made it."""

    film: Film
    path: Path
    sha256: str
    bytes: int
    duration: float
    captions: dict[str, str]  # its caption files' checksums, by name


def make_lock(
    storyboard: str,
    renderer: str,
    shots: list[tuple[Node, tuple[str, ...], ClipRecord]],
    films: list[MadeFilm],
) -> Lock:
    """The lock of the renders the cache holds (with the variants that use each) and of the
    films that are current."""
    return Lock(
        storyboard=storyboard,
        renderer=renderer,
        shots={shot.key: locked_shot(shot, variants, record) for shot, variants, record in shots},
        sequences={
            made.film.name: LockedSequence(
                key=made.film.key,
                path=made.path.name,
                sha256=made.sha256,
                bytes=made.bytes,
                duration=round(made.duration, 3),
                shots=[use.shot.label for use in made.film.uses],
                recipe=made.film.recipe.data(),
                captions=made.captions,
            )
            for made in films
        },
    )
