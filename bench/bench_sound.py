"""Voices, music, upscales and lip-syncs: what 1080p delivery costs, and how long a build of
the new nodes takes against its graph's critical path.

1. Cost, from the catalogue's prices: N shots of 10 s delivered at 1080p as 3 takes at 768p
   plus 1 upscale of the picked take (Hailuo 2.3 renders 10 s only at 768p), against the
   nearest delivery Hailuo can render natively: 3 takes of 6 s at 1080p. Printed as ratios.
2. Time: the bundled espresso storyboard (2 languages: voices, a bed, an upscaled 10 s shot,
   a lip-synced shot) built through the real client against the local server, every task
   taking `--latency` seconds (60 by default, as long as a short real render), against the
   critical path of its graph (the longest chain of renders, each one task long).

    python bench/bench_sound.py [--shots 10] [--latency 60]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._util import run_measured  # noqa: E402
from pipeline import models  # noqa: E402

KEY = "sk-bench-sound"


def delivery_costs(shots: int) -> None:
    hailuo = models.lookup("minimax:4@1")
    upscaler = models.tool(models.default_tool("upscale"))
    assert hailuo is not None and upscaler is not None
    take_10s_768 = hailuo.price(1366, 768, 10) or 0.0
    take_6s_768 = hailuo.price(1366, 768, 6) or 0.0
    take_6s_1080 = hailuo.price(1920, 1080, 6) or 0.0
    upscale_10s = upscaler.cost(seconds=10, target="1080p") or 0.0
    upscale_6s = upscaler.cost(seconds=6, target="1080p") or 0.0
    upscaled_10 = shots * (3 * take_10s_768 + upscale_10s)
    upscaled_6 = shots * (3 * take_6s_768 + upscale_6s)
    native_6 = shots * 3 * take_6s_1080
    print(
        f"delivering {shots} shots at 1080p, 3 takes each (catalogue of {models.catalogue().read})"
    )
    print(
        f"  10 s: 3 takes at 768p + 1 upscale  ${upscaled_10:8.2f}   "
        "(10 s at 1080p: Hailuo 2.3 cannot render it)"
    )
    print(f"   6 s: 3 takes at 768p + 1 upscale  ${upscaled_6:8.2f}")
    print(f"   6 s: 3 takes at 1080p             ${native_6:8.2f}")
    print(f"  ratio 6 s upscaled / 6 s native:   {upscaled_6 / native_6:.2f}x")
    print(
        f"  ratio 10 s upscaled / 6 s native:  {upscaled_10 / native_6:.2f}x "
        f"(for {10 / 6:.2f}x the seconds)"
    )
    print(f"  the upscaler is inferred: {upscaler.inferred}")


def critical_path_build(latency: float) -> None:
    from pipeline.testing.runware_server import RunwareServer

    work = Path(tempfile.mkdtemp(prefix="bench-sound-"))
    try:
        for folder in ("specs", "templates"):
            shutil.copytree(REPO / folder, work / folder)
        for lock in (work / "specs").glob("*.lock"):
            lock.unlink()
        (work / ".storyboard").mkdir()
        with RunwareServer(latency=latency, api_keys={KEY}) as server:
            env = {
                **os.environ,
                "RUNWARE_BASE_URL": server.url,
                "RUNWARE_API_KEY": KEY,
                "RUNWARE_POLL_SECONDS": "0.5",
                "PYTHONPATH": str(REPO),
            }
            command = [sys.executable, "-m", "pipeline", "build", "specs/espresso.yaml", "-j", "8"]
            started = time.perf_counter()
            measured = run_measured(command, work, env)
            wall = time.perf_counter() - started
            stats = server.stats()
        # The longest chain: a clip (or a voice), then its lip-sync (or its upscale).
        depth = 2
        print(
            f"espresso build, tasks of {latency:g} s: {stats['accepted']} renders, "
            f"${stats['billed_cost']:.2f} billed, {wall:.1f} s wall ({measured.cpu:.1f} s CPU)"
        )
        critical = depth * latency
        print(f"  critical path: {depth} renders deep = {critical:.0f} s")
        print(f"  ratio wall / critical path: {wall / critical:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--latency", type=float, default=60.0)
    args = parser.parse_args()
    delivery_costs(args.shots)
    critical_path_build(args.latency)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
