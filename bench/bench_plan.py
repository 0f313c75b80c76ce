"""Benchmark `storyboard plan --why --json` on generated storyboards, against `snakemake -n`.

Targets (issue 2): 1,000 shots under 0.35 s, 10,000 under 2 s, under 250 MB; and (issue 22)
at least 4 times faster than snakemake's dry run of an equivalent Snakefile (one rule
instance per shot writing a file, one join rule instance per sequence) at 1,000 shots, at
least 5 times at 10,000, the two timed in turns in the same run. With reasons on (issue 12), and a lock
beside the storyboard whose every prompt differs by a word: each shot is "changed", with a
word-level diff of its prompt.

    pip install -e '.[bench]'      # snakemake
    python bench/bench_plan.py [--sizes 1000 10000] [--repeat 5] [--against REV]

`--against REV` also plans each storyboard with the code of a git revision (exported with
`git archive`, run by this Python), in turns with this tree's, and prints the ratio: a
change must leave `plan` no slower than the commit before it (issue 21). With
`--instructions`, each is also run once under valgrind's callgrind, whose count of
instructions is the same from run to run whatever else the machine does: the ratio of the
counts says "no slower" where wall times on a shared machine differ by 10% between runs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import find_tool, run_measured

VARIANTS = 10  # the matrix: 10 looks; every shot uses it
SHOTS_PER_SEQUENCE = 10
TARGETS = {1000: 0.35, 10000: 2.0}
RATIO_TARGETS = {1000: 4.0, 10000: 5.0}  # snakemake -n time / ours
MEMORY_LIMIT_MB = 250


def make_storyboard(folder: Path, total: int) -> Path:
    """`total` renders: total/10 shot entries times a 10-value matrix, with sequences."""
    entries = total // VARIANTS
    templates = folder / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (folder / ".storyboard").mkdir(exist_ok=True)  # the project: its templates are inside
    (templates / "_parts.j2").write_text(
        "{% macro look(l) %}{{ l }} light, cinematic realism, film grain{% endmacro %}\n"
    )
    for index in range(5):
        (templates / f"t{index}.j2").write_text(
            '{% import "_parts.j2" as p %}\n'
            f"Scene {index}: {{{{ subject }}}} crosses the frame, shot {{{{ number }}}},\n"
            "{{ p.look(look) }}.\n"
        )
    looks = ", ".join(f"look {i}" for i in range(VARIANTS))
    lines = [
        "version: 1",
        f"name: bench-{total}",
        "defaults: {model: 'minimax:4@1', resolution: 768p, duration: 6}",
        f"matrix:\n  look: [{looks}]",
        "shots:",
    ]
    for index in range(entries):
        lines.append(f"  - id: s{index}")
        if index % 2:
            lines.append(f"    template: t{index % 5}.j2")
        else:
            lines.append("    prompt: '{{ subject }} in {{ look }} light, take note {{ number }}'")
        lines.append(f"    vars: {{subject: 'subject {index}', number: {index}}}")
        if index % 3 == 0:
            lines.append("    duration: 10")
    lines.append("sequences:")
    for start in range(0, entries, SHOTS_PER_SEQUENCE):
        ids = ", ".join(f"s{i}" for i in range(start, min(start + SHOTS_PER_SEQUENCE, entries)))
        lines.append(f"  - id: q{start // SHOTS_PER_SEQUENCE}\n    shots: [{ids}]")
    path = folder / "specs" / f"bench-{total}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    write_lock_of_an_earlier_version(path)
    return path


def write_lock_of_an_earlier_version(spec_path: Path) -> None:
    """A lock as an earlier version of the storyboard left it: every prompt (inline, or from
    a template) one word apart, so every shot is "changed" with a word-level diff."""
    from pipeline import lock, spec
    from pipeline.expand import expand

    def earlier(text: str) -> str:
        return text.replace("crosses the frame", "walks the frame").replace("note", "care")

    templates = sorted((spec_path.parent.parent / "templates").glob("t*.j2"))
    now = {path: path.read_text() for path in templates}
    before = spec_path.with_name("earlier.yaml")
    try:
        for path, text in now.items():
            path.write_text(earlier(text))
        before.write_text(earlier(spec_path.read_text()))
        shots = {
            shot.key: lock.LockedShot(
                shot=shot.label,
                variants=[shot.variant],
                take=shot.take,
                renderer="runware",
                sha256="0" * 64,
                duration=float(shot.duration),
                request=shot.request,
            )
            for shot in expand(spec.load(before), "runware").shots
        }
    finally:
        before.unlink(missing_ok=True)
        for path, text in now.items():
            path.write_text(text)
    written = lock.Lock(storyboard=spec_path.stem, renderer="runware", shots=shots)
    lock.write(lock.lock_path(spec_path, "runware"), written)


def make_snakefile(folder: Path, total: int) -> Path:
    """The same graph for snakemake: a rule instance per shot, a join per sequence."""
    entries = total // VARIANTS
    sequences = {}
    for variant in range(VARIANTS):
        for start in range(0, entries, SHOTS_PER_SEQUENCE):
            members = range(start, min(start + SHOTS_PER_SEQUENCE, entries))
            sequences[f"q{start // SHOTS_PER_SEQUENCE}--look-{variant}"] = [
                f"s{i}--look-{variant}" for i in members
            ]
    text = f"""
