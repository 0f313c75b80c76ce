"""`storyboard init`: a working project in one command. A storyboard with a matrix, a
template with a shared macro, a text layer and two formats; its templates; the JSON Schema
an editor validates it with; a .gitignore; and a git repository when it is not in one."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.spec.json_schema import SCHEMA_FILE, schema_text

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

GITIGNORE = """\
# storyboard's build output and cache: rebuilt from the storyboard, the lock and the cache
build/
.storyboard/
"""

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class Created:
    """What `init` made: the files written (relative to the folder) and whether it made a
    git repository."""

    folder: Path
    files: tuple[Path, ...]
    storyboard: Path
    git: str  # "created", "inside" (an existing repository) or "missing" (no git command)


def create(folder: Path, name: str = "first") -> Created:
    """Write a new project into `folder` (made if missing). Nothing is overwritten: if a
    file it would write exists, nothing is written and the error names them all."""
    if not NAME.match(name):
        raise UserError(
            f"'{name}' is not a storyboard name init can use",
            "lower-case letters, digits, '-' and '_', starting with a letter or digit",
        )
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: is a file, not a folder")
    files = _files(name)
    taken = [path for path in files if (folder / path).exists()]
    ignored = folder / ".gitignore"
    if taken:
        names = ", ".join(str(folder / path) for path in taken)
        raise UserError(
            f"{names}: already there; init writes nothing over an existing file",
            "run init in an empty folder (storyboard init NEW-FOLDER), or pick another --name",
        )
    for path, text in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    _ignore_build_output(ignored)
    git = _git_init(folder)
    storyboard = Path("specs") / f"{name}.yaml"
    return Created(folder, (*files, Path(".gitignore")), storyboard, git)


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


def _ignore_build_output(path: Path) -> None:
    """A .gitignore that leaves out the build output: written, or added to."""
    if not path.exists():
        path.write_text(GITIGNORE, encoding="utf-8")
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = {line.strip() for line in text.splitlines()}
    missing = [entry for entry in ("build/", ".storyboard/") if entry not in lines]
    if missing:
        ending = "" if text.endswith("\n") or not text else "\n"
        path.write_text(text + ending + "\n".join(missing) + "\n", encoding="utf-8")


def _git_init(folder: Path) -> str:
    """A repository for the project, unless the folder is inside one already."""
    git = shutil.which("git")
    if git is None:
        return "missing"
    inside = subprocess.run(
        [git, "rev-parse", "--is-inside-work-tree"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if inside.returncode == 0 and inside.stdout.strip() == "true":
        return "inside"
    subprocess.run([git, "init", "-q"], cwd=folder, check=True, capture_output=True)
    return "created"
