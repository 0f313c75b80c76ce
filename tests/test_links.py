"""Links, pipes and odd folders a cloned repository plants where storyboard writes: each is
refused with one line naming the file, or replaced itself; nothing is written through it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.cache import write_atomic
from tests.conftest import write

TINY = """\
version: 1
name: tiny
defaults: {resolution: 768p, duration: 6}
shots:
  - id: a
    prompt: a red ball
    takes: 2
sequences:
  - id: s
    shots: [a]
"""

DEAD = 2**22 + 1  # above the largest pid Linux gives out by default: never alive


@pytest.fixture
def tiny(project: Path) -> Path:
    return write(project / "specs" / "tiny.yaml", TINY)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the project that a planted link points at."""
    return write(tmp_path / "outside" / "precious.txt", "precious\n")


def _plant(link: Path, target: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return link


# -- partial files --------------------------------------------------------------------------


def test_a_partial_file_name_planted_as_a_link_is_never_written_through(
    project: Path, cli, tiny: Path, outside: Path
) -> None:
    """The names of a live build's partial files and write probes (its pid) and of a dead
    one's, planted as links: the lock and the decisions are written, the file outside is not
    touched, and the dead writer's link is removed (not what it points at)."""
    specs, films = project / "specs", project / "build" / "tiny" / "preview"
    live = [
        _plant(specs / f".tiny.preview.lock.{os.getpid()}.tmp", outside),
        _plant(specs / f".tiny.picks.yaml.{os.getpid()}.tmp", outside),
        _plant(specs / f".write-test-{os.getpid()}", outside),
        _plant(films / f".write-test-{os.getpid()}", outside),
    ]
    dead = _plant(specs / f".tiny.preview.lock.{DEAD}.tmp", outside)
    built = cli("build", tiny, "--preview", "-q")
    assert built.code == 0, built.err
    picked = cli("pick", tiny, "a", "2", "--preview")
    assert picked.code == 0, picked.err
    assert outside.read_bytes() == b"precious\n"
    lock, decisions = specs / "tiny.preview.lock", specs / "tiny.picks.yaml"
    assert not lock.is_symlink() and '"shots"' in lock.read_text()
    assert not decisions.is_symlink() and "a" in decisions.read_text()
    assert all(link.is_symlink() for link in live) and not os.path.lexists(dead)


def test_a_link_at_the_written_file_is_replaced_and_what_it_points_at_kept(
    tmp_path: Path, outside: Path
) -> None:
    target = _plant(tmp_path / "project" / "record.json", outside)
    write_atomic(target, "{}")
    assert not target.is_symlink() and target.read_text() == "{}"
    assert outside.read_bytes() == b"precious\n"
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]


def test_partial_files_of_dead_writers_are_removed_and_a_live_writers_kept(
    tmp_path: Path,
) -> None:
    from pipeline.cache import Cache

    folder, journal = tmp_path / "specs", tmp_path / ".storyboard" / "journal"
    dead = [
        write(folder / f".a.lock.{DEAD}.0123456789abcdef.tmp", "{"),
        write(folder / f".a.lock.{DEAD}.tmp", "{"),  # as versions before this one named them
        write(journal / f".k.json.{DEAD}.0123456789012345.tmp", "{"),
    ]
    live = write(folder / f".a.lock.{os.getpid()}.0123456789abcdef.tmp", "{")
    write_atomic(folder / "a.lock", "{}")
    Cache(tmp_path / ".storyboard").clean()
    assert [p for p in dead if p.exists()] == [] and live.exists()
