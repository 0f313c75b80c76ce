"""`storyboard init`: a working project in one command. A storyboard with a matrix, a
template with a shared macro, a text layer and two formats; its templates; the JSON Schema
an editor validates it with; its settings file (which makes the folder a project of its
own, even inside another repository); a .gitignore; and a git repository with a first
commit when it is not in one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.cache.files import NEW_FILE, write_atomic
from pipeline.errors import UserError
from pipeline.project import (
    MARKERS,
    SETTINGS_FILE,
    OutsideProject,
    read_bounded,
    refuse_link_out,
)
from pipeline.spec.json_schema import SCHEMA_FILE, schema_text

CACHE_FOLDER = MARKERS[0]  # `.storyboard/`: it makes the folder a project of its own

STORYBOARD = """\
# yaml-language-server: $schema=../{schema}
# A first storyboard: two shots in two looks, joined into one film in two formats.
#   storyboard plan specs/{name}.yaml --preview --why   what a build makes, and why
#   storyboard build specs/{name}.yaml --preview        local animatics: no key, no cost
#   RUNWARE_API_KEY=... storyboard build specs/{name}.yaml --max-cost 2   the real renders
version: 1
name: {name}
defaults:
  model: minimax:4@1      # MiniMax Hailuo 2.3: $0.28 a 6 s clip at 768p
  resolution: 768p        # 1366x768
  duration: 6
vars:
  product: a hand-thrown ceramic coffee cup
matrix:
  look: [soft morning light, neon night]   # every shot and film, once per look
shots:
  - id: reveal
    template: {name}/reveal.j2
  - id: detail
    template: {name}/detail.j2
sequences:
  - id: spot
    shots: [reveal, detail]
    transition: {{type: crossfade, duration: 0.5}}
    formats: ["16:9", "9:16"]   # a film of each: build/{name}/spot--<look>--16x9.mp4 ...
    text:
      - {{text: "{{{{ product | capitalize }}}}", shot: reveal, position: bottom}}
