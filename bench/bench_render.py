"""Benchmark the Runware client: 200 shots against the local server, 2 s per task, -j 50.

Target (issue 4): the whole build within 15% of the ideal (4 waves of 2 s = 8 s), peak memory
under 200 MB; and how many polls each task took. The server runs in its own process.

    python bench/bench_render.py [--shots 200] [--jobs 50] [--latency 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import find_tool, run_measured

MEMORY_LIMIT_MB = 200


def make_storyboard(folder: Path, shots: int) -> Path:
    lines = [
        "version: 1",
        "name: render-bench",
        "defaults: {resolution: 768p, duration: 6}",
        "shots:",
    ]
    for index in range(shots):
        lines.append(f"  - {{id: s{index}, prompt: 'shot number {index} of the benchmark'}}")
    path = folder / "specs" / "render-bench.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline.testing.runware_server",
            "--port",
            "0",
            "--latency",
            str(latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    first = server.stdout.readline() if server.stdout else ""
    if "http://" not in first:
        server.kill()
        raise SystemExit(f"the server did not start: {first}")
    return server, first.split(" at ", 1)[1].strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shots", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--latency", type=float, default=2.0)
    args = parser.parse_args()
    storyboard = find_tool("storyboard", "pip install -e .")
    server, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-render-") as temp:
            folder = Path(temp)
            spec = make_storyboard(folder, args.shots)
            env = {**os.environ, "RUNWARE_BASE_URL": url, "RUNWARE_API_KEY": "bench-key"}
            # Draw the server's clip once, so the run measures the client, not the painter.
            warm = folder / "warm.yaml"
            warm.write_text(
                spec.read_text().replace("render-bench", "warm").split("  - ")[0]
                + "  - {id: w, prompt: 'warm the server up'}\n"
            )
            run_measured(
                [storyboard, "build", str(warm), "-q", "--cache-dir", str(folder / "warm-cache")],
                folder,
                env,
            )
            urllib.request.urlopen(urllib.request.Request(url.rsplit("/", 1)[0] + "/_reset", b"{}"))
            seconds, memory = run_measured(
                [storyboard, "build", str(spec), "-j", str(args.jobs), "-q"], folder, env
            )
            stats = json.load(urllib.request.urlopen(url.rsplit("/", 1)[0] + "/_stats"))
    finally:
        server.terminate()
        server.wait()
    waves = math.ceil(args.shots / args.jobs)
    ideal = waves * args.latency
    polls = list(stats["polls_per_task"].values())
    print(
        f"{args.shots} shots, -j {args.jobs}, {args.latency:g} s per task: ideal {ideal:.1f} s "
        f"({waves} waves)"
    )
    print(
        f"  wall time {seconds:.2f} s = {seconds / ideal:.3f} of ideal "
        f"(target within 15%: {'ok' if seconds <= ideal * 1.15 else 'MISSED'})"
    )
    span = stats["remote_span"]
    print(
        f"  remote span (first submit to last task done) {span:.2f} s = {span / ideal:.3f} of "
        "ideal; the rest is start-up and collecting the last wave (download, decode check)"
    )
    print(
        f"  peak memory {memory:.0f} MB (target under {MEMORY_LIMIT_MB}: "
        f"{'ok' if memory < MEMORY_LIMIT_MB else 'MISSED'})"
    )
    print(
        f"  polls per task: mean {sum(polls) / len(polls):.2f}, max {max(polls)}; "
        f"{stats['poll_requests']} poll requests for {stats['polled_tasks']} task polls"
    )
    print(
        f"  submits {stats['submits']}, billed ${stats['billed_cost']:.2f}, "
        f"largest concurrency seen {stats['max_concurrency']}"
    )


if __name__ == "__main__":
    main()