SEQUENCES = {sequences!r}
PROMPTS = {{shot: "subject " + shot + " in light" for shots in SEQUENCES.values() for shot in shots}}

rule all:
    input: expand("build/{{seq}}.mp4", seq=SEQUENCES)

rule shot:
    output: "clips/{{shot}}.mp4"
    params: prompt=lambda w: PROMPTS[w.shot]
    shell: "echo '{{params.prompt}}' > {{output}}"

rule join:
    input: lambda w: expand("clips/{{shot}}.mp4", shot=SEQUENCES[w.seq])
    output: "build/{{seq}}.mp4"
    shell: "cat {{input}} > {{output}}"
"""
    path = folder / f"Snakefile-{total}"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--against", metavar="REV", help="also time the code of this revision")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="with --against: also count instructions under valgrind (slow, repeatable)",
    )
    args = parser.parse_args()
    snakemake = find_tool("snakemake", "pip install -e '.[bench]'")
    print(
        f"{'shots':>6} {'storyboard':>11} {'peak MB':>8} {'target':>7} {'snakemake -n':>13} {'ratio':>6}"
        + (f" {args.against:>12} {'this/it':>8}" if args.against else "")
    )
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as temp:
        folder = Path(temp)
        trees = {"this": Path(__file__).resolve().parent.parent}
        if args.against:
            trees[args.against] = export(args.against, folder / "against")
        for tree in trees.values():
            compiled(tree)
        for total in args.sizes:
            spec = make_storyboard(folder, total)
            plan = ["plan", str(spec), "--why", "--json", "--cache-dir", str(folder / "cache")]
            snakefile = make_snakefile(folder, total)
            dry_run = [snakemake, "-n", "-q", "--cores", "1", "-s", str(snakefile)]
            timed = in_turns(
                {name: (PLANNER + plan, env(tree)) for name, tree in trees.items()}
                | {"snakemake": (dry_run, dict(os.environ))},
                folder,
                args.repeat,
            )
            ours, memory = timed["this"]
            theirs, _ = timed["snakemake"]
            target = TARGETS.get(total)
            verdict = "" if target is None else ("ok" if ours < target else "MISSED")
            ratio_target = RATIO_TARGETS.get(total)
            if ratio_target is not None:
                met = theirs / ours >= ratio_target
                verdict += f", ratio {'ok' if met else 'MISSED'} (>= {ratio_target:g}x)"
            before = ""
            if args.against:
                then = timed[args.against][0]
                before = f" {then:>11.3f}s {ours / then:>7.2f}x"
                if args.instructions:
                    counts = {
                        name: instructions(PLANNER + plan, env(tree), folder)
                        for name, tree in trees.items()
                    }
                    ratio = counts["this"] / counts[args.against]
                    before += (
                        f"  instructions {counts['this'] / 1e9:.3f} G against "
                        f"{counts[args.against] / 1e9:.3f} G: {ratio:.3f}x"
                    )
            print(
                f"{total:>6} {ours:>10.3f}s {memory:>8.1f} {target or '-':>6}{'s' if target else ''}"
                f" {theirs:>12.3f}s {theirs / ours:>5.1f}x {verdict}"
                f"{'' if memory < MEMORY_LIMIT_MB else ' MEMORY OVER ' + str(MEMORY_LIMIT_MB)}"
                + before
            )
    print("ratio = snakemake -n time / storyboard plan time, timed in turns")
    if args.against:
        print(f"this/it = this tree's plan time / {args.against}'s (target: at most 1.0x)")


def instructions(command: list[str], environment: dict[str, str], cwd: Path) -> int:
    """The instructions one run of `command` executes, counted by callgrind."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        cwd=cwd,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind said no count:\n{done.stderr[-1000:]}")
    return int(found.group(1).replace(",", ""))


def export(revision: str, folder: Path) -> Path:
    """The `pipeline` package of a git revision, in `folder`."""
    folder.mkdir(parents=True)
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", revision, "pipeline"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def compiled(tree: Path) -> None:
    """Byte-compile the package of `tree`, as an install does: where PYTHONDONTWRITEBYTECODE
    is set, a tree nobody compiled would be compiled again on every run it is timed."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "pipeline")], check=True)


PLANNER = [sys.executable, "-m", "pipeline"]  # storyboard, from the package of PYTHONPATH


def env(tree: Path) -> dict[str, str]:
    """The environment in which PLANNER runs the package in `tree`."""
    return {**os.environ, "PYTHONPATH": str(tree)}


def in_turns(
    commands: dict[str, tuple[list[str], dict[str, str]]], cwd: Path, repeat: int
) -> dict[str, tuple[float, float]]:
    """Each command's median wall time and peak memory, run in turns (after a warm-up of
    each) so that a machine's drift weighs on all of them alike: the ratios of one run are
    measured side by side."""
    for command, environment in commands.values():
        run_measured(command, cwd, environment)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, (command, environment) in commands.items():
            measured = run_measured(command, cwd, environment)
            runs[name].append((measured.seconds, measured.memory))
    return {
        name: (statistics.median(r[0] for r in found), max(r[1] for r in found))
        for name, found in runs.items()
    }


if __name__ == "__main__":
    main()