"""

STYLE = """\
{#- Prompt fragments the shots of this storyboard share: edit once, every prompt follows. -#}
{% macro style(look) -%}
{{ look }}, shallow depth of field, slow deliberate camera, premium product film
{%- endmacro %}
"""

REVEAL = """\
{% import "NAME/_style.j2" as s %}
The camera glides in on {{ product }} standing on a worn oak table as steam curls up from
it. {{ s.style(look) }}.
"""

DETAIL = """\
{% import "NAME/_style.j2" as s %}
Macro shot: a drop of coffee runs down the glazed rim of {{ product }} and catches the
light. {{ s.style(look) }}.
"""

SETTINGS = """\
# storyboard's settings for this project (committed). This file makes the folder a project of
# its own, even inside another repository: its films (build/), its cache (.storyboard/) and
# its locks stay in it.
#
# The team cache, shared on S3-compatible storage (see docs/team.md):
# [remote]
# url = "s3://bucket/prefix"
"""

GITIGNORE = """\
# Committed: the storyboards (specs/*.yaml) and their templates (templates/), the settings
# (storyboard.toml), the locks (specs/*.lock and specs/*.preview.lock: the exact clip of each
# render, paid or preview), and the decisions files (specs/*.picks.yaml and
# specs/*.preview.picks.yaml: the takes picked and approved).
# Not committed:
#   build/        the films, which a build makes again from the above and the cache
#   .storyboard/  the cache of what was rendered (storyboard push shares it with the team)
build/
.storyboard/
"""

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
IGNORED = (b"build/", b".storyboard/")
MAX_GITIGNORE_BYTES = 1 << 20  # far above any real one; a link to /dev/zero never ends
GIT_SECONDS = 60
NO_REPOSITORY = "not a git repository (or any of the parent directories)"


@dataclass(frozen=True)
class Created:
    """What `init` made: the files written (relative to the folder) and whether it made a
    git repository."""

    folder: Path
    files: tuple[Path, ...]
    storyboard: Path
    git: str  # "created", "inside" (an existing repository) or "missing" (no git command)
    # When init made the repository: "" (its first commit is made), else why there is none.
    commit: str = ""


def create(folder: Path, name: str = "first") -> Created:
    """Write a new project into `folder` (made if missing), its own project (`.storyboard/`
    marks it, inside a repository too). Everything is checked first: when anything is in the
    way (a file it would write, a folder that is a file, a link out of the folder, a
    .gitignore that is not a file, a repository git cannot read), nothing is written and the
    error names it. Nothing is overwritten, nor written through a link out of the folder."""
    if not NAME.match(name):
        raise UserError(
            f"'{name}' is not a storyboard name init can use",
            "lower-case letters, digits, '-' and '_', starting with a letter or digit",
        )
    _check_folder(folder)
    files = _files(name)
    _check_paths(folder, [*files, Path(SETTINGS_FILE), Path(".gitignore"), Path(CACHE_FOLDER)])
    taken = [path for path in files if os.path.lexists(folder / path)]
    if taken:
        names = ", ".join(str(folder / path) for path in taken)
        raise UserError(
            f"{names}: already there; init writes nothing over an existing file",
            "run init in an empty folder (storyboard init NEW-FOLDER), or pick another --name",
        )
    ignored = folder / ".gitignore"
    ignore_text = _ignoring_build_output(ignored)
    git = _git_state(folder)
    if not os.path.lexists(folder / SETTINGS_FILE):  # a project's own settings are kept
        files[Path(SETTINGS_FILE)] = SETTINGS
    try:
        for path, text in files.items():
            _write_new(folder / path, text)
        if ignore_text is not None:
            write_atomic(ignored.resolve(), ignore_text)  # a link inside the folder stays
        (folder / CACHE_FOLDER).mkdir(exist_ok=True)
    except OSError as exc:
        where = exc.filename or folder
        raise UserError(f"{where}: cannot be written ({exc.strerror or exc})") from None
    written = (*files, Path(".gitignore"))
    commit = ""
    if git == "none":
        git = _git_init(folder)
        commit = _first_commit(folder, written)
    storyboard = Path("specs") / f"{name}.yaml"
    return Created(folder, written, storyboard, git, commit)


def _files(name: str) -> dict[Path, str]:
    templates = Path("templates") / name
    files = {
        Path("specs") / f"{name}.yaml": STORYBOARD.format(name=name, schema=SCHEMA_FILE),
        templates / "_style.j2": STYLE,
        templates / "reveal.j2": REVEAL.replace("NAME", name),
        templates / "detail.j2": DETAIL.replace("NAME", name),
        Path(SCHEMA_FILE): schema_text(),
    }
    return files


def _check_folder(folder: Path) -> None:
    """`folder` is one, or can be made: the nearest part of it there is a folder."""
    there = next(p for p in (folder.absolute(), *folder.absolute().parents) if os.path.lexists(p))
    if not there.is_dir():
        said = (
            "is not a folder"
            if there == folder.absolute()
            else f"cannot be made: {there} is not a folder"
        )
        raise UserError(f"{folder}: {said}", "run init in a folder, or name a new one")


def _check_paths(folder: Path, paths: list[Path]) -> None:
    """Each of `paths` (relative to `folder`) can be written: no link on its way leads out
    of the folder, and what is there on its way is a folder."""
    root = folder.resolve()
    for path in paths:
        refuse_link_out(folder / path, root, "remove the link, or run init in another folder")
        for part in list(reversed(path.parents))[1:]:
            there = folder / part
            if os.path.lexists(there) and not there.is_dir():
                raise UserError(
                    f"{there}: is not a folder, and init writes {folder / path} in it",
                    "move it away, or run init in another folder",
                )
    storyboard = folder / CACHE_FOLDER
    if os.path.lexists(storyboard) and not storyboard.is_dir():
        raise UserError(
            f"{storyboard}: is not a folder, and it must be one: it holds the project's cache",
            "move it away, or run init in another folder",
        )


def _ignoring_build_output(path: Path) -> bytes | None:
    """The .gitignore that leaves out the build output: a new one, or the one there with
    what it lacks added (its bytes kept as they are); None when it lacks nothing. It is read
    bounded, and only as a regular file."""
    if not os.path.lexists(path):
        return GITIGNORE.encode("utf-8")
    try:
        text = read_bounded(path, MAX_GITIGNORE_BYTES)
    except OutsideProject as exc:
        raise UserError(
            str(exc), "init adds build/ and .storyboard/ to .gitignore: make it a file"
        ) from None
    lines = {line.strip() for line in text.splitlines()}
    missing = [entry for entry in IGNORED if entry not in lines]
    if not missing:
        return None
    ending = b"" if text.endswith(b"\n") or not text else b"\n"
    return text + ending + b"\n".join(missing) + b"\n"


def _write_new(path: Path, text: str) -> None:
    """Write a file that is not there: made by this call, or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, NEW_FILE, 0o644), "w", encoding="utf-8") as handle:
        handle.write(text)


