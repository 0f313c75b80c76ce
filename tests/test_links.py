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
        _plant(specs / f".tiny.preview.picks.yaml.{os.getpid()}.tmp", outside),
        _plant(specs / f".write-test-{os.getpid()}", outside),
        _plant(films / f".write-test-{os.getpid()}", outside),
    ]
    dead = _plant(specs / f".tiny.preview.lock.{DEAD}.tmp", outside)
    built = cli("build", tiny, "--preview", "-q")
    assert built.code == 0, built.err
    picked = cli("pick", tiny, "a", "2", "--preview")
    assert picked.code == 0, picked.err
    assert outside.read_bytes() == b"precious\n"
    lock, decisions = specs / "tiny.preview.lock", specs / "tiny.preview.picks.yaml"
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


# -- films and the review page ----------------------------------------------------------------


def test_a_build_folder_linked_outside_is_refused_before_anything_is_rendered(
    project: Path, cli, tiny: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _plant(project / "build", elsewhere)
    for command in ("plan", "build"):
        refused = cli(command, tiny, "--preview")
        assert refused.code == 2, refused.err
        assert refused.err.startswith(f"error: build: a link to outside the project ({elsewhere})")
        assert "Traceback" not in refused.err
    assert list(elsewhere.iterdir()) == []
    assert not (project / ".storyboard" / "clips").exists()
    # A folder the person names outside the project is theirs to name.
    built = cli("build", tiny, "--preview", "-q", "--output-dir", elsewhere)
    assert built.code == 0, built.err
    assert (elsewhere / "tiny" / "preview" / "s.mp4").is_file()


def test_the_review_page_is_never_written_through_a_link_out_of_the_project(
    project: Path, cli, tiny: Path, tmp_path: Path
) -> None:
    films = project / "build" / "tiny" / "preview"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert cli("build", tiny, "--preview", "-q").code == 0
    for planted in ("review", "review/thumbs", "review/posters"):
        link = _plant(films / planted, elsewhere)
        refused = cli("review", tiny, "--preview")
        assert refused.code == 2, refused.err
        assert f"{planted}: a link to outside the project" in refused.err
        assert "Traceback" not in refused.err
        assert list(elsewhere.iterdir()) == []
        link.unlink()
        (films / "review").mkdir(exist_ok=True)
    assert cli("review", tiny, "--preview").code == 0
    assert (films / "review" / "index.html").is_file()


def test_only_a_link_from_inside_the_project_to_outside_it_is_one_to_refuse(
    tmp_path: Path,
) -> None:
    from pipeline.project import link_out_of

    root, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (root / "real").mkdir(parents=True)
    elsewhere.mkdir()
    _plant(root / "inside", root / "real")
    _plant(root / "out", elsewhere)
    _plant(root / "loop", root / "loop")
    _plant(root / "real" / "up", "../..")
    _plant(elsewhere / "back", root)
    assert link_out_of(root / "inside" / "build" / "film.mp4", root) is None
    assert link_out_of(root / "out" / "film.mp4", root) == root / "out"
    assert link_out_of(root / "inside" / "up" / "x", root) == root / "inside" / "up"
    assert link_out_of(root / "loop" / "x", root) == root / "loop"
    assert link_out_of(elsewhere / "back" / "x", root) is None  # named outside, by the person


@pytest.mark.parametrize("planted", [".storyboard", ".storyboard/journal", ".storyboard/clips"])
def test_a_cache_the_repository_ships_linked_outside_is_refused(
    project: Path, cli, tiny: Path, tmp_path: Path, planted: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if planted == ".storyboard":
        (project / ".storyboard").rmdir()
    _plant(project / planted, elsewhere)
    refused = cli("build", tiny, "--preview")
    assert refused.code == 2, refused.err
    assert refused.err.startswith(f"error: {planted}: a link to outside the project")
    assert list(elsewhere.iterdir()) == []


def test_a_key_lock_planted_as_a_link_stops_the_build_in_words(
    project: Path, cli, tiny: Path, outside: Path
) -> None:
    import json

    key = json.loads(cli("plan", tiny, "--preview", "--json").out)["shots"][0]["key"]
    _plant(project / ".storyboard" / "locks" / f"{key}.lock", outside)
    built = cli("build", tiny, "--preview", "-q")
    assert built.code == 1 and "the key's lock cannot be taken" in built.err
    assert "Traceback" not in built.err and outside.read_bytes() == b"precious\n"
