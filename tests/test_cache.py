"""The cache heals from its files, and gc keeps what any storyboard of the cache uses."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cache import Cache
from pipeline.testing.runware_server import RunwareServer
from tests.conftest import write
from tests.runware_support import local_runware, shots_spec


@pytest.fixture
def server(
    project: Path, monkeypatch: pytest.MonkeyPatch, clip_dir: Path
) -> Iterator[RunwareServer]:
    with local_runware(monkeypatch, clip_dir, latency=0.2) as running:
        yield running


@pytest.fixture
def built(project: Path, cli, server: RunwareServer) -> Path:
    """A storyboard of three paid shots, built once."""
    spec = write(project / "specs" / "three.yaml", shots_spec(3, "three"))
    result = cli("build", spec, "--json")
    assert result.code == 0, result.err
    assert server.stats()["accepted"] == 3
    return spec


def rebuild(cli, spec: Path) -> tuple[dict, str]:
    result = cli("build", spec, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out), result.err


def test_losing_the_index_costs_a_rescan_not_a_render(
    project: Path, cli, server: RunwareServer, built: Path
) -> None:
    shutil.rmtree(project / ".storyboard" / "index")
    summary, err = rebuild(cli, built)
    assert summary["rendered"] == 0 and summary["from_cache"] == 3
    assert server.stats()["submits"] == 3  # the first build's, nothing since
    assert "note: the cache index was missing: rebuilt it from 3 clip records" in err


def test_a_damaged_index_is_set_aside_and_rebuilt(
    project: Path, cli, server: RunwareServer, built: Path
) -> None:
    (project / ".storyboard" / "index" / "cache.db").write_bytes(b"not a database " * 500)
    summary, err = rebuild(cli, built)
    assert summary["rendered"] == 0 and server.stats()["submits"] == 3
    assert "the cache index was damaged (file is not a database" in err
    assert len(list((project / ".storyboard").glob("index.damaged-*"))) == 1
    assert "Traceback" not in err


def test_clips_without_records_are_vouched_for_by_the_lock(
    project: Path, cli, server: RunwareServer, built: Path
) -> None:
    # A cache from before records were kept beside clips, whose index was then lost.
    shutil.rmtree(project / ".storyboard" / "index")
    for record in (project / ".storyboard" / "clips").glob("*/*.json"):
        record.unlink()
    summary, _ = rebuild(cli, built)
    assert summary["rendered"] == 0 and server.stats()["submits"] == 3
    records = Cache(project / ".storyboard").clips.records()
    assert len(records) == 3 and all(r.cost == pytest.approx(0.28) for r in records)


def test_a_clip_whose_record_is_missing_from_the_index_is_found(
    project: Path, cli, server: RunwareServer, built: Path
) -> None:
    # A build killed between writing a clip's record and indexing it (and before its lock).
    cache = Cache(project / ".storyboard")
    first = cache.clips.records()[0]
    cache.clips._open(create=False).pop(first.key)
    cache.close()
    built.with_suffix(".lock").unlink()
    summary, _ = rebuild(cli, built)
    assert summary["rendered"] == 0 and server.stats()["submits"] == 3


# -- gc -----------------------------------------------------------------------------------------

HEADER = "".join(f"# line {n} of a long header about this storyboard\n" for n in range(100))


def preview_spec(project: Path, name: str, prompts: list[str], header: str = "") -> Path:
    shots = "".join(f"  - {{id: s{i}, prompt: '{p}'}}\n" for i, p in enumerate(prompts))
    text = f"{header}version: 1\nname: {name}\nrenderer: preview\nshots:\n{shots}"
    return write(project / "specs" / f"{name}.yaml", text)


def clip_keys(project: Path) -> set[str]:
    return {r.key for r in Cache(project / ".storyboard").clips.records()}


@pytest.fixture
def two(project: Path, cli) -> tuple[Path, Path]:
    """Two storyboards built into one cache, the second with a 100-line comment header."""
    a = preview_spec(project, "a", ["a red door", "a blue door"])
    b = preview_spec(project, "b", ["a green field", "a grey sky"], HEADER)
    for spec in (a, b):
        assert cli("build", spec, "-q").code == 0
    assert len(clip_keys(project)) == 4
    return a, b


def test_gc_given_one_storyboard_keeps_the_others_clips(project: Path, cli, two) -> None:
    a, _ = two
    result = cli("gc", a, "--yes")
    assert result.code == 0, result.err
    assert len(clip_keys(project)) == 4
    assert "0 unused clips" in result.out
    before = clip_keys(project)
    preview_spec(project, "a", ["a red door", "a yellow door"])
    assert cli("build", a, "-q").code == 0
    # Once the lock no longer names it, the replaced clip is the only one unused.
    result = cli("gc", project / "specs", "--yes")
    assert "1 unused clips" in result.out, result.out
    after = clip_keys(project)
    assert len(after) == 4 and len(before - after) == 1


def test_gc_keeps_the_clips_of_a_storyboard_it_cannot_read(project: Path, cli, two) -> None:
    a, b = two
    b_keys = clip_keys(project)
    b.write_text("version: 1\nname: b\nshots:\n  - id: [\n")
    result = cli("gc", a, "--yes")
    assert result.code == 0, result.err
    assert f"could not read {b.resolve()}" in result.out
    assert "(kept the 2 clips of its last build)" in result.out
    assert clip_keys(project) == b_keys
    b.unlink()  # gone, but it may come back from git: still kept until gc is told
    assert cli("gc", "--yes").code == 0 and clip_keys(project) == b_keys
    result = cli("gc", "--forget", b, "--yes")
    assert result.code == 0, result.err
    assert len(clip_keys(project)) == 2


def test_gc_does_not_guess_from_the_first_lines(project: Path, cli, two) -> None:
    # Nothing in the first 4,000 characters of b says it is a storyboard; gc reads it whole.
    listed = json.loads(cli("gc", "--json").out)
    assert str((project / "specs" / "b.yaml").resolve()) in listed["storyboards"]
    assert listed["unused"] == []


def test_a_journal_entry_of_a_task_already_delivered_goes_and_a_forced_ones_stays(
    tmp_path: Path,
) -> None:
    """A build killed between storing a clip and clearing its journal entry: the next build
    settles the entry of that very task, never that of a newer task of the same key."""
    from pipeline.cache import JournalEntry

    cache = Cache(tmp_path / "cache")
    for key, delivered_task, journaled_task in (
        ("a" * 64, "task-delivered", "task-delivered"),
        ("b" * 64, "task-old", "task-forced-again"),
    ):
        clip = tmp_path / f"{key[0]}.mp4"
        clip.write_bytes(b"a clip")
        cache.clips.put(
            key,
            clip,
            sha256="x",
            duration=6.0,
            width=1366,
            height=768,
            renderer="runware",
            remote_ids={"taskUUID": delivered_task},
            cost=0.28,
        )
        entry = JournalEntry(
            key=key, renderer="runware", label=key[0], started=0.0, task_uuid=journaled_task
        )
        cache.journal.write(entry)
    cache.clean()
    assert list(cache.journal.entries()) == ["b" * 64]
