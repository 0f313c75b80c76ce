"""Benchmark the Runware client against the local server (its own process), in two runs:

- burst: 200 shots, 2 s tasks, -j 50. What the client costs: CPU seconds per task (submit,
  polls, download, the decode check of every clip), and the remote span (first submit to last
  task done) against the ideal of 4 waves of 2 s.
- real: 20 shots, 60 s tasks (real Hailuo renders take 1 to 3 minutes), -j 20. Target
  (issue 10): the whole build within 1.05x of the ideal 60 s.
- chained: 50 chains of 4 shots, each starting from the last frame of the one before, 60 s
  tasks, -j 50. Target (issue 15): the whole build within 1.1x of the ideal critical path,
  4 x 60 s plus the 3 frame extractions of one chain (one extraction is timed alone here).

The server's clips carry film grain so that they weigh what a real 768p clip weighs, and the
decode check costs what it would (--grain 0: nearly empty clips, the check at its cheapest).

    python bench/bench_render.py [--only burst|real|chained] [--grain N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import find_tool, run_measured

REAL_GRAIN = 12  # clips as heavy as real renders (8 Mbit/s at 1080p, 3.6 at 768p)


@dataclass(frozen=True)
class Scenario:
    shots: int
    latency: float
    jobs: int
    target: float | None  # wall time within this many times the ideal, if any
    chain: int = 1  # shots per chain, each starting from the last frame of the one before


SCENARIOS = {
    "burst": Scenario(shots=200, latency=2.0, jobs=50, target=None),
    "real": Scenario(shots=20, latency=60.0, jobs=20, target=1.05),
    "chained": Scenario(shots=200, latency=60.0, jobs=50, target=1.1, chain=4),
}


def make_storyboard(folder: Path, name: str, shots: int, chain: int = 1) -> Path:
    lines = [f"version: 1\nname: {name}\ndefaults: {{resolution: 768p, duration: 6}}\nshots:"]
    for index in range(shots):
        line = f"  - {{id: s{index}, prompt: 'shot number {index} of the {name} run'"
        if index % chain:
            line += f", first_frame: {{shot: s{index - 1}, frame: last}}"
        lines.append(line + "}")
    path = folder / "specs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def start_server(latency: float, grain: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "pipeline.testing.runware_server", "--port", "0"]
    command += ["--latency", str(latency), "--clip-noise", str(grain)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    first = server.stdout.readline() if server.stdout else ""
    if "http://" not in first:
        server.kill()
        raise SystemExit(f"the server did not start: {first}")
    return server, first.split(" at ", 1)[1].strip()


def control(url: str, path: str, body: dict | None = None) -> dict:
    root = url.rsplit("/", 1)[0]
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(root + path, data)) as answer:
        return json.load(answer)


def run(name: str, scenario: Scenario, storyboard: str, grain: int) -> bool:
    server, url = start_server(scenario.latency, grain)
    try:
        with tempfile.TemporaryDirectory(prefix=f"bench-render-{name}-") as temp:
            folder = Path(temp)
            (folder / ".storyboard").mkdir()
            env = {**os.environ, "RUNWARE_BASE_URL": url, "RUNWARE_API_KEY": "bench-key"}
            # Draw the server's clip once (with short tasks), so the run measures the client.
            control(url, "/_faults", {"latency": 0.1})
            warm = make_storyboard(folder, "warm", 1)
            run_measured([storyboard, "build", str(warm), "-q"], folder, env)
            extraction = time_extraction(folder / ".storyboard") if scenario.chain > 1 else 0.0
            control(url, "/_faults", {"latency": scenario.latency})
            control(url, "/_reset", {})
            spec = make_storyboard(folder, name, scenario.shots, scenario.chain)
            measured = run_measured(
                [storyboard, "build", str(spec), "-j", str(scenario.jobs), "-q"], folder, env
            )
            stats = control(url, "/_stats")
    finally:
        server.terminate()
        server.wait()
    waves = math.ceil(scenario.shots / scenario.chain / scenario.jobs) * scenario.chain
    ideal = waves * scenario.latency + (scenario.chain - 1) * extraction
    ratio = measured.seconds / ideal
    polls = list(stats["polls_per_task"].values())[-scenario.shots :]
    span = stats["remote_span"]
    chained = (
        f", in chains of {scenario.chain} (+{scenario.chain - 1} x {extraction:.3f} s to take a "
        "last frame)"
        if scenario.chain > 1
        else ""
    )
    print(
        f"{name}: {scenario.shots} shots, -j {scenario.jobs}, {scenario.latency:g} s per task, "
        f"clip grain {grain}; ideal {ideal:g} s ({waves} waves{chained})"
    )
    verdict = ""
    if scenario.target is not None:
        met = ratio <= scenario.target
        verdict = f" (target within {scenario.target:g}x: {'ok' if met else 'MISSED'})"
    print(f"  wall time {measured.seconds:.2f} s = {ratio:.3f}x the ideal{verdict}")
    print(f"  remote span {span:.2f} s = {span / ideal:.3f}x the ideal (first submit to last done)")
    print(
        f"  client CPU {measured.cpu:.2f} s = {measured.cpu / scenario.shots * 1000:.0f} ms "
        f"per task (submit, polls, download, decode check); peak memory {measured.memory:.0f} MB"
    )
    print(
        f"  polls per task: mean {sum(polls) / len(polls):.2f}, max {max(polls)}; "
        f"{stats['poll_requests']} poll requests; billed ${stats['billed_cost']:.2f} for "
        f"{stats['billed_tasks']} tasks"
    )
    return scenario.target is None or ratio <= scenario.target


def time_extraction(cache: Path) -> float:
    """Seconds to take the last frame of one served clip, as a dependent shot's build does
    (the median of three, each into a new file)."""
    from pipeline import media

    clip = next(cache.glob("clips/*/*.mp4"))
    times = []
    with tempfile.TemporaryDirectory(prefix="bench-frame-") as temp:
        for attempt in range(3):
            started = time.perf_counter()
            media.extract_frame(clip, "last", Path(temp) / f"{attempt}.png")
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=sorted(SCENARIOS), help="run one scenario")
    parser.add_argument(
        "--grain",
        type=int,
        default=REAL_GRAIN,
        help=f"film grain of the served clips: {REAL_GRAIN} weighs as a real render, 0 is a "
        "nearly empty clip (what the check costs at the least)",
    )
    args = parser.parse_args()
    storyboard = find_tool("storyboard", "pip install -e .")
    names = [args.only] if args.only else list(SCENARIOS)
    results = [run(name, SCENARIOS[name], storyboard, args.grain) for name in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
