"""A project in one command, the editor schema, and shell completion."""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from multiprocessing.pool import Pool
from pathlib import Path

import pytest

from pipeline.project import project_root
from tests.conftest import run_process, write
from tests.forked import Ran, forked_pool, run_cli
from tests.test_first_hour import git

# -- init -------------------------------------------------------------------------------------


# Init's storyboard made smaller to build: the same templates, matrix, formats, text and
# transition, at a model's smallest size, 5 s, and the fastest encoder (a preview renders
# the size asked): a fifth of the work.
SMALLER = {
    "  model: minimax:4@1 ": '  model: "bytedance:2@1"  #',
    "  resolution: 768p ": "  width: 864\n  height: 480  #",
    "  duration: 6\n": "  duration: 5\n",
    '    formats: ["16:9", "9:16"]': '    preset: ultrafast\n    formats: ["16:9", "9:16"]',
}
FILMS = [
    f"spot--{look}--{shape}"
    for look in ("neon-night", "soft-morning-light")
    for shape in ("16x9", "9x16")
]


WRITTEN = [
    ".gitignore",
    "specs/first.yaml",
    "storyboard.schema.json",
    "storyboard.toml",
    "templates/first/_style.j2",
    "templates/first/detail.j2",
    "templates/first/reveal.j2",
]


def _git_out(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=False)
    return done.stdout


