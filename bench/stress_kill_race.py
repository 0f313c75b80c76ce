"""Stress: two builds of one storyboard on one cache, the one holding the key locks SIGKILLed
while its tasks run; the survivor must collect them, never pay for them again.

Each run starts a local Runware server (4 s tasks), two `storyboard build` processes at once,
kills the lock holder after 2.5 s, and counts what the server billed per request. Target
(issue 10): every shot billed once, in every run.

    python bench/stress_kill_race.py [--runs 5] [--shots 6] [--latency 4] [--kill-after 2.5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from pipeline.testing.kill_race import race
from pipeline.testing.runware_server import RunwareServer

KEY = "sk-stress-local"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shots", type=int, default=6)
    parser.add_argument("--latency", type=float, default=4.0)
    parser.add_argument("--kill-after", type=float, default=2.5)
    args = parser.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="stress-race-") as temp:
        for run in range(1, args.runs + 1):
            with RunwareServer(latency=args.latency, api_keys={KEY}) as server:
                outcome = race(
                    server,
                    Path(temp) / f"run-{run}",
                    KEY,
                    shots=args.shots,
                    latency=args.latency,
                    kill_after=args.kill_after,
                    tag=f"run {run}",
                )
            once = outcome.billed_per_request == [1] * args.shots
            whole = outcome.survivor_code == 0 and outcome.clips == args.shots
            failures += not (once and whole)
            print(
                f"run {run}: billed per request {outcome.billed_per_request}, "
                f"{outcome.accepted} tasks accepted, survivor exit {outcome.survivor_code}, "
                f"{outcome.clips} clips, {outcome.journal_left} left journaled: "
                + ("ok" if once and whole else "FAILED"),
                flush=True,
            )
            if outcome.survivor_code != 0:
                print(outcome.survivor_err, file=sys.stderr)
    print(
        f"{args.runs - failures} of {args.runs} runs billed every shot once "
        f"(target: all): {'ok' if not failures else 'MISSED'}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
