"""Benchmark what the quality check (qc.py) adds to a paid build, in one run.

A paid build of N shots (768p, 6 s, as heavy as real renders: film grain at 8 Mbit/s for
1080p) through the real client against the local Runware server, joined into two films: one
by stream copy (cuts), one re-encoded (0.5 s crossfades and a text layer, x264 at the
storyboard's default preset). The build's own calls are timed as they happen: each film's
join, and its check (its takes' findings where it uses them, its sound where a voice
speaks, its length: no new decode of its picture). Then each clip the build rendered is
checked again, in turns, as the client checks a download: decoded alone, and decoded and
measured (the quality check's figures and findings). Times are CPU seconds (of ffmpeg too),
which a machine loaded by others does not change; the join's wall time is printed beside.
Printed:

- per paid clip: the check's time (decoded and measured, minus decoded alone), in ms, and
  as a share of the decode the client makes anyway;
- per film: the join, the film's check (in the film step, after the join) and its share of
  the join (target, issue 33: with loudness, measured apart, at most 15% over the join
  alone); and, for scale, its clips' measuring (in the render step, while the client checks
  each download) against the same join.

    python bench/bench_finish.py [--shots 10] [--grain 12] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import media, qc
from pipeline.api import Session
from pipeline.cache import Cache
from pipeline.measure import Watch
from pipeline.nodes import Output
from pipeline.progress import QUIET, PlainReporter
from pipeline.render import RendererOptions
from pipeline.request import BuildOutput
from pipeline.testing.runware_server import RunwareServer

TARGET = 0.15  # loudness and the check together, over the join alone
KEY = "bench-key"


def storyboard(shots: int) -> str:
    lines = ["version: 1", "name: finish", "defaults: {resolution: 768p, duration: 6}", "shots:"]
    ids = [f"s{index}" for index in range(shots)]
    lines += [f"  - {{id: {i}, prompt: 'shot {i} of the finishing run, at dusk'}}" for i in ids]
    listed = ", ".join(ids)
    lines += [
        "sequences:",
        f"  - {{id: cuts, shots: [{listed}]}}",
        f"  - id: fades\n    shots: [{listed}]\n    transition: {{type: crossfade, duration: 0.5}}",
        "    text: [{text: Finished, start: 1, end: 4}]",
    ]
    return "\n".join(lines) + "\n"


def clock() -> tuple[float, float]:
    """Wall seconds, and CPU seconds of this process and its children (ffmpeg): CPU time
    says what the work costs on a machine that others load too."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time() + children.ru_utime + children.ru_stime


class Timer:
    """Wraps a function of a module so that each call's wall and CPU seconds are kept, by
    label."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[tuple[float, float]]] = {}

    def wrap(self, module: Any, name: str, label: Callable[..., str | None]) -> None:
        original = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = clock()
            try:
                return original(*args, **kwargs)
            finally:
                said = label(*args, **kwargs)
                if said is not None:
                    now = clock()
                    self.seconds.setdefault(said, []).append((now[0] - wall, now[1] - cpu))

        setattr(module, name, timed)

    def total(self, label: str) -> tuple[float, float]:
        calls = self.seconds[label]
        return sum(wall for wall, _ in calls), sum(cpu for _, cpu in calls)


def paid_build(folder: Path, shots: int, grain: int) -> tuple[Path, Timer]:
    """The build, its joins and film checks timed: the storyboard's path, and the timer."""
    import pipeline.run.films as film_step

    spec = folder / "specs" / "finish.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(storyboard(shots))
    (folder / ".git").mkdir()  # the project's root
    timer = Timer()
    timer.wrap(film_step, "assemble", lambda recipe, clips, files, output, name: f"join {name}")

    timer.wrap(film_step, "_quality", lambda outcome, cache, note: f"check {outcome.sequence.name}")
    output = BuildOutput(
        info=lambda message: None,
        warn=lambda message: print(message, file=sys.stderr),
        progress=lambda outlook: PlainReporter(outlook, QUIET),
    )
    with tempfile.TemporaryDirectory() as clips:
        served = RunwareServer(latency=0.5, api_keys={KEY}, clip_dir=Path(clips), clip_noise=grain)
        with served as server:
            options = RendererOptions(api_key=KEY, base_url=server.url, poll_seconds=0.2)
            summary = Session(spec).build(output, renderer=options)
    if summary.exit_code != 0:
        raise SystemExit(f"the build failed: {summary.to_json()}")
    return spec, timer


def clip_checks(spec: Path, repeat: int) -> tuple[float, float, int]:
    """Median CPU seconds of a paid clip's check by the client, decoded alone and decoded and
    measured (with the findings made), in turns; and how many clips."""
    cache = Cache(spec.parent.parent / ".storyboard")
    records = [r for r in cache.clips.records() if r.renderer == "runware"]
    loaded = Session(spec).load()
    renders = {row.shot.key: row.shot for row in loaded.plan.rows}
    loaded.cache.close()
    plain: list[float] = []
    measured: list[float] = []
    for _ in range(repeat):
        for record in records:
            path = cache.clips.path(record.key)
            started = time.process_time()
            media.check_render(path, Output.VIDEO)
            plain.append(time.process_time() - started)
            started = time.process_time()
            info, _ = media.check_render(path, Output.VIDEO, watch=Watch(picture=True))
            qc.of_render(renders[record.key], info)
            measured.append(time.process_time() - started)
    cache.close()
    return statistics.median(plain), statistics.median(measured), len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--grain", type=int, default=12, help="film grain of the clips (12: real)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    media.keep_freed_memory()
    with tempfile.TemporaryDirectory(prefix="bench-finish-") as folder:
        started = time.perf_counter()
        spec, timer = paid_build(Path(folder), args.shots, args.grain)
        print(
            f"paid build of {args.shots} shots and 2 films: {time.perf_counter() - started:.1f} s"
        )
        plain, measured, clips = clip_checks(spec, args.repeat)
    added = measured - plain
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; times are CPU time")
    print(
        f"per paid clip (768p, 6 s, grain {args.grain}, {clips} clips x {args.repeat}): decoded "
        f"{plain * 1000:.0f} ms, decoded and measured {measured * 1000:.0f} ms: the check adds "
        f"{added * 1000:.1f} ms ({added / plain:.1%} of the decode the client makes anyway)"
    )
    for film, how in (("cuts", "stream copy"), ("fades", "re-encoded")):
        join_wall, join = timer.total(f"join {film}")
        _, check = timer.total(f"check {film}")
        verdict = "ok" if check <= TARGET * join else "over"
        clips_cost = args.shots * added
        print(
            f"film {film} ({how}): join {join:.2f} s ({join_wall:.2f} s wall); the film's check "
            f"{check * 1000:.1f} ms = {check / join:.2%} of the join (target with loudness: "
            f"{TARGET:.0%}): {verdict}\n  its {args.shots} clips' measuring, in the render "
            f"step: {clips_cost:.2f} s = {clips_cost / join:.1%} of this join"
        )


if __name__ == "__main__":
    main()