def _git_state(folder: Path) -> str:
    """ "inside" a repository, "none" (one is made after the files) or "missing" (no git
    command). A repository git cannot read (a `.git` file pointing nowhere) is refused,
    in git's words."""
    git = shutil.which("git")
    if git is None:
        return "missing"
    there = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.is_dir())
    asked = _git(git, ["rev-parse", "--is-inside-work-tree"], there)
    if asked.returncode == 0 and asked.stdout.strip() == "true":
        return "inside"
    said = _last_line(asked.stderr) or asked.stdout.strip()
    named = folder / ".git"
    if NO_REPOSITORY not in said or os.path.lexists(named):
        where = named if os.path.lexists(named) else there
        raise UserError(
            f"{where}: git cannot read the repository there ({said})",
            "fix or remove what git names, or run init in another folder",
        )
    return "none"


def _git_init(folder: Path) -> str:
    git = shutil.which("git")
    assert git is not None
    made = _git(git, ["init", "-q"], folder)
    if made.returncode != 0:
        raise UserError(
            f"{folder}: the project is written, but git could not make a repository there "
            f"({_last_line(made.stderr) or f'exit code {made.returncode}'})",
            "make it one yourself: git init",
        )
    return "created"


def _first_commit(folder: Path, files: tuple[Path, ...]) -> str:
    """Commit what init wrote (and nothing else the folder holds) in the repository it made:
    "" when done, else why not, in words (init never fails for it)."""
    git = shutil.which("git")
    assert git is not None
    # Only a name and email the person gave (config or environment): git would otherwise
    # make one up from the machine's user and host names.
    explicit = ["-c", "user.useConfigOnly=true"]
    for who in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        if _git(git, [*explicit, "var", who], folder).returncode != 0:
            return (
                "git has no user.name and user.email to commit with: no first commit made "
                "(git config --global user.name 'Your Name'; git config --global user.email "
                "you@example.com; then git add -A && git commit)"
            )
    added = _git(git, ["add", "--", *map(str, files)], folder)
    if added.returncode == 0:
        message = "A storyboard project, as storyboard init writes it"
        added = _git(git, [*explicit, "commit", "-q", "-m", message], folder)
    if added.returncode != 0:
        said = _last_line(added.stderr) or f"exit code {added.returncode}"
        return f"git could not make the first commit ({said}): commit yourself"
    return ""


def _git(git: str, args: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    """Run git in `folder`; its failure to run at all said in words. Its messages in
    English: they are matched."""
    try:
        return subprocess.run(
            [git, *args],
            cwd=folder,
            env={**os.environ, "LC_ALL": "C"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=GIT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"{folder}: git {args[0]} did not run ({exc})") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
