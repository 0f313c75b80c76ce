"""Benchmark joining clips, in one run on the same clips.

1. 30 clips of 6 s at 1080p, joined by stream copy: against `cat` of the same bytes (the disk
   floor; target within 2 times) and MoviePy's concatenate_videoclips with write_videofile's
   defaults (target 100 times faster).
2. 10 clips, 768p and 1080p mixed, 0.5 s crossfades, one ffmpeg graph: against MoviePy doing
   the same (target 4 times faster). Both encode with libx264 at the same preset and quality.
3. A 30 s 1080p film with three text layers and a logo, then the same film in 4 formats
   (16:9, 9:16, 1:1, 4:5): against MoviePy doing the same (TextClip, ImageClip and
   CompositeVideoClip, the same x264 preset; target 5 times faster), and against one
   hand-written ffmpeg command per film (the encoder's own time: target within 1.15x).

The copy clips carry heavy film grain so that they weigh what a 1080p Hailuo clip weighs
(8 Mb/s). The crossfade clips carry light grain by default, like generated video: heavy
grain turns the comparison into one of x264 against itself (`--mixed-grain 12` shows it).

    pip install -e '.[bench]'      # moviepy
    python bench/bench_join.py [--presets veryfast ultrafast] [--mixed-grain N] [--skip-moviepy]
                               [--only titled]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipeline import media
from pipeline import spec as spec_module
from pipeline.assemble import ClipInput, assemble
from pipeline.expand import expand
from pipeline.nodes import Sequence

BITRATE = "8M"  # about what a 1080p Hailuo clip carries
HEAVY_GRAIN = 12  # ffmpeg `noise` strength that fills 8 Mb/s
LIGHT_GRAIN = 3


def make_clip(path: Path, width: int, height: int, pattern: str, grain: int) -> None:
    media.run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"{pattern}=s={width}x{height}:r=25:d=6",
            "-vf",
            f"noise=alls={grain}:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            BITRATE,
            "-pix_fmt",
            "yuv420p",
            "-video_track_timescale",
            "12800",
            "-f",
            "mp4",
            str(path),
        ],
        "make a benchmark clip",
    )


def make_clips(folder: Path, mixed_grain: int) -> tuple[list[Path], list[Path]]:
    masters = {}
    for name, (width, height, pattern, grain) in {
        "a1080": (1920, 1080, "testsrc2", HEAVY_GRAIN),
        "b1080": (1920, 1080, "smptehdbars", HEAVY_GRAIN),
        "a1080m": (1920, 1080, "testsrc2", mixed_grain),
        "b1080m": (1920, 1080, "smptehdbars", mixed_grain),
        "a768m": (1366, 768, "testsrc2", mixed_grain),
        "b768m": (1366, 768, "smptehdbars", mixed_grain),
    }.items():
        masters[name] = folder / f"master-{name}.mp4"
        make_clip(masters[name], width, height, pattern, grain)
    uniform = []
    for index in range(30):
        copy = folder / f"uniform-{index:02d}.mp4"
        shutil.copyfile(masters["a1080" if index % 2 else "b1080"], copy)
        uniform.append(copy)
    mixed = []
    for index in range(10):
        name = ("a" if index % 3 else "b") + ("1080" if index % 2 else "768") + "m"
        copy = folder / f"mixed-{index:02d}.mp4"
        shutil.copyfile(masters[name], copy)
        mixed.append(copy)
    return uniform, mixed


def sequence_for(folder: Path, files: list[Path], transition: str, preset: str) -> Sequence:
    """The Sequence a storyboard of these clips expands to (sizes as the files are)."""
    lines = ["version: 1", "name: bench", "shots:"]
    for index, path in enumerate(files):
        info = media.probe(path)
        size = "1080p" if info.height == 1080 else "768p"
        lines.append(f"  - {{id: c{index}, prompt: 'clip {index}', resolution: {size}}}")
    ids = ", ".join(f"c{i}" for i in range(len(files)))
    lines.append(f"sequences:\n  - id: s\n    shots: [{ids}]\n    preset: {preset}")
    if transition != "cut":
        lines.append(f"    transition: {{type: {transition}, duration: 0.5}}")
    spec_path = folder / f"bench-{transition}.yaml"
    spec_path.write_text("\n".join(lines) + "\n")
    return expand(spec_module.load(spec_path), "preview").sequences[0]


def join(
    sequence: Sequence, files: list[Path], output: Path, fresh: bool = False
) -> tuple[float, str]:
    clips = [
        ClipInput(path, media.probe(path), 0.0, use.end, use.shot.label)
        for path, use in zip(files, sequence.uses, strict=True)
    ]
    if fresh:
        output.unlink(missing_ok=True)
    started = time.perf_counter()
    made = assemble(sequence, clips, output)
    return time.perf_counter() - started, made.method


def cat(files: list[Path], output: Path, fresh: bool) -> float:
    if fresh:
        output.unlink(missing_ok=True)
    started = time.perf_counter()
    with open(output, "wb") as sink:
        subprocess.run(["cat", *map(str, files)], stdout=sink, check=True)
    return time.perf_counter() - started


def moviepy_join(files: list[Path], output: Path, crossfade: float, preset: str, crf: int) -> float:
    from moviepy import VideoFileClip, concatenate_videoclips, vfx

    started = time.perf_counter()
    clips = [VideoFileClip(str(path), audio=False) for path in files]
    if crossfade:
        clips = [c.resized(height=1080) for c in clips]
        clips = [clips[0]] + [c.with_effects([vfx.CrossFadeIn(crossfade)]) for c in clips[1:]]
        final = concatenate_videoclips(clips, method="compose", padding=-crossfade)
    else:
        final = concatenate_videoclips(clips)
    final.write_videofile(
        str(output),
        codec="libx264",
        preset=preset,
        fps=25,
        audio=False,
        logger=None,
        ffmpeg_params=["-crf", str(crf), "-pix_fmt", "yuv420p"],
    )
    for clip in clips:
        clip.close()
    return time.perf_counter() - started


FORMATS = {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080), "4:5": (1080, 1350)}
TITLES = (  # text, start, end, position, size (of the height), box
    ("AERO ONE", 0.0, 3.0, "top", 0.09, None),
    ("Lighter than the morning", 5.0, 15.0, "bottom-left", 0.05, "black@0.5"),
    ("Available now", 25.0, 30.0, "center", 0.08, "black@0.5"),
)


def titled_storyboard(folder: Path, files: list[Path], preset: str) -> Path:
    """The titled film as a storyboard: five 6 s clips, cuts, three text layers, a logo,
    four formats."""
    media.run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=0xE04020:s=400x160", "-frames:v", "1",
         str(folder / "logo.png")],
        "draw a logo",
    )  # fmt: skip
    lines = ["version: 1", "name: titled", "shots:"]
    lines += [f"  - {{id: c{i}, prompt: 'clip {i}', resolution: 1080p}}" for i in range(len(files))]
    lines += [
        "sequences:",
        "  - id: ad",
        f"    shots: [{', '.join(f'c{i}' for i in range(len(files)))}]",
        f"    preset: {preset}",
        f"    formats: [{', '.join(FORMATS)}]",
        "    logo: {image: logo.png, position: top-right, size: 0.08, opacity: 0.8}",
        "    text:",
    ]
    for text, start, end, position, size, box in TITLES:
        boxed = f", box: '{box}'" if box else ""
        lines.append(
            f"      - {{text: '{text}', start: {start}, end: {end}, position: {position}, "
            f"size: {size}, fade: 0{boxed}}}"
        )
    spec_path = folder / "titled.yaml"
    spec_path.write_text("\n".join(lines) + "\n")
    return spec_path


def titled_join(sequences: list[Sequence], files: list[Path], folder: Path) -> float:
    started = time.perf_counter()
    for sequence in sequences:
        join(sequence, files, folder / f"titled-{sequence.width}x{sequence.height}.mp4", True)
    return time.perf_counter() - started


def hand_written(sequences: list[Sequence], files: list[Path], folder: Path, preset: str) -> float:
    """One ffmpeg command per film, written by hand: concat, crop, the same three drawtext
    and the logo overlay, the same encoder settings."""
    from pipeline.typeface import BUNDLED

    started = time.perf_counter()
    for sequence in sequences:
        width, height = sequence.width, sequence.height
        inputs = [arg for path in files for arg in ("-i", str(path))]
        chain = "".join(f"[{i}:v]" for i in range(len(files)))
        graph = (
            f"{chain}concat=n={len(files)}:v=1:a=0,"
            f"scale={width}:{height}:force_original_aspect_ratio=increase,"
            f"crop={width}:{height},setsar=1[v];"
            f"[{len(files)}:v]scale=-2:{round(0.08 * height / 2) * 2},format=rgba,"
            f"colorchannelmixer=aa=0.8[logo];[v][logo]overlay=W-w-0.05*W:0.05*H[o]"
        )
        last = "o"
        places = {
            "top": ("(w-text_w)/2", "0.05*h"),
            "bottom-left": ("0.05*w", "h-text_h-0.05*h"),
            "center": ("(w-text_w)/2", "(h-text_h)/2"),
        }
        for number, (text, start, end, position, size, box) in enumerate(TITLES):
            pixels = round(size * height)
            boxed = f":box=1:boxcolor={box}:boxborderw={pixels // 3}" if box else ""
            x, y = places[position]
            graph += (
                f";[{last}]drawtext=fontfile={BUNDLED}:text='{text}':fontsize={pixels}:"
                f"fontcolor=white:x={x}:y={y}:shadowx=2:shadowy=2:shadowcolor=black@0.6:"
                f"enable='between(t,{start},{end})'{boxed}[t{number}]"
            )
            last = f"t{number}"
        command = [
            media.ffmpeg_binary(), "-y", "-loglevel", "error", *inputs,
            "-i", str(folder / "logo.png"),
            "-filter_complex", graph, "-map", f"[{last}]",
            "-c:v", "libx264", "-preset", preset, "-crf", "20", "-pix_fmt", "yuv420p",
            "-r", "25", "-movflags", "+faststart", str(folder / f"hand-{width}x{height}.mp4"),
        ]  # fmt: skip
        subprocess.run(command, check=True)
    return time.perf_counter() - started


def moviepy_titled(files: list[Path], folder: Path, formats: list[str], preset: str) -> float:
    from moviepy import (
        CompositeVideoClip,
        ImageClip,
        TextClip,
        VideoFileClip,
        concatenate_videoclips,
        vfx,
    )

    from pipeline.typeface import BUNDLED

    positions = {"top": ("center", "top"), "bottom-left": ("left", "bottom"), "center": "center"}
    started = time.perf_counter()
    for name in formats:
        width, height = FORMATS[name]
        clips = [VideoFileClip(str(path), audio=False) for path in files]
        film = concatenate_videoclips(clips)
        scale = max(width / film.w, height / film.h)
        film = film.resized(scale).with_effects(
            [vfx.Crop(x_center=film.w * scale / 2, y_center=film.h * scale / 2,
                      width=width, height=height)]
        )  # fmt: skip
        layers = [film]
        logo = ImageClip(str(folder / "logo.png")).resized(height=round(0.08 * height))
        layers.append(
            logo.with_opacity(0.8)
            .with_duration(film.duration)
            .with_position((width - logo.w - 0.05 * width, 0.05 * height))
        )
        for text, start, end, position, size, box in TITLES:
            layers.append(
                TextClip(
                    font=str(BUNDLED),
                    text=text,
                    font_size=round(size * height),
                    color="white",
                    bg_color=(0, 0, 0) if box else None,
                )
                .with_start(start)
                .with_duration(end - start)
                .with_position(positions[position])
            )
        CompositeVideoClip(layers, size=(width, height)).write_videofile(
            str(folder / f"moviepy-titled-{name.replace(':', 'x')}.mp4"),
            codec="libx264",
            preset=preset,
            fps=25,
            audio=False,
            logger=None,
            ffmpeg_params=["-crf", "20", "-pix_fmt", "yuv420p"],
        )
        for clip in clips:
            clip.close()
    return time.perf_counter() - started


def titled(folder: Path, uniform: list[Path], preset: str, skip_moviepy: bool) -> None:
    files = uniform[:5]
    spec_path = titled_storyboard(folder, files, preset)
    films = expand(spec_module.load(spec_path), "preview").sequences
    one, four = [films[0]], list(films)
    print(f"30 s 1080p film, three text layers and a logo, x264 preset {preset}, crf 20:")
    for what, sequences, names in (
        ("one film (16:9)", one, ["16:9"]),
        ("4 formats", four, list(FORMATS)),
    ):
        ours = titled_join(sequences, files, folder)
        floor = hand_written(sequences, files, folder, preset)
        ratio = ours / floor
        line = (
            f"  {what}: storyboard {ours:.2f} s, hand-written ffmpeg {floor:.2f} s: "
            f"{ratio:.2f}x (target within 1.15x: {'ok' if ratio <= 1.15 else 'MISSED'})"
        )
        if not skip_moviepy:
            theirs = in_own_process(moviepy_titled, files, folder, names, preset)
            line += (
                f"; MoviePy {theirs:.1f} s: {theirs / ours:.1f}x slower "
                f"(target 5x: {'ok' if theirs / ours >= 5 else 'MISSED'})"
            )
        print(line)


def in_own_process(function, *args):
    """Run a peer in a fresh process: this one has tuned its allocator as `storyboard` does,
    which would change the peer's speed (MoviePy allocates a 6 MB array per frame)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def medians(first, second, repeat: int) -> tuple[float, float]:
    """Median seconds of two timed functions, run in turns so that both meet the same disk."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for function, runs in zip((first, second), times, strict=True):
            runs.append(function())
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["veryfast", "ultrafast"],
        help="x264 presets to compare the crossfade join at (both tools use the same)",
    )
    parser.add_argument(
        "--mixed-grain",
        type=int,
        default=LIGHT_GRAIN,
        help=f"film grain of the crossfade clips (default {LIGHT_GRAIN}; copy clips: {HEAVY_GRAIN})",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-moviepy", action="store_true")
    parser.add_argument("--only", choices=["titled"], help="run only this part")
    args = parser.parse_args()
    media.keep_freed_memory()  # as the `storyboard` command sets up its process
    with tempfile.TemporaryDirectory(prefix="bench-join-") as temp:
        folder = Path(temp)
        uniform, mixed = make_clips(folder, args.mixed_grain)
        for preset in args.presets:
            titled(folder, uniform, preset, args.skip_moviepy)
        if args.only == "titled":
            return
        megabytes = sum(p.stat().st_size for p in uniform) / 1e6
        print(f"30 clips x 6 s 1080p ({megabytes:.0f} MB), stream copy:")
        copy_sequence = sequence_for(folder, uniform, "cut", args.presets[0])
        method = join(copy_sequence, uniform, folder / "copy.mp4")[1]
        # A first build writes a new file; a rebuild replaces the film, and the file system
        # then frees the old one's 200 MB of blocks too. cat is measured the same way.
        joined = {}
        for fresh, what in ((True, "into a new file"), (False, "replacing the last output")):
            joined[fresh], floor = medians(
                lambda fresh=fresh: join(copy_sequence, uniform, folder / "copy.mp4", fresh)[0],
                lambda fresh=fresh: cat(uniform, folder / "cat.bin", fresh),
                args.repeat,
            )
            ratio = joined[fresh] / floor
            print(
                f"  {what}: storyboard ({method}) {joined[fresh]:.3f} s, cat {floor:.3f} s, "
                f"storyboard/cat = {ratio:.2f}x (target within 2x: {'ok' if ratio <= 2 else 'MISSED'})"
            )
        ours = joined[True]
        if not args.skip_moviepy:
            # MoviePy as a user calls it: concatenate_videoclips, then write_videofile with its
            # defaults (libx264, preset medium); it cannot join without re-encoding.
            theirs = in_own_process(
                moviepy_join, uniform, folder / "moviepy-copy.mp4", 0, "medium", 20
            )
            print(
                f"  MoviePy concatenate_videoclips (re-encodes, preset medium): {theirs:.1f} s   "
                f"{theirs / ours:.0f}x slower (target 100x: {'ok' if theirs / ours >= 100 else 'MISSED'})"
            )
        for preset in args.presets:
            print(
                f"10 clips 768p/1080p mixed (grain {args.mixed_grain}), 0.5 s crossfades, "
                f"x264 preset {preset}, crf 20:"
            )
            mixed_sequence = sequence_for(folder, mixed, "crossfade", preset)
            ours, method = join(mixed_sequence, mixed, folder / "mixed.mp4")
            length = media.probe(folder / "mixed.mp4").duration
            print(f"  storyboard ({method}): {ours:.2f} s for {length:.2f} s of film")
            if not args.skip_moviepy:
                theirs = in_own_process(
                    moviepy_join, mixed, folder / "moviepy-mixed.mp4", 0.5, preset, 20
                )
                print(
                    f"  MoviePy compose + CrossFadeIn: {theirs:.2f} s   {theirs / ours:.1f}x slower "
                    f"(target 4x: {'ok' if theirs / ours >= 4 else 'MISSED'})"
                )


if __name__ == "__main__":
    sys.exit(main())