def _with_identity(name: str) -> dict[str, str]:
    """The environment with (or, for None, without) a git identity, whatever this machine's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "EMAIL"))}
    env |= {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    if name:
        for role in ("AUTHOR", "COMMITTER"):
            env |= {f"GIT_{role}_NAME": name, f"GIT_{role}_EMAIL": "ana@example.com"}
    return env


def test_init_makes_a_project_whose_preview_build_makes_films(tmp_path: Path) -> None:
    made = run_process("init", "spot", cwd=tmp_path, env=_with_identity("Ana Lima"))
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "spot"
    assert (folder / ".git").is_dir()
    assert "next: cd spot && storyboard build specs/first.yaml --preview" in made.stdout
    # Its first commit: what init wrote, and only that.
    assert "committed what init wrote: the project's first commit" in made.stdout
    assert _git_out(folder, "log", "--format=%an: %s").splitlines() == [
        "Ana Lima: A storyboard project, as storyboard init writes it"
    ]
    assert sorted(_git_out(folder, "ls-files").splitlines()) == WRITTEN
    assert _git_out(folder, "status", "--porcelain") == ""
    planned = run_process("plan", "specs/first.yaml", "--preview", "--json", cwd=folder)
    assert planned.returncode == 0, planned.stderr
    assert sorted(s["name"] for s in json.loads(planned.stdout)["sequences"]) == FILMS
    storyboard = folder / "specs" / "first.yaml"
    text = storyboard.read_text()
    for written, smaller in SMALLER.items():
        assert written in text, written
        text = text.replace(written, smaller)
    storyboard.write_text(text)
    built = run_process("build", "specs/first.yaml", "--preview", cwd=folder)
    assert built.returncode == 0, built.stderr
    films = sorted(p.name for p in (folder / "build" / "first" / "preview").glob("*.mp4"))
    assert films == [f"{name}.mp4" for name in FILMS]
    # What the build made is either committed (its lock) or ignored (films, cache).
    assert _git_out(folder, "status", "--porcelain").splitlines() == [
        " M specs/first.yaml",  # made smaller above
        "?? specs/first.preview.lock",
    ]
    again = run_process("init", "spot", cwd=tmp_path)  # nothing is written over
    assert again.returncode == 2 and "already there" in again.stderr
    assert again.stderr.count("\n") <= 2 and "Traceback" not in again.stderr


def test_init_says_what_is_committed_and_what_is_not(tmp_path: Path, cli) -> None:
    assert cli("init", tmp_path / "film").code == 0
    ignore = (tmp_path / "film" / ".gitignore").read_text()
    assert [line for line in ignore.splitlines() if not line.startswith("#")] == [
        "build/",
        ".storyboard/",
    ]
    said = " ".join(line for line in ignore.splitlines() if line.startswith("#"))
    for committed in ("specs/*.yaml", "templates/", "storyboard.toml", "specs/*.lock"):
        assert committed in said.split("Not committed")[0], committed
    for committed in ("specs/*.preview.lock", "specs/*.picks.yaml", "specs/*.preview.picks.yaml"):
        assert committed in said.split("Not committed")[0], committed
    for ignored in ("build/", ".storyboard/"):
        assert ignored in said.split("Not committed")[1], ignored
    kept = ["specs/first.lock", "specs/first.preview.lock", "specs/first.preview.picks.yaml"]
    left = ["build/first/spot.mp4", ".storyboard/clips/ab/ab.mp4"]
    checked = _git_out(tmp_path / "film", "check-ignore", *kept, *left).splitlines()
    assert checked == left


def test_init_without_a_git_identity_makes_the_repository_and_says_why_no_commit(
    tmp_path: Path,
) -> None:
    made = run_process("init", "spot", cwd=tmp_path, env=_with_identity(""))
    assert made.returncode == 0, made.stderr
    assert "made a git repository in spot" in made.stdout
    assert made.stderr.startswith(
        "note: git has no user.name and user.email to commit with: no first commit made"
    )
    assert _git_out(tmp_path / "spot", "rev-parse", "--verify", "-q", "HEAD") == ""
    assert sorted(_git_out(tmp_path / "spot", "ls-files").splitlines()) == []


TINY = (
    "version: 1\nname: tiny\ndefaults: {model: acme:1@1, width: 320, height: 180, duration: 1}\n"
    "shots:\n  - {id: a, prompt: a lighthouse at dusk}\n"
    "sequences:\n  - {id: film, shots: [a], preset: ultrafast}\n"
)


def _made_in(project: Path) -> list[str]:
    """Where a build of specs/tiny.yaml put its lock, its cache and its film."""
    return sorted(
        str(p.relative_to(project))
        for p in (
            project / "specs" / "tiny.preview.lock",
            project / "build" / "tiny" / "preview" / "film.mp4",
            *(project / ".storyboard" / "clips").rglob("*.mp4"),
        )
        if p.is_file()
    )


def test_a_project_inside_a_repository_keeps_its_films_cache_and_locks(tmp_path: Path) -> None:
    """Built from its folder or from the repository's, and in a fresh clone (which has no
    .storyboard/: it is not committed), everything stays in the new project's folder."""
    outer = tmp_path / "studio"
    outer.mkdir()
    git(outer, "init", "-q")
    env = _with_identity("Ana Lima")
    assert run_process("init", "films/launch", cwd=outer, env=env).returncode == 0
    project = outer / "films" / "launch"
    write(project / "specs" / "tiny.yaml", TINY)
    for where, spec in ((outer, "films/launch/specs/tiny.yaml"), (project, "specs/tiny.yaml")):
        built = run_process("build", spec, "--preview", cwd=where)
        assert built.returncode == 0, built.stderr
        made = _made_in(project)
        assert len(made) == 3 and made[1:] == [
            "build/tiny/preview/film.mp4",
            "specs/tiny.preview.lock",
        ], made
        assert sorted(p.name for p in outer.iterdir()) == [".git", "films"]
    git(outer, "add", "-A")
    subprocess.run(["git", "commit", "-qm", "a project"], cwd=outer, env=env, check=True)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(outer), str(clone))
    copy = clone / "films" / "launch"
    assert not (copy / ".storyboard").exists()  # the cache stayed behind
    assert project_root(copy / "specs" / "tiny.yaml") == copy.resolve()
    built = run_process("build", "films/launch/specs/tiny.yaml", "--preview", cwd=clone)
    assert built.returncode == 0, built.stderr
    assert len(_made_in(copy)) == 3
    assert sorted(p.name for p in clone.iterdir()) == [".git", "films"]


def test_init_inside_a_repository_makes_no_nested_one(tmp_path: Path, cli) -> None:
    git(tmp_path, "init", "-q")
    write(tmp_path / ".gitignore", "*.log")
    result = cli("init", tmp_path / "films" / "launch", "--name", "launch")
    assert result.code == 0, result.err
    folder = tmp_path / "films" / "launch"
    assert not (folder / ".git").exists()
    assert "made a git repository" not in result.out
    assert (folder / "specs" / "launch.yaml").is_file()
    # A project of its own: its cache and films are in it, not at the repository's top.
    assert project_root(folder / "specs" / "launch.yaml") == folder.resolve()
    bad = cli("init", tmp_path / "other", "--name", "Big Launch")
    assert bad.code == 2 and "is not a storyboard name init can use" in bad.err


def _pipe(path: Path) -> None:
    os.mkfifo(path)


def _link(target: str) -> Callable[[Path], None]:
    return lambda path: os.symlink(target, path)


def _folder(path: Path) -> None:
    path.mkdir()


