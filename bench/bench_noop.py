"""Benchmark a no-op `storyboard build --preview` over 1,000 cached shots, and preview renders.

Targets (issue 3): the whole no-op process under 1 s; a 6 s 1366x768 preview clip under 1 s.

    python bench/bench_noop.py [--shots 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import find_tool, median_run
from bench_plan import make_storyboard

from pipeline import spec as spec_module
from pipeline.cache import Cache
from pipeline.expand import expand
from pipeline.hashing import sha256_file
from pipeline.nodes import unique_shots
from pipeline.render.preview import Card, draw

NOOP_TARGET = 1.0
PREVIEW_TARGET = 1.0


def fill_cache(spec: Path, cache_root: Path) -> int:
    """Every shot of `spec` cached, as hard links to one real preview clip per duration."""
    shots = unique_shots(expand(spec_module.load(spec), "preview").shots)
    cache = Cache(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    masters: dict[int, tuple[Path, str]] = {}
    for shot in shots:
        if shot.duration not in masters:
            master = cache_root / f"master-{shot.duration}.mp4"
            card = Card(shot.width, shot.height, shot.duration, shot.fps, "bench", "a clip", "ab")
            draw(card, master)
            masters[shot.duration] = (master, sha256_file(master))
        master, digest = masters[shot.duration]
        link = cache.tmp.path()
        os.link(master, link)
        cache.clips.put(
            shot.key,
            link,
            sha256=digest,
            duration=float(shot.duration),
            width=shot.width,
            height=shot.height,
            renderer="preview",
            label=shot.label,
        )
    cache.close()
    return len(shots)


def preview_times(folder: Path, count: int) -> tuple[float, float]:
    """Mean seconds per 6 s 1366x768 preview clip: a colour card, and a first-frame push-in."""
    image = Path(__file__).resolve().parent.parent / "specs" / "assets" / "luthier.jpg"
    results = []
    for with_image in (False, True):
        times = []
        for index in range(count):
            card = Card(
                1366,
                768,
                6,
                25,
                f"shot {index}",
                "a prompt " * 20,
                f"{index:06x}",
                image if with_image else None,
            )
            started = time.perf_counter()
            draw(card, folder / f"preview-{index}-{with_image}.mp4")
            times.append(time.perf_counter() - started)
        results.append(statistics.mean(times))
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--previews", type=int, default=5)
    args = parser.parse_args()
    storyboard = find_tool("storyboard", "pip install -e .")
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as temp:
        folder = Path(temp)
        spec = make_storyboard(folder, args.shots)
        cache = folder / ".storyboard"
        started = time.perf_counter()
        cached = fill_cache(spec, cache)
        command = [storyboard, "build", str(spec), "--preview", "-q"]
        median_run(command, folder, 1)  # the first build joins the sequences
        print(
            f"cached {cached} shots and joined the sequences in {time.perf_counter() - started:.1f} s"
        )
        seconds, memory = median_run(command, folder, args.repeat)
        verdict = "ok" if seconds < NOOP_TARGET else "MISSED"
        print(
            f"no-op build, {cached} cached shots: {seconds:.3f} s (target {NOOP_TARGET} s: "
            f"{seconds / NOOP_TARGET:.2f} of it, {verdict}), peak {memory:.0f} MB"
        )
        plain, pushed = preview_times(folder, args.previews)
        for what, value in (("colour card", plain), ("first-frame push-in", pushed)):
            verdict = "ok" if value < PREVIEW_TARGET else "MISSED"
            print(
                f"preview clip 6 s 1366x768, {what}: {value:.3f} s per clip "
                f"({value / PREVIEW_TARGET:.2f} of the {PREVIEW_TARGET} s target, {verdict})"
            )


if __name__ == "__main__":
    main()
