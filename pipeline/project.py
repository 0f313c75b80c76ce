"""The project: the one folder a storyboard may read from.

A storyboard is untrusted input (it comes from git, from colleagues, from agencies) and is
built on machines that hold an API key. Whatever it names (templates, first frames, audio)
must be a regular file inside the project once symlinks are followed, and never a hidden one:
`.env`, `.git/` and `.storyboard/` are not material for a prompt.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pipeline.errors import SpecError, UserError, shown

SETTINGS_FILE = "storyboard.toml"
# What makes a folder a project: its cache folder, a git repository, or its settings. The
# settings file is the one of them a clone has of a project inside another repository (the
# cache is not committed): without it, that project's films and cache would go to the
# repository's top.
MARKERS = (".storyboard", ".git", SETTINGS_FILE)
ROOT_HINT = (
    "a storyboard reads only regular, not hidden, files inside its project: {root} (the "
    "nearest folder above it holding .storyboard/, .git or storyboard.toml)"
)


class OutsideProject(ValueError):
    """A path a storyboard may not read; the message says why, for a located error."""


class FileMissing(OutsideProject):
    """A path a storyboard names that does not exist."""


class TooLarge(OutsideProject):
    """A file larger than a file of its kind may be: refused unread."""


# The most bytes read of each kind of file a repository ships: far above any real one, low
# enough that a hostile one costs a moment (a link to /dev/zero never ends).
MAX_SETTINGS_BYTES = 1 << 20  # storyboard.toml, pyproject.toml
MAX_LOCK_BYTES = 64 << 20  # a lock of 10,000 shots with their requests is about 20 MB
MAX_FONT_BYTES = 64 << 20  # a CJK collection is about 20 MB
MAX_IMAGE_BYTES = 64 << 20  # first frames, logos, card images (8,192 px a side at most)
MAX_AUDIO_BYTES = 512 << 20  # ten minutes of 48 kHz stereo WAV is about 115 MB


@contextlib.contextmanager
def opened(path: Path, limit: int, name: str | None = None) -> Iterator[BinaryIO]:
    """A regular file of at most `limit` bytes, open for reading. A named pipe, a device, a
    socket or a folder is refused before it is opened (a pipe would hang a reader, a link
    to /dev/zero never ends), and again once it is, in case it was swapped meanwhile; a file
    larger than `limit` is refused before it is read. Every refusal is an OutsideProject
    (FileMissing when there is no file) whose message names the file as `name` spells it."""
    shown = name if name is not None else str(path)
    try:
        _regular(os.stat(path).st_mode, shown)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise FileMissing(f"file '{shown}' not found") from None
    except OSError as exc:
        raise OutsideProject(f"cannot read '{shown}': {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(fd)
        _regular(status.st_mode, shown)
        if status.st_size > limit:
            raise TooLarge(
                f"'{shown}' is {status.st_size:,} bytes: over the {limit:,} read of such a file"
            )
        yield handle


def read_bounded(path: Path, limit: int, name: str | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (see `opened`); a file that grows
    past `limit` while it is read is refused too."""
    shown = name if name is not None else str(path)
    with opened(path, limit, name) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise OutsideProject(f"cannot read '{shown}': {exc.strerror or exc}") from None
    if len(data) > limit:
        raise TooLarge(f"'{shown}' is over the {limit:,} bytes read of such a file")
    return data


def _regular(mode: int, shown: str) -> None:
    if not stat.S_ISREG(mode):
        raise OutsideProject(f"'{shown}' is not a regular file ({file_kind(mode)})")


def project_root(path: Path) -> Path:
    """The nearest folder at or above a storyboard (or a folder) holding `.storyboard/`,
    `.git` or `storyboard.toml`; else the storyboard's own folder."""
    path = path.resolve()
    folder = path if path.is_dir() else path.parent
    for candidate in (folder, *folder.parents):
        if (candidate / MARKERS[0]).is_dir() or any((candidate / m).exists() for m in MARKERS[1:]):
            return candidate
    return folder


def confined(path: Path, root: Path, name: str | None = None) -> Path:
    """`path` with its symlinks followed, if it stays inside `root` and is not hidden. `name`
    is the path as the storyboard spells it, for messages."""
    shown = name if name is not None else str(path)
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise OutsideProject(f"'{shown}' cannot be resolved ({exc})") from None
    if not resolved.is_relative_to(root):
        inside = Path(os.path.abspath(path)).is_relative_to(root)  # as spelled, links aside
        how = "goes through a link to outside" if inside else "is outside"
        raise OutsideProject(f"'{shown}' {how} the project")
    hidden = [part for part in resolved.relative_to(root).parts if part.startswith(".")]
    if hidden:
        raise OutsideProject(f"'{shown}' is a hidden file or folder ('{hidden[0]}'): not read")
    return resolved


