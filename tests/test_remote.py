"""The team cache on a real S3-compatible server (SeaweedFS, started here), leases between
machines, and films joined on a real Dask cluster.

A "machine" is a project folder with its own local cache; machines share one bucket prefix.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import obstore
import pytest

from pipeline.cache import Cache
from pipeline.hashing import sha256_file
from pipeline.testing.runware_server import RunwareServer
from pipeline.testing.seaweed import SeaweedS3
from tests.conftest import write
from tests.runware_support import KEY, shots_spec, until

SHOTS = 3
SEQUENCES = (
    "sequences:\n"
    "  - {id: all, shots: [s0, s1, s2], preset: ultrafast}\n"
    "  - {id: pair, shots: [s2, s0], preset: ultrafast}\n"
)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    with SeaweedS3(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def runware(clip_dir: Path):
    with RunwareServer(latency=0.3, api_keys={KEY}, clip_dir=clip_dir) as running:
        yield running


@pytest.fixture
def team(s3: SeaweedS3, runware: RunwareServer, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The environment of a team machine: its own prefix in the bucket per test."""
    env = s3.env(prefix=f"t-{uuid.uuid4().hex[:10]}")
    env |= {"RUNWARE_BASE_URL": runware.url, "RUNWARE_API_KEY": KEY, "RUNWARE_POLL_SECONDS": "0.1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def machine(project: Path, name: str) -> Path:
    """A fresh clone of `project` on another machine: the tracked files, an empty cache."""
    root = project.parent / name
    shutil.copytree(project, root, ignore=shutil.ignore_patterns(".storyboard", "build"))
    (root / ".storyboard").mkdir()
    return root


def spec_in(project: Path, count: int = SHOTS, name: str = "team") -> Path:
    return write(project / "specs" / f"{name}.yaml", shots_spec(count, name=name) + SEQUENCES)


def films_of(root: Path, name: str = "team") -> dict[str, str]:
    folder = root / "build" / name
    return {p.name: sha256_file(p) for p in sorted(folder.glob("*.mp4"))}


def build_json(cli, *args: object) -> tuple[int, dict, str]:
    result = cli("build", *args, "--json")
    return result.code, json.loads(result.out) if result.out.strip() else {}, result.err


# -- the server itself -----------------------------------------------------------------------


def test_the_server_enforces_conditional_creates_under_concurrency(s3: SeaweedS3) -> None:
    """The leases rely on this: of 8 writers racing to create one object, exactly one wins,
    and a replace of a version that is no longer current is refused."""
    from obstore.exceptions import AlreadyExistsError, PreconditionError

    store = s3.store(prefix=f"race-{uuid.uuid4().hex[:8]}")
    barrier = threading.Barrier(8)
    winners: list[int] = []

    def write_one(index: int) -> None:
        barrier.wait()
        try:
            obstore.put(store, "lease", f"w{index}".encode(), mode="create")
            winners.append(index)
        except AlreadyExistsError:
            pass

    threads = [threading.Thread(target=write_one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert bytes(obstore.get(store, "lease").bytes()) == f"w{winners[0]}".encode()
    seen = obstore.head(store, "lease")["e_tag"]
    obstore.put(store, "lease", b"renewed", mode={"e_tag": seen})
    with pytest.raises(PreconditionError):
        obstore.put(store, "lease", b"stale", mode={"e_tag": seen})


# -- reproduce on another machine ------------------------------------------------------------


def test_a_fresh_clone_reproduces_the_films_from_the_lock_and_a_read_only_remote(
    project: Path, cli, team: dict, s3: SeaweedS3, runware: RunwareServer, monkeypatch
) -> None:
    spec = spec_in(project)
    code, summary, err = build_json(cli, spec)
    assert code == 0, err
    assert summary["rendered"] == SHOTS and runware.stats()["submits"] == SHOTS
    made = films_of(project)
    assert len(made) == 2
    submits = runware.stats()["submits"]

    # Machine B is a CI runner: a fresh clone (the lock came with git), an empty cache, and a
    # key that may only read the bucket.
    other = machine(project, "ci-runner")
    assert (other / "specs" / "team.lock").exists()
    for name, value in s3.env(reader=True, prefix=team["STORYBOARD_REMOTE"].split("/")[-1]).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(other)
    planned = cli("plan", other / "specs" / "team.yaml", "--json")
    assert json.loads(planned.out)["totals"]["in_team_cache"] == SHOTS
    assert json.loads(planned.out)["totals"]["cost_needed"] == 0
    status = json.loads(cli("status", other / "specs" / "team.yaml", "--json").out)
    assert {row["status"] for row in status} == {"remote"}  # shots and films alike
    code, summary, err = build_json(cli, other / "specs" / "team.yaml", "--frozen")
    assert code == 0, err
    assert summary["rendered"] == 0 and summary["pulled"] == SHOTS
    assert runware.stats()["submits"] == submits  # not one more
    assert films_of(other) == made  # byte-identical films
    lock = json.loads((other / "specs" / "team.lock").read_text())
    assert {s["sha256"] for s in lock["sequences"].values()} == set(made.values())
    assert "refuses" not in err  # nothing was written, so nothing was refused

    # A shot the team has not rendered: the runner renders it, without a lease it cannot take.
    spec_b = other / "specs" / "team.yaml"
    spec_b.write_text(
        spec_b.read_text().replace("shots:\n", "shots:\n  - {id: new, prompt: a new harbour}\n", 1)
    )
    code, summary, err = build_json(cli, spec_b)
    assert code == 0, err
    assert summary["rendered"] == 1 and runware.stats()["submits"] == submits + 1
    assert err.count("renders take no lease") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("damage", "said"),
    [("zeros", "is damaged"), ("longer", "is damaged"), ("gone", "are missing")],
)
def test_a_corrupt_object_in_the_remote_never_enters_a_local_cache(
    project: Path,
    cli,
    team: dict,
    s3: SeaweedS3,
    runware: RunwareServer,
    monkeypatch,
    damage: str,
    said: str,
) -> None:
    spec = write(project / "specs" / "one.yaml", shots_spec(1, name="one"))
    code, _, err = build_json(cli, spec)
    assert code == 0, err
    record = Cache(project / ".storyboard").clips.records()[0]
    prefix = team["STORYBOARD_REMOTE"].split("/", 3)[3]
    blob = f"blobs/{record.sha256}"
    store = s3.store(prefix=prefix)
    if damage == "gone":
        obstore.delete(store, blob)
    else:
        good = bytes(obstore.get(store, blob).bytes())
        obstore.put(store, blob, b"\0" * record.bytes if damage == "zeros" else good + b"\0")

    other = machine(project, "b")
    monkeypatch.chdir(other)
    submits = runware.stats()["submits"]
    code, summary, err = build_json(cli, other / "specs" / "one.yaml")
    assert code == 1
    assert said in summary["shots"][0]["error"]
    assert runware.stats()["submits"] == submits  # refused, and not paid for again either
    cache = Cache(other / ".storyboard")
    assert cache.clips.get(record.key) is None
    assert not list((other / ".storyboard" / "clips").rglob("*.mp4"))
    assert not [p for p in (other / ".storyboard" / "tmp").glob("*") if p.is_file()]
    pulled = cli("pull", other / "specs" / "one.yaml")
    assert pulled.code == 1 and "1 damaged, refused" in pulled.err
    assert cache.clips.get(record.key) is None


def test_push_and_pull_share_a_cache_built_without_the_remote(
    project: Path, cli, team: dict, runware: RunwareServer, monkeypatch
) -> None:
    spec = spec_in(project)
    code, _, err = build_json(cli, spec, "--no-push")
    assert code == 0, err
    other = machine(project, "b")
    monkeypatch.chdir(other)
    assert json.loads(cli("plan", "specs/team.yaml", "--json").out)["totals"]["in_team_cache"] == 0
    monkeypatch.chdir(project)
    pushed = cli("push")
    assert pushed.code == 0 and f"pushed {SHOTS} clip(s) and 2 film(s)" in pushed.err
    assert "pushed 0 clip(s) and 0 film(s)" in cli("push").err  # nothing twice
    monkeypatch.chdir(other)
    pulled = cli("pull")
    assert pulled.code == 0, pulled.err
    assert f"pulled {SHOTS} clip(s) and 2 film(s)" in pulled.err
    assert len(Cache(other / ".storyboard").clips.records()) == SHOTS
    submits = runware.stats()["submits"]
    code, summary, err = build_json(cli, other / "specs" / "team.yaml")
    assert code == 0 and summary["rendered"] == 0 and summary["from_cache"] == SHOTS, err
    assert runware.stats()["submits"] == submits
    assert films_of(other) == films_of(project)


def test_an_image_one_machine_uploaded_is_not_uploaded_by_the_next(
    project: Path, cli, team: dict, runware: RunwareServer, monkeypatch
) -> None:
    framed = "  - {id: f0, prompt: the raincoat turns, first_frame: assets/raincoat.jpg}\n"
    spec = write(project / "specs" / "framed.yaml", shots_spec(0, name="framed") + framed)
    assert cli("build", spec).code == 0
    assert runware.stats()["uploads"] == 1
    other = machine(project, "b")
    monkeypatch.chdir(other)
    again = framed + framed.replace("f0", "f1").replace("turns", "spins")
    write(other / "specs" / "framed.yaml", shots_spec(0, name="framed") + again)
    code, summary, err = build_json(cli, other / "specs" / "framed.yaml")
    assert code == 0, err
    assert summary["pulled"] == 1 and summary["rendered"] == 1
    assert runware.stats()["uploads"] == 1  # f1 used the image id the team already had


# -- leases: a team never pays twice ---------------------------------------------------------


def _spawn(root: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "build", "specs/team.yaml", "--json", *args],
        cwd=root,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_machines_building_at_once_render_each_key_once(
    project: Path, team: dict, runware: RunwareServer
) -> None:
    count = 6
    spec_in(project, count)
    other = machine(project, "b")
    runware.set_faults(latency=1.5)
    env = team | {"STORYBOARD_LEASE_SECONDS": "4"}  # a waiter looks again every second
    builds = [_spawn(root, env, "-j", "6") for root in (project, other)]
    results = [b.communicate(timeout=120) for b in builds]
    for build, (out, err) in zip(builds, results, strict=True):
        assert build.returncode == 0, err
        assert len(json.loads(out)["sequences"]) == 2
    stats = runware.stats()
    assert stats["submits"] == count and set(stats["billed_per_request"].values()) == {1}
    rendered = [json.loads(out)["rendered"] for out, _ in results]
    pulled = [json.loads(out)["pulled"] for out, _ in results]
    assert sum(rendered) == count and sum(pulled) == count  # each key: one render, one fetch
    assert films_of(project) == films_of(other)


def test_a_killed_machines_leases_are_taken_over_and_its_tasks_collected(
    project: Path, team: dict, runware: RunwareServer
) -> None:
    count = 3
    spec_in(project, count)
    other = machine(project, "b")
    env = team | {"STORYBOARD_LEASE_SECONDS": "2"}
    runware.hold()  # no task ends before the kill, however slow the machine
    killed = _spawn(project, env, "-j", "3")
    until(killed, lambda: runware.stats()["accepted"] == count)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert runware.stats()["downloads"] == 0  # every task was still in flight
    runware.hold(False)
    runware.release()

    survivor = _spawn(other, env, "-j", "3")
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err
    summary = json.loads(out)
    assert err.count("took over the lease of") == count
    assert summary["rendered"] == 0 and summary["collected"] == count
    stats = runware.stats()
    assert stats["submits"] == count and set(stats["billed_per_request"].values()) == {1}
    assert len(films_of(other)) == 2

    # The killed machine builds again: the team has every clip its journal names a task for.
    again = _spawn(project, env, "-j", "3")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert json.loads(out)["pulled"] == count and runware.stats()["submits"] == count
    assert Cache(project / ".storyboard").journal.entries() == {}  # nothing stale left


# -- settings and failures --------------------------------------------------------------------


def test_an_unreachable_remote_stops_a_build_before_it_pays(
    project: Path, cli, team: dict, runware: RunwareServer, monkeypatch
) -> None:
    spec = spec_in(project)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    planned = cli("plan", spec)
    assert planned.code == 0 and "warning: cannot look up" in planned.err
    result = cli("build", spec)
    assert result.code == 1 and "cannot look up" in result.err
    assert "STORYBOARD_NO_REMOTE=1" in result.err and "Traceback" not in result.err
    assert runware.stats()["submits"] == 0
    assert cli("build", spec, "--no-remote").code == 0  # said out loud, it works alone
    assert runware.stats()["submits"] == SHOTS


def test_settings_come_from_storyboard_toml_and_bad_ones_are_one_line_errors(
    project: Path, cli, team: dict, monkeypatch
) -> None:
    spec = spec_in(project)
    monkeypatch.delenv("STORYBOARD_REMOTE")
    settings = write(
        project / "storyboard.toml", f"[remote]\nurl = '{team['STORYBOARD_REMOTE']}'\n"
    )
    code, _summary, err = build_json(cli, spec)
    assert code == 0, err
    other = machine(project, "b")
    monkeypatch.chdir(other)
    planned = json.loads(cli("plan", other / "specs" / "team.yaml", "--json").out)
    assert planned["totals"]["in_team_cache"] == SHOTS  # found through the file alone

    quiet_settings = f"[remote]\nurl = '{team['STORYBOARD_REMOTE']}-quiet'\npush = false\n"
    settings.write_text(quiet_settings)
    (other / "storyboard.toml").write_text(quiet_settings)
    assert cli("build", spec, "--force", "s0").code == 0
    quiet = json.loads(cli("plan", other / "specs" / "team.yaml", "--json").out)
    assert quiet["totals"]["in_team_cache"] == 0  # push = false: nothing was shared

    for text, line, message in (
        ("[remote]\nurl = 'http://bucket/x'\n", 2, "is not an S3 address"),
        ("[remote]\nurl = 's3://bucket/x'\nlease_seconds = -1\n", 3, "lease_seconds"),
        ("[remote]\nurl = 's3://bucket/x'\nbukket = 'x'\n", 3, "bukket"),
        ("[remote\n", 1, "cannot be read as TOML"),
        ("[remote]\nurl = 's3://Not_A_Bucket/x'\n", 2, "is not a bucket name"),
    ):
        settings.write_text(text)
        result = cli("plan", spec)
        assert result.code == 2, (text, result.err)
        assert result.err.startswith(f"{settings}:{line}:"), result.err
        assert message in result.err.splitlines()[0] and "Traceback" not in result.err


def test_a_cluster_a_repository_names_is_not_used(
    project: Path, cli, team: dict, monkeypatch
) -> None:
    """A cluster's answers are unpickled on the build machine: only the person building may
    name one. A repository's storyboard.toml that names one is said and ignored."""
    spec = spec_in(project)
    monkeypatch.delenv("STORYBOARD_CLUSTER", raising=False)
    write(
        project / "storyboard.toml",
        f"cluster = 'tcp://127.0.0.1:9'\n[remote]\nurl = '{team['STORYBOARD_REMOTE']}'\n",
    )
    code, summary, err = build_json(cli, spec, "--preview")
    assert code == 0, err
    assert "`cluster` is ignored: a repository cannot choose where films are joined" in err
    assert "films joined on the cluster" not in err and "cluster  " not in err
    assert {s["status"] for s in summary["sequences"]} == {"built"}  # joined here


# -- assembly on a cluster --------------------------------------------------------------------


def test_films_joined_on_a_local_cluster_match_the_local_join(
    project: Path, cli, team: dict, monkeypatch
) -> None:
    from distributed import LocalCluster

    spec = write(
        project / "specs" / "team.yaml",
        shots_spec(3, name="team")
        + "sequences:\n"
        + "  - {id: cut, shots: [s0, s1, s2], preset: ultrafast}\n"
        + "  - {id: fade, shots: [s2, s1], transition: {type: crossfade, duration: 0.5}, preset: ultrafast}\n"
        + "  - {id: trim, shots: [{shot: s1, in: 1, out: 4}, s0], preset: ultrafast,\n"
        + "     text: [{text: On the cluster, shot: s0, box: black@0.5}]}\n",
    )
    code, _, err = build_json(cli, spec, "--preview", "--no-push")
    assert code == 0, err
    folder = project / "build" / "team" / "preview"
    local = {p.name: (p.stat().st_size, _duration(p)) for p in sorted(folder.glob("*.mp4"))}
    assert len(local) == 3
    shutil.rmtree(folder)
    shutil.rmtree(project / ".storyboard" / "films")

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        code, summary, err = build_json(
            cli, spec, "--preview", "--cluster", cluster.scheduler_address
        )
    assert code == 0, err
    first = err.splitlines()[0]
    assert first.startswith("build team.yaml") and first.endswith(
        f"films joined on the cluster {cluster.scheduler_address}"
    )
    assert "3 film(s) over 2 worker(s)" in err and err.count(", cluster) ->") == 3
    assert {s["status"] for s in summary["sequences"]} == {"built"}
    joined = {p.name: (p.stat().st_size, _duration(p)) for p in sorted(folder.glob("*.mp4"))}
    assert joined == local
    prefix = team["STORYBOARD_REMOTE"].split("/", 3)[3]
    shared = list(obstore.list(_store(team, prefix), "films/").collect())
    assert len(shared) == 3  # the workers shared them


def _store(team: dict, prefix: str):
    from obstore.store import S3Store

    return S3Store(
        team["STORYBOARD_REMOTE"].split("/")[2],
        prefix=prefix,
        endpoint=team["AWS_ENDPOINT_URL"],
        access_key_id=team["AWS_ACCESS_KEY_ID"],
        secret_access_key=team["AWS_SECRET_ACCESS_KEY"],
        region="us-east-1",
        client_options={"allow_http": True},
    )


def _duration(path: Path) -> float:
    from pipeline import media

    return round(media.probe(path).duration, 3)