def _text(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


# What a cloned folder may hold where init writes: (name, how it is made), what init says.
IN_THE_WAY = {
    "a .gitignore that is a named pipe": (
        (".gitignore", _pipe),
        "'proj/.gitignore' is not a regular file (a named pipe)",
    ),
    "a .gitignore linked to /dev/zero": (
        (".gitignore", _link("/dev/zero")),
        "proj/.gitignore: a link to outside the project (/dev/zero)",
    ),
    "a .gitignore linked outside": (
        (".gitignore", _link("../outside/precious.txt")),
        "proj/.gitignore: a link to outside the project (../outside/precious.txt)",
    ),
    "a .gitignore that is a folder": (
        (".gitignore", _folder),
        "'proj/.gitignore' is not a regular file (a folder)",
    ),
    "a .git file pointing nowhere": (
        (".git", _text("gitdir: /nowhere/at/all\n")),
        "proj/.git: git cannot read the repository there "
        "(fatal: not a git repository: /nowhere/at/all)",
    ),
    "a .git that is a named pipe": (
        (".git", _pipe),
        "proj/.git: git cannot read the repository there",
    ),
    "specs linked outside": (
        ("specs", _link("../outside")),
        "proj/specs: a link to outside the project (../outside)",
    ),
    "the storyboard linked to a new file outside": (
        ("specs/first.yaml", _link("../../outside/new.yaml")),
        "proj/specs/first.yaml: a link to outside the project",
    ),
    "templates that is a file": (
        ("templates", _text("x")),
        "proj/templates: is not a folder, and init writes proj/templates/first/_style.j2 in it",
    ),
    "a .storyboard linked outside": (
        (".storyboard", _link("../outside")),
        "proj/.storyboard: a link to outside the project (../outside)",
    ),
    "a storyboard.toml linked outside": (
        ("storyboard.toml", _link("../outside/precious.txt")),
        "proj/storyboard.toml: a link to outside the project (../outside/precious.txt)",
    ),
}


def _entries(folder: Path) -> dict[str, str]:
    """Each entry under `folder`, links and pipes too (never followed), and what it is."""
    found = {}
    for parent, folders, names in os.walk(folder):
        for name in [*folders, *names]:
            path = Path(parent) / name
            found[str(path.relative_to(folder))] = os.readlink(path) if path.is_symlink() else ""
    return found


@pytest.fixture(scope="module")
def children() -> Iterator[Pool]:
    """Child processes forked from one that imported the CLI (tests/forked.py)."""
    with forked_pool(2) as pool:
        yield pool


def _init_in_a_child(pool: Pool, where: str, cwd: Path) -> Ran:
    """`storyboard init WHERE` in a child process, waited for 30 s at most: a reader of a
    pipe would wait for ever."""
    return pool.apply_async(run_cli, (["init", where], cwd, dict(os.environ), 2 << 30, 30)).get(
        timeout=30
    )


@pytest.mark.parametrize("case", IN_THE_WAY)
def test_init_writes_nothing_when_anything_is_in_its_way(
    tmp_path: Path, case: str, children: Pool
) -> None:
    (name, make), said = IN_THE_WAY[case]
    if ".git" in name and shutil.which("git") is None:
        pytest.skip("git is not installed")
    outside = write(tmp_path / "outside" / "precious.txt", "precious\n")
    folder = tmp_path / "proj"
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    make(folder / name)
    before = _entries(tmp_path)
    refused = _init_in_a_child(children, "proj", tmp_path)
    assert refused.code == 2, refused.err
    assert refused.err.startswith(f"error: {said}"), refused.err
    assert refused.err.count("\n") <= 2 and "Traceback" not in refused.err
    assert _entries(tmp_path) == before and refused.out == ""
    assert outside.read_bytes() == b"precious\n"


def test_init_in_a_folder_that_cannot_be_one_is_refused(tmp_path: Path, children: Pool) -> None:
    refused = _init_in_a_child(children, "/dev/null/x", tmp_path)
    assert refused.code == 2, refused.err
    assert refused.err.startswith("error: /dev/null/x: cannot be made: /dev/null is not a folder")
    assert list(tmp_path.iterdir()) == []


def test_init_adds_to_a_gitignore_keeping_its_bytes_and_its_link_inside(
    tmp_path: Path, cli
) -> None:
    folder = tmp_path / "proj"
    kept = folder / "config" / "ignored"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"caf\xe9.log\nbuild/")  # Latin-1, no newline at its end
    os.symlink("config/ignored", folder / ".gitignore")
    assert cli("init", folder).code == 0
    assert (folder / ".gitignore").is_symlink()
    assert kept.read_bytes() == b"caf\xe9.log\nbuild/\n.storyboard/\n"


