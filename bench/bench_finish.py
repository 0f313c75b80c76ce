"""Benchmark what delivery to spec adds to a paid build, in one run: the quality check
(qc.py) and loudness (two passes over the film's sound, assemble.py).

A paid build of N shots (768p, 6 s, as heavy as real renders: film grain at 8 Mbit/s for
1080p) through the real client against the local Runware server, joined into two films: one
by stream copy (cuts), one re-encoded (0.5 s crossfades, a text layer, a voice-over over a
music bed, x264 at the storyboard's default preset, its sound brought to -14 LUFS). The
build's own calls are timed as they happen: each film's join, and its check (its takes'
findings where it uses them, its sound where a voice speaks, its length: no new decode of
its picture). Then each clip the build rendered is checked again, in turns, as the client
checks a download: decoded alone, and decoded and measured (the quality check's figures and
findings); and the re-encoded film is joined again, in turns, as built (its sound mixed and
measured, levelled and encoded, measured again) and with its sound mixed and encoded once
(the join alone: no measure, no gain). Times are CPU seconds (of ffmpeg too), which a
machine loaded by others does not change; the join's wall time is printed beside. Printed:

- per paid clip: the check's time (decoded and measured, minus decoded alone), in ms, and
  as a share of the decode the client makes anyway;
- per film: the join, the film's check (in the film step, after the join) and its share of
  the join; and, for scale, its clips' measuring (in the render step, while the client
  checks each download) against the same join;
- the re-encoded film's loudness: its join with the two passes against the join alone, and
  with its check too (target, issue 33: at most 15% over the join alone).

    python bench/bench_finish.py [--shots 10] [--grain 12] [--repeat 5] [--joins 3]
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

import ffmpeg

from pipeline import assemble, media, qc
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
# A voice: a tone that rises and falls four times a second, as syllables do.
VOICE = "sine=frequency=190:duration=20,tremolo=f=4:d=0.9"


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
        "    audio: assets/bed.m4a\n    voice: assets/vo.m4a\n    voice_start: 2\n    loudness: -14",
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
        self.calls: dict[str, tuple[Any, ...]] = {}

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

    def keep(self, module: Any, name: str, film: str) -> None:
        """Keep the arguments of the call of `module.name` that makes `film`, to run it again."""
        original = getattr(module, name)

        def kept(*args: Any, **kwargs: Any) -> Any:
            if args[-1] == film:
                self.calls[film] = args
            return original(*args, **kwargs)

        setattr(module, name, kept)

    def total(self, label: str) -> tuple[float, float]:
        calls = self.seconds[label]
        return sum(wall for wall, _ in calls), sum(cpu for _, cpu in calls)


def paid_build(folder: Path, shots: int, grain: int) -> tuple[Path, Timer]:
    """The build, its joins and film checks timed: the storyboard's path, and the timer."""
    import pipeline.run.films as film_step

    spec = folder / "specs" / "finish.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(storyboard(shots))
    # A music bed as long as the film, and a voice of 20 s: two tones, AAC as delivered.
    for name, source in (("bed", "sine=frequency=110:duration=60"), ("vo", VOICE)):
        path = spec.parent / "assets" / f"{name}.m4a"
        path.parent.mkdir(exist_ok=True)
        media.run_ffmpeg(["-f", "lavfi", "-i", source, "-c:a", "aac", str(path)], "make a sound")
    (folder / ".git").mkdir()  # the project's root
    timer = Timer()
    timer.wrap(film_step, "assemble", lambda recipe, clips, files, output, name: f"join {name}")
    timer.keep(film_step, "assemble", "fades")

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


def _sound_once(sound: Any, folder: Path, recipe: Any, said: tuple[str, float]) -> Any:
    """The film's sound as the join alone makes it: mixed and encoded once (no measure, no
    gain, no check)."""
    name, total = said
    encoded = folder / "sound.m4a"
    out = ffmpeg.output(sound, str(encoded), f="mp4", **assemble._audio_encoding(recipe))
    args = out.get_args(overwrite_output=True)
    media.run_ffmpeg(args, f"mix the sound of sequence '{name}'", assemble.time_limit(total))
    return encoded, None


def joins(call: tuple[Any, ...], folder: Path, repeat: int) -> tuple[list[float], list[float]]:
    """CPU seconds of the film's join, in turns: as built (loudness in two passes) and the
    join alone (its sound mixed and encoded once)."""
    recipe, clips, files, _, name = call
    levelled = assemble._film_sound
    built: list[float] = []
    alone: list[float] = []
    for turn in range(repeat):
        for times, sound in ((built, levelled), (alone, _sound_once)):
            assemble._film_sound = sound  # type: ignore[assignment]
            started = clock()[1]
            assemble.assemble(recipe, clips, files, folder / f"{turn}.mp4", name)
            times.append(clock()[1] - started)
    assemble._film_sound = levelled  # type: ignore[assignment]
    return built, alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--grain", type=int, default=12, help="film grain of the clips (12: real)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--joins", type=int, default=3, help="joins of the film, each way")
    args = parser.parse_args()
    media.keep_freed_memory()
    with tempfile.TemporaryDirectory(prefix="bench-finish-") as folder:
        started = time.perf_counter()
        spec, timer = paid_build(Path(folder), args.shots, args.grain)
        print(
            f"paid build of {args.shots} shots and 2 films: {time.perf_counter() - started:.1f} s"
        )
        plain, measured, clips = clip_checks(spec, args.repeat)
        built, alone = joins(timer.calls["fades"], Path(folder) / "again", args.joins)
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
        clips_cost = args.shots * added
        print(
            f"film {film} ({how}): join {join:.2f} s ({join_wall:.2f} s wall); the film's check "
            f"{check * 1000:.1f} ms = {check / join:.2%} of the join\n  its {args.shots} clips' "
            f"measuring, in the render step: {clips_cost:.2f} s = {clips_cost / join:.1%} of "
            "this join"
        )
    with_loudness, join_alone = statistics.median(built), statistics.median(alone)
    _, check = timer.total("check fades")
    over = (with_loudness + check) / join_alone - 1
    verdict = "ok" if over <= TARGET else "over"
    print(
        f"film fades, joined {args.joins} times each way: the join alone {join_alone:.2f} s, "
        f"with loudness (two passes) {with_loudness:.2f} s = "
        f"{with_loudness / join_alone - 1:+.1%}; with its check too "
        f"{with_loudness + check:.2f} s = {over:+.1%} over the join alone (target "
        f"{TARGET:.0%}): {verdict}\n  each way: "
        + ", ".join(f"{b:.2f}/{a:.2f}" for b, a in zip(built, alone, strict=True))
    )


if __name__ == "__main__":
    main()
