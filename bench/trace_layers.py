"""How a build request travels through the layers: the call edges between modules of
`pipeline` that a preview build of a bundled example takes, and which of them climb back up.

    python bench/trace_layers.py [--spec specs/ballroom.yaml] [--show]

A layer is a step of the flow in DESIGN.md, from the user down to the disk. A call from a
module to one of a higher layer is a climb back up (a callback, or a lower step asking a
higher one): a build that goes through each step once, top to bottom, has none. Counted
are distinct edges (caller function -> callee function), not calls, so that the figure
follows the code's shape rather than the storyboard's size; the build runs in a copy of
the project, with its own cache.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# From the user down: a module's layer is the first of these its name starts with.
LAYERS = (
    ("pipeline.cli", "pipeline.progress", "pipeline.report", "pipeline.status"),
    ("pipeline.api",),
    ("pipeline.build",),
    ("pipeline.preflight",),
    ("pipeline.run", "pipeline.cluster"),
    ("pipeline.plan",),
    ("pipeline.graph",),
    ("pipeline.state",),
    ("pipeline.lock", "pipeline.share"),
    ("pipeline.expand", "pipeline.cards"),
    ("pipeline.templates", "pipeline.subtitles", "pipeline.models"),
    ("pipeline.spec",),
    ("pipeline.render",),
    ("pipeline.assemble",),
    ("pipeline.cache", "pipeline.outputs"),
    ("pipeline.media", "pipeline.typeface"),
)
# What every layer may use: helpers, and the node types (values passed down the flow, whose
# properties are asked by everyone).
SHARED = (
    "pipeline.errors",
    "pipeline.hashing",
    "pipeline.project",
    "pipeline.retry",
    "pipeline.nodes",
)
# Where a build's words go: the printer is handed down, and a step that reports calls it.
OUTPUT = ("pipeline.cli", "pipeline.progress", "pipeline.report")


def layer(module: str) -> int | None:
    if module.startswith(SHARED):
        return None
    for rank, prefixes in enumerate(LAYERS):
        if module.startswith(prefixes):
            return rank
    return None


def _is_value_method(frame: FrameType) -> bool:
    """A method or property of a frozen dataclass: asking a value, not a step."""
    code = frame.f_code
    if not code.co_argcount or code.co_varnames[0] != "self":
        return False
    params = getattr(type(frame.f_locals.get("self")), "__dataclass_params__", None)
    return bool(params is not None and params.frozen)


# Whole steps that a build should take once: how many times each ran.
STEPS = ("expand", "make_plan", "film_facts", "Graph.of")


def trace(spec: str) -> tuple[set[tuple[str, str, str, str]], dict[str, int]]:
    """Distinct (caller module, caller function, callee module, callee function) edges, and
    how many times each of STEPS ran."""
    from pipeline.cli import main

    edges: set[tuple[str, str, str, str]] = set()
    runs = dict.fromkeys(STEPS, 0)

    def profile(frame: FrameType, event: str, _: Any) -> None:
        if event != "call":
            return
        callee = frame.f_globals.get("__name__", "")
        caller_frame = frame.f_back
        if caller_frame is None or not callee.startswith("pipeline"):
            return
        caller = caller_frame.f_globals.get("__name__", "")
        if frame.f_code.co_qualname in runs:
            runs[frame.f_code.co_qualname] += 1
        if _is_value_method(frame):
            return
        if caller.startswith("pipeline") and caller != callee:
            edges.add((caller, caller_frame.f_code.co_name, callee, frame.f_code.co_name))

    sys.setprofile(profile)
    try:
        code = main(["build", spec, "--preview", "-q"])
    finally:
        sys.setprofile(None)
    if code != 0:
        raise SystemExit(f"the build failed ({code})")
    return edges, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/lighthouse.yaml")
    parser.add_argument("--show", action="store_true", help="list the edges that climb")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "project"
        for name in ("specs", "templates"):
            shutil.copytree(REPO / name, root / name)
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        import os

        os.chdir(root)
        edges, runs = trace(args.spec)
    climbs = []
    entries = set()
    for caller, caller_fn, callee, callee_fn in sorted(edges):
        up, down = layer(caller), layer(callee)
        # A helper that calls what expand handed it (errors.Problems.attempt) is expand's own.
        inside = caller.startswith(("pipeline.expand", *SHARED))
        if callee.startswith("pipeline.expand") and not inside:
            entries.add((caller, caller_fn, callee_fn))
        if up is not None and down is not None and down < up:
            kind = "output" if callee.startswith(OUTPUT) else "climb"
            climbs.append((kind, f"{caller}.{caller_fn} -> {callee}.{callee_fn}"))
    modules = sorted({e[2] for e in edges} | {e[0] for e in edges})
    print(f"modules in the build: {len(modules)}; call edges between them: {len(edges)}")
    print(f"edges entering expand from outside: {len(entries)}")
    print("steps run: " + ", ".join(f"{name} {count}x" for name, count in runs.items()))
    output = sum(1 for kind, _ in climbs if kind == "output")
    print(
        f"edges climbing back up the layers: {len(climbs) - output} "
        f"(and {output} to the printer handed down)"
    )
    if args.show:
        for kind, line in climbs:
            print(f"  {kind}: {line}")
        for caller, caller_fn, callee_fn in sorted(entries):
            print(f"  enters expand: {caller}.{caller_fn} -> {callee_fn}")


if __name__ == "__main__":
    main()
