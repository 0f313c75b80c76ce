"""The decisions file under hostile use: writers in parallel processes, text that is no text,
a file a repository planted (YAML tags, a merge left conflicted, a link out of the project),
a name in git config with terminal escapes. Each case ends in every decision kept, or in one
located error and exit 2 with nothing written: never a traceback or a file no command reads."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path

import pytest

from pipeline import decisions
from pipeline.decisions import Decision, Decisions
from pipeline.errors import UserError
from tests.conftest import REPO, write
from tests.forked import forked_pool, run_cli

SHOTS = 16
SPEC = "version: 1\nname: eight\ndefaults: {resolution: 768p, duration: 6}\nshots:\n" + "".join(
    f"  - {{id: s{n}, prompt: 'shot {n}: a lighthouse at dusk'}}\n" for n in range(SHOTS)
)
ENV = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}


@pytest.fixture
def eight(project: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    for key, value in (("user.name", "Ana Lima"), ("user.email", "ana@example.com")):
        subprocess.run(["git", "-C", str(project), "config", key, value], check=True)
    return write(project / "specs" / "eight.yaml", SPEC)


def lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def approving(pool: Pool, eight: Path, shots: range) -> list[AsyncResult]:
    """`storyboard approve SPEC sN` for each shot, each in a process of its own, at once."""
    return [
        pool.apply_async(
            run_cli, (["approve", str(eight), f"s{n}"], eight.parent.parent, ENV, 2 << 30, 30)
        )
        for n in shots
    ]


def approved(eight: Path) -> list[str]:
    written = lines(eight.with_name("eight.picks.yaml"))
    return [line.split(":")[0] for line in written if "verdict: approved" in line]


def test_parallel_approves_in_separate_processes_keep_every_line(eight: Path) -> None:
    with forked_pool(8) as pool:
        ran = [run.get(timeout=60) for run in approving(pool, eight, range(8))]
    assert [r.code for r in ran] == [0] * 8, [r.err for r in ran]
    assert all("approved (paid build: specs/eight.picks.yaml)" in r.out for r in ran)
    assert approved(eight) == sorted(f"s{n}" for n in range(8))


def test_the_app_and_commands_at_once_keep_every_line(eight: Path) -> None:
    import httpx

    from pipeline.api import Session
    from pipeline.review_app import make_app, refresh

    app = make_app(Session(eight), "127.0.0.1", 8765)
    refresh(app.state.served)
    groups = {group.label: id for id, group in app.state.served.groups.items()}
    own = "http://127.0.0.1:8765"

    async def from_the_app() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=own, headers={"Origin": own}
        ) as client:
            asked = [{"group": groups[f"s{n}"], "action": "approve"} for n in range(8)]
            answers = await asyncio.gather(*(client.post("/api/decide", json=a) for a in asked))
        return [answer.status_code for answer in answers]

    with forked_pool(8) as pool:
        runs = approving(pool, eight, range(8, SHOTS))
        assert asyncio.run(from_the_app()) == [200] * 8
        assert [run.get(timeout=60).code for run in runs] == [0] * 8
    assert approved(eight) == sorted(f"s{n}" for n in range(SHOTS))


def test_a_note_of_bytes_that_are_not_utf8_is_one_line_and_exit_2(eight: Path) -> None:
    # Python reads such bytes on a command line as halves of characters (surrogates).
    command = [sys.executable, "-m", "pipeline", "pick", str(eight), "s1", "1", "--note"]
    result = subprocess.run(
        [*command, b"caf\xe9"],
        cwd=eight.parent.parent,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        check=False,
    )
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.startswith("error: a note must be text: it holds no character at position 4")
    assert "Traceback" not in err
    assert not eight.with_name("eight.picks.yaml").exists()


def test_what_would_not_read_back_is_never_written(eight: Path) -> None:
    """The last check before a decision lands: the text is read back with the file's own
    reader. A decision that skipped validation (half a character in its note) is refused."""
    path = eight.with_name("eight.picks.yaml")
    decisions.write(Decisions(path), eight.parent.parent, {("s0", ""): Decision(take=1)})
    before = path.read_bytes()
    broken = Decision.model_construct(take=1, note="x\ud800y")
    with pytest.raises(UserError) as raised:
        decisions.write(Decisions(path), eight.parent.parent, {("s1", ""): broken})
    assert "would not read back as written" in raised.value.message
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "s0: {take: !!python/object:os.system 1}\ns1: {note: !mine x}\n",
            [
                "specs/eight.picks.yaml:1:12: the YAML tag !!python/object:os.system is not "
                "read in a decisions file",
                "specs/eight.picks.yaml:2:12: the YAML tag !mine is not read in a decisions file",
            ],
        ),
        (
            "s0: {take: 1}\n<<<<<<< HEAD\ns1: {take: 1}\n=======\ns1: {verdict: approved}\n"
            ">>>>>>> theirs\n",
            [
                "specs/eight.picks.yaml:2:1: a git merge conflict is left in the decisions file "
                "(<<<<<<<)",
                "  hint: resolve the merge: keep one line per shot",
            ],
        ),
    ],
    ids=["tags", "merge-conflict"],
)
def test_a_file_a_repository_ships_is_refused_located(cli, eight: Path, text, said) -> None:
    path = write(eight.with_name("eight.picks.yaml"), text)
    for command in (("plan", eight), ("status", eight, "-v"), ("approve", eight, "s2")):
        result = cli(*command)
        assert result.code == 2, result.err
        for line in said:
            assert line in result.err
        assert "Traceback" not in result.err
    assert path.read_text() == text  # nothing was written


def test_a_decisions_file_linked_out_of_the_project_is_not_read(
    cli, eight: Path, tmp_path: Path
) -> None:
    secret = write(tmp_path / "secret.txt", "s0: {note: the-secret-value}\n")
    link = eight.with_name("eight.picks.yaml")
    link.symlink_to(secret)
    result = cli("plan", eight)
    assert result.code == 2
    assert (
        "specs/eight.picks.yaml:1:1: 'eight.picks.yaml' goes through a link to outside the "
        "project" in result.err
    )
    assert cli("approve", eight, "s0").code == 2
    write(eight.parent.parent / ".env", "API_KEY=the-secret-value\n")
    link.unlink()
    link.symlink_to("../.env")
    result = cli("plan", eight, "--json")
    assert result.code == 2 and "is a hidden file or folder ('.env')" in result.err
    assert "the-secret-value" not in result.out + result.err
    assert secret.read_text() == "s0: {note: the-secret-value}\n"


def test_the_lock_of_writers_is_never_a_planted_link(cli, eight: Path, tmp_path: Path) -> None:
    # A link inside the project (one out of it is refused with the cache: test_links.py).
    elsewhere = eight.parent.parent / "build" / "elsewhere"
    elsewhere.mkdir(parents=True)
    (eight.parent.parent / ".storyboard" / "decisions").symlink_to(elsewhere)
    result = cli("approve", eight, "s0")
    assert result.code == 2
    assert "cannot lock the decisions file" in result.err and "must be a folder" in result.err
    assert list(elsewhere.iterdir()) == []
    assert not eight.with_name("eight.picks.yaml").exists()


def test_a_name_from_git_config_reaches_no_terminal_as_escapes(cli, eight: Path) -> None:
    root = eight.parent.parent
    subprocess.run(["git", "-C", str(root), "config", "user.name", "Ana\x1b[2J Lima"], check=True)
    assert cli("pick", eight, "s0", "1").code == 0
    text = eight.with_name("eight.picks.yaml").read_text()
    assert "\x1b" not in text and "by: 'Ana [2J Lima <ana@example.com>'" in text
    status = cli("status", eight, "-v")
    assert "\x1b" not in status.out + status.err
    assert "by Ana [2J Lima on" in " ".join(status.out.split())
    # A file written by hand with one is read without it.
    write(eight.with_name("eight.picks.yaml"), 's1: {take: 1, by: "Dee\\e]0;pwned\\a"}\n')
    status = cli("status", eight, "-v")
    assert status.code == 0 and "\x1b" not in status.out + status.err