# -- the schema -------------------------------------------------------------------------------


def _as_editors_read(path: Path):  # type: ignore[no-untyped-def]
    """The storyboard's YAML as data, as the tool reads it (`16:9` stays a ratio)."""
    from pipeline.spec import reading

    return reading.Builder(path).build(reading.parse(path, {}), "", 0)


def test_every_example_and_init_storyboard_validates_against_the_schema(
    tmp_path: Path, cli
) -> None:
    import json

    import jsonschema

    from tests.conftest import REPO

    printed = cli("schema")
    schema = json.loads(printed.out)
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.Draft202012Validator(schema)
    # The committed file the examples point editors at is what the command prints.
    assert (REPO / "storyboard.schema.json").read_text() == printed.out
    assert cli("init", tmp_path / "new").code == 0
    storyboards = [*sorted((REPO / "specs").glob("*.yaml")), tmp_path / "new/specs/first.yaml"]
    for path in storyboards:
        assert path.read_text().startswith(
            "# yaml-language-server: $schema=../storyboard.schema.json\n"
        ), path
        errors = [e.message for e in checker.iter_errors(_as_editors_read(path))]
        assert errors == [], (path, errors)
    typo = tmp_path / "typo.yaml"
    typo.write_text(storyboards[-1].read_text().replace("template:", "tempalte:", 1))
    errors = [e.message for e in checker.iter_errors(_as_editors_read(typo))]
    assert any("'tempalte' was unexpected" in e for e in errors), errors
    # Every field says what it is, for an editor's hover.
    shot = schema["$defs"]["ShotSpec"]["properties"]
    assert "Jinja template" in shot["prompt"]["description"]
    assert "1366x768" in shot["resolution"]["description"]


def test_schema_output_is_a_regular_file_and_nothing_else(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder, a named pipe, a link (even to a file) or a folder that is not there is
    refused, and left as it was. (A device is refused as the pipe is: a test that failed
    would replace /dev/null.)"""
    monkeypatch.chdir(tmp_path)
    outside = write(tmp_path / "outside.json", "precious")
    os.mkfifo("pipe")
    os.symlink(outside, "link")
    for given, said in (
        (".", ".: is a folder; schema -o writes a regular file"),
        ("pipe", "pipe: is a named pipe"),
        ("link", "link: is a link"),
        ("nope/schema.json", "nope/schema.json: the folder nope does not exist"),
    ):
        refused = cli("schema", "-o", given)
        assert refused.code == 2 and refused.err.startswith(f"error: {said}"), refused.err
    assert stat.S_ISFIFO(os.lstat("pipe").st_mode) and os.readlink("link") == str(outside)
    assert outside.read_text() == "precious" and not os.path.lexists("nope")
    assert cli("schema", "-o", "schema.json").code == 0
    assert json.loads(Path("schema.json").read_text())["$id"].startswith("https://")


# -- completion -------------------------------------------------------------------------------


@functools.cache
def _completion_script() -> str:
    """What `storyboard completion bash` prints, run as a command (once: it is the same
    script each time)."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "pipeline", "completion", "bash"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _bash_complete(project: Path, line: str) -> list[str]:
    """What bash offers at the end of `line`, with the script `completion bash` prints."""
    import shlex
    import sys

    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    shim = project / "bin" / "storyboard"
    write(shim, f'#!/bin/sh\nexec {sys.executable} -m pipeline "$@"\n').chmod(0o755)
    script = _completion_script()
    quoted = " ".join(shlex.quote(w) for w in words)
    program = (
        f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        '_storyboard; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {"PATH": f"{shim.parent}:/usr/bin:/bin", "HOME": str(project)}
    done = subprocess.run(
        ["bash", "-c", program], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_bash_completes_commands_options_files_shots_and_sequences(project: Path, cli) -> None:
    assert "init" in _bash_complete(project, "storyboard in")
    assert _bash_complete(project, "storyboard build --ma") == ["--max-cost", "--max-shots"]
    assert "specs/ballroom.yaml" in _bash_complete(project, "storyboard build specs/b")
    assert _bash_complete(project, "storyboard build specs/ballroom.yaml --only g") == ["glove"]
    assert _bash_complete(project, "storyboard build specs/ballroom.yaml t") == ["teaser"]
    assert _bash_complete(project, "storyboard pick specs/ballroom.yaml ke") == ["keys"]
    for shell in ("zsh", "fish"):
        printed = cli("completion", shell).out
        assert "storyboard __complete" in printed
