"""Benchmark films joined on a Dask cluster: N workers against one (issue 13: about 1/N).

A campaign of films (crossfades: each one an x264 encode) is joined by `storyboard build
--cluster` on a LocalCluster of 1, then 2 worker processes, each worker pinned to a core of
its own, as a worker on a machine of its own would be; and by the same build without a
cluster, for reference. The clips come from the preview renderer and the team cache is a
local SeaweedFS.

    python bench/bench_cluster.py [--films 24] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import find_tool

from pipeline.testing.seaweed import SeaweedS3

TRANSITIONS = ("crossfade", "fadeblack", "wipeleft", "wiperight")


def campaign(folder: Path, films: int) -> Path:
    lines = [
        "version: 1",
        "name: campaign",
        "defaults: {resolution: 768p, duration: 6}",
        "shots:",
        *(f"  - {{id: s{i}, prompt: 'shot {i}: a harbour at dawn'}}" for i in range(4)),
        "sequences:",
    ]
    for index in range(films):
        kind = TRANSITIONS[index % len(TRANSITIONS)]
        length = 0.3 + 0.1 * (index // len(TRANSITIONS))
        order = [f"s{(index + k) % 4}" for k in range(3)]
        lines.append(
            f"  - {{id: f{index}, shots: [{', '.join(order)}], "
            f"transition: {{type: {kind}, duration: {length:.1f}}}, preset: veryfast}}"
        )
    (folder / ".storyboard").mkdir()
    spec = folder / "campaign.yaml"
    spec.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return spec


def timed_build(command: list[str], folder: Path, env: dict[str, str]) -> float:
    for made in (folder / "build", folder / ".storyboard" / "films"):
        shutil.rmtree(made, ignore_errors=True)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def pin(core: int) -> None:
    os.sched_setaffinity(0, {core})


def on_cluster(
    workers: int, command: list[str], folder: Path, env: dict[str, str], run: int
) -> float:
    from distributed import Client, LocalCluster

    cores = sorted(os.sched_getaffinity(0))
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        for index, address in enumerate(sorted(client.scheduler_info()["workers"])):
            client.run(pin, cores[index % len(cores)], workers=[address])
        fresh = {**env, "STORYBOARD_REMOTE": f"{env['STORYBOARD_REMOTE']}-{workers}-{run}"}
        return timed_build([*command, "--cluster", cluster.scheduler_address], folder, fresh)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--films", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    storyboard = find_tool("storyboard", "pip install -e '.[remote]'")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as temp, SeaweedS3() as s3:
        folder = Path(temp)
        spec = campaign(folder, args.films)
        env = {**os.environ, **s3.env(prefix="campaign")}
        os.environ.update(s3.env(prefix="campaign"))  # the workers' credentials
        command = [storyboard, "build", str(spec), "--preview", "-q", "--no-push"]
        alone = {k: v for k, v in env.items() if k != "STORYBOARD_REMOTE"}
        timed_build(command, folder, alone)  # renders the clips once
        local = timed_build(command, folder, alone)
        print(f"{args.films} films joined here, one after another: {local:.1f} s")
        times = {}
        for workers in args.workers:
            times[workers] = on_cluster(workers, command[:-1], folder, env, 0)
            print(
                f"{args.films} films on a LocalCluster of {workers} worker(s), a core each: "
                f"{times[workers]:.1f} s"
            )
        first = min(times)
        for workers, seconds in times.items():
            if workers != first:
                speedup = times[first] / seconds
                ideal = workers / first
                print(
                    f"{workers} workers against {first}: {speedup:.2f}x faster "
                    f"(ideal {ideal:.1f}x: {speedup / ideal:.0%} of it)"
                )


if __name__ == "__main__":
    main()
