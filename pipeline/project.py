"""The project: the one folder a storyboard may read from.

A storyboard is untrusted input (it comes from git, from colleagues, from agencies) and is
built on machines that hold an API key. Whatever it names (templates, first frames, audio)
must be a regular file inside the project once symlinks are followed, and never a hidden one:
`.env`, `.git/` and `.storyboard/` are not material for a prompt.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pipeline.errors import UserError

MARKERS = (".storyboard", ".git")
ROOT_HINT = (
    "a storyboard reads only regular, not hidden, files inside its project: {root} (the "
    "nearest folder above it holding .storyboard/ or .git)"
)


class OutsideProject(ValueError):
    """A path a storyboard may not read; the message says why, for a located error."""


class FileMissing(OutsideProject):
    """A path a storyboard names that does not exist."""


def project_root(path: Path) -> Path:
    """The nearest folder at or above a storyboard (or a folder) holding `.storyboard/` or
    `.git`; else the storyboard's own folder."""
    path = path.resolve()
    folder = path if path.is_dir() else path.parent
    for candidate in (folder, *folder.parents):
        if (candidate / MARKERS[0]).is_dir() or (candidate / MARKERS[1]).exists():
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


def project_file(name: str, base: Path, root: Path) -> Path:
    """The regular file `name` (relative to `base`) inside the project `root`."""
    resolved = _named(name, base, root)
    try:
        mode = os.stat(resolved).st_mode
    except FileNotFoundError:
        raise FileMissing(f"file '{name}' not found") from None
    except OSError as exc:
        raise OutsideProject(f"cannot read '{name}': {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise OutsideProject(f"'{name}' is not a regular file ({_kind(mode)})")
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


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a named pipe",
        stat.S_ISCHR: "a device",
        stat.S_ISBLK: "a device",
        stat.S_ISSOCK: "a socket",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a plain file")


SETTINGS_FILE = "storyboard.toml"


def project_settings(root: Path) -> tuple[dict[str, Any], Path | None]:
    """The team's settings and the file they came from: `storyboard.toml` at the project
    root, else `[tool.storyboard]` of its `pyproject.toml`; ({}, None) when neither has any.
    Secrets never live here: credentials come from the environment."""
    for name, table in ((SETTINGS_FILE, ()), ("pyproject.toml", ("tool", "storyboard"))):
        path = root / name
        try:
            data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UserError(
                f"{path}: cannot be read as TOML ({exc})", "fix the file: https://toml.io"
            ) from None
        for part in table:
            data = data.get(part, {}) if isinstance(data, dict) else {}
        if data:
            if not isinstance(data, dict):
                raise UserError(f"{path}: [tool.storyboard] must be a table")
            return data, path
    return {}, None