def link_out_of(path: Path, root: Path) -> Path | None:
    """The first link on the way to `path` (a file or folder to write) that leads from inside
    the project `root` to outside it; None when none does. A repository can plant one
    (`build -> /home/me/.config`) to make a write land anywhere; a path the person names
    outside the project is theirs to name."""
    spelled = Path.cwd() / path  # `..` kept: after a link, it is the parent of its target
    walked = Path(spelled.anchor)
    for part in spelled.parts[1:]:
        walked = walked / part
        planted = walked.is_symlink() and _resolves_inside(walked.parent, root)
        if planted and not _resolves_inside(walked, root):
            return walked
    return None


def refuse_link_out(path: Path, root: Path, hint: str) -> None:
    """Refuse to write at `path` through a link that leaves the project (see `link_out_of`):
    one line naming the link and where it points."""
    link = link_out_of(path, root)
    if link is not None:
        raise UserError(
            f"{Path(shown(link.parent)) / link.name}: a link to outside the project "
            f"({os.readlink(link)}); storyboard writes nothing through it",
            hint,
        )


def _resolves_inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a link loop leads nowhere to write
        return False


def project_file(name: str, base: Path, root: Path) -> Path:
    """The regular file `name` (relative to `base`) inside the project `root`."""
    resolved = _named(name, base, root)
    try:
        mode = os.stat(resolved).st_mode
    except FileNotFoundError:
        raise FileMissing(f"file '{name}' not found") from None
    except OSError as exc:
        raise OutsideProject(f"cannot read '{name}': {exc.strerror}") from None
    _regular(mode, name)
    return resolved


def project_folder(name: str, base: Path, root: Path) -> Path:
    """The folder `name` (relative to `base`) inside the project `root`."""
    resolved = _named(name, base, root)
    if not resolved.is_dir():
        raise FileMissing(f"folder '{name}' not found")
    return resolved


def _named(name: str, base: Path, root: Path) -> Path:
    if not name.strip() or "\0" in name:
        raise OutsideProject(f"{name!r} is not a file name")
    return confined(base / name, root, name)


def find_in(folders: tuple[Path, ...], name: str, root: Path) -> Path | None:
    """The first of `folders` holding `name` as a project file; None when none holds it. A
    name that exists but may not be read (outside, hidden, not a file) is refused."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or ".." in parts:
        raise OutsideProject(f"'{name}': a template name may not start with / or hold ..")
    for folder in folders:
        if os.path.lexists(folder / name):
            return project_file(name, folder, root)
    return None


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words: `a named pipe`..."""
    kinds = {
        stat.S_ISLNK: "a link",
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a named pipe",
        stat.S_ISCHR: "a device",
        stat.S_ISBLK: "a device",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a plain file")


# The team's settings of a project, and the file they came from (None: there are none).
ProjectSettings = tuple[dict[str, Any], Path | None]


def project_settings(root: Path) -> ProjectSettings:
    """The team's settings and the file they came from: `storyboard.toml` at the project
    root, else `[tool.storyboard]` of its `pyproject.toml`; ({}, None) when neither has any.
    Secrets never live here: credentials come from the environment."""
    for name, table in ((SETTINGS_FILE, ()), ("pyproject.toml", ("tool", "storyboard"))):
        path = root / name
        if not os.path.lexists(path):
            continue
        try:
            text = read_bounded(path, MAX_SETTINGS_BYTES, name).decode("utf-8")
            data: Any = tomllib.loads(text)
        except OutsideProject as exc:
            raise SpecError(path, 1, 1, str(exc)) from None
        except UnicodeDecodeError as exc:
            raise SpecError(path, 1, 1, f"not UTF-8 text ({exc.reason})") from None
        except tomllib.TOMLDecodeError as exc:
            line, col = _toml_place(exc)
            raise SpecError(
                path, line, col, f"cannot be read as TOML ({exc})", "fix the file: https://toml.io"
            ) from None
        for part in table:
            data = data.get(part, {}) if isinstance(data, dict) else {}
        if data:
            if not isinstance(data, dict):
                raise UserError(f"{path}: [tool.storyboard] must be a table")
            return data, path
    return {}, None


def _toml_place(exc: tomllib.TOMLDecodeError) -> tuple[int, int]:
    """Line and column of a TOML error (tomllib says them: "(at line 3, column 7)")."""
    found = re.search(r"at line (\d+), column (\d+)", str(exc))
    return (int(found.group(1)), int(found.group(2))) if found else (1, 1)
