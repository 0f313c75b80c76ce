"""The command line: parses, calls the steps, prints. Imports only what a command needs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import StoryboardError, UserError

if TYPE_CHECKING:
    from pipeline.cache import Cache
    from pipeline.expand import Expansion
    from pipeline.plan import Plan
    from pipeline.spec import Spec

DESCRIPTION = """\
storyboard: a make-style build tool for AI video.

A storyboard (YAML) plus Jinja prompt templates becomes a grid of shots; each shot is
one render of MiniMax Hailuo 2.3 through the Runware API, cached by the content of its
request so that nobody pays twice for the same shot; ffmpeg joins the clips into films.
"""

EPILOG = """\
examples:
  storyboard plan specs/ballroom.yaml            what is cached, what a build would cost
  storyboard build specs/ballroom.yaml --preview local animatic clips: no key, no cost
  RUNWARE_API_KEY=... storyboard build specs/ballroom.yaml --max-cost 5

environment:
  RUNWARE_API_KEY       the Runware API key (never printed or stored)
  RUNWARE_BASE_URL      the API endpoint (default https://api.runware.ai/v1)
  STORYBOARD_CACHE_DIR  the cache folder (default .storyboard/ at the project root)
  STORYBOARD_FFMPEG     the ffmpeg binary to use
"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # `build SPEC --preview teaser`: sequence names may come after the options.
        if isinstance(getattr(args, "sequence", None), list) and not any(
            e.startswith("-") for e in extra
        ):
            args.sequence += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    from pipeline import media

    media.keep_freed_memory()
    try:
        return int(args.handler(args))
    except StoryboardError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storyboard",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    plan = _command(commands, "plan", cmd_plan, "show every shot, what is cached, and the cost")
    _spec_options(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")

    prompts = _command(commands, "prompts", cmd_prompts, "print the rendered prompts")
    _spec_options(prompts)
    prompts.add_argument("shot", nargs="?", help="only this shot id")
    prompts.add_argument("--json", action="store_true", help="print as JSON")

    build = _command(
        commands,
        "build",
        cmd_build,
        "render every missing shot, then join the sequences (cached shots are never rendered)",
    )
    _spec_options(build)
    build.add_argument("sequence", nargs="*", help="build only these sequences and their shots")
    build.add_argument("--only", nargs="+", metavar="SHOT", help="render only these shots")
    build.add_argument(
        "--force", nargs="+", metavar="SHOT", help="render these shots again even if cached"
    )
    build.add_argument("-j", "--jobs", type=_positive_int, default=4, help="renders at once (4)")
    build.add_argument(
        "-k", "--keep-going", action="store_true", help="go on with other shots after a failure"
    )
    build.add_argument("--retries", type=int, default=3, help="retries of a transient failure (3)")
    build.add_argument(
        "--task-timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="give up waiting for a remote render after this long; it stays journaled (1800)",
    )
    build.add_argument(
        "--max-cost",
        type=float,
        metavar="USD",
        help="refuse a build estimated above this, and stop new renders before passing it",
    )
    build.add_argument(
        "--frozen",
        action="store_true",
        help="render nothing the lock file does not already name, and leave the lock as it is",
    )
    build.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        help="the build folder: films go to DIR/<storyboard>/ (default: build/ at project root)",
    )
    build.add_argument("--json", action="store_true", help="end with a JSON summary on stdout")
    build.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    build.add_argument("-v", "--verbose", action="store_true", help="print every step")

    status = _command(
        commands,
        "status",
        cmd_status,
        "say per shot and sequence: current, stale, missing, in flight",
    )
    _spec_options(status)
    status.add_argument("--json", action="store_true", help="print as JSON")

    review = _command(
        commands, "review", cmd_review, "write an HTML contact sheet of every shot and sequence"
    )
    _spec_options(review)
    review.add_argument(
        "-o", "--output-dir", type=Path, help="the build folder (default: build/ at project root)"
    )
    review.add_argument("--open", action="store_true", help="open the page in a browser")

    gc = _command(
        commands,
        "gc",
        cmd_gc,
        "list (and with --yes remove) cached clips no storyboard under PATH uses any more",
    )
    gc.add_argument("paths", nargs="*", type=Path, default=[Path()], help="folders or storyboards")
    gc.add_argument("--yes", action="store_true", help="remove them (default: only list)")
    gc.add_argument("--cache-dir", help="cache folder (default: .storyboard/ at project root)")
    gc.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _command(
    commands: Any, name: str, handler: Callable[[argparse.Namespace], int], summary: str
) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=summary, description=summary)
    sub.set_defaults(handler=handler)
    return sub


def _spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="the storyboard YAML file")
    parser.add_argument(
        "--preview",
        action="store_true",
        help="use the local preview renderer (animatics: no key, no cost)",
    )
    parser.add_argument("--cache-dir", help="cache folder (default: .storyboard/ at project root)")


def _version() -> str:
    from pipeline import __version__

    return f"storyboard {__version__}"


def _renderer_name(args: argparse.Namespace, spec: Spec) -> str:
    return "preview" if args.preview else spec.storyboard.renderer


def load_expansion(args: argparse.Namespace) -> tuple[Spec, Expansion, Cache]:
    from pipeline import cache, expand, spec

    loaded = spec.load(args.spec)
    expansion = expand.expand(loaded, _renderer_name(args, loaded))
    store = cache.Cache(cache.resolve_root(loaded.path, args.cache_dir))
    return loaded, expansion, store


def load_plan(args: argparse.Namespace) -> tuple[Spec, Plan, Cache]:
    from pipeline.plan import make_plan

    loaded, expansion, store = load_expansion(args)
    plan = make_plan(expansion, store.keys(), set(store.journal()))
    return loaded, plan, store


def _warn(warnings: tuple[str, ...] | list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def cmd_plan(args: argparse.Namespace) -> int:
    _, plan, _ = load_plan(args)
    _warn(plan.expansion.warnings)
    if args.json:
        sys.stdout.write(json.dumps(plan.to_json(), indent=1) + "\n")
        return 0
    from pipeline.report import print_plan

    print_plan(plan)
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    loaded, expansion, _ = load_expansion(args)
    shots = [s for s in expansion.shots if args.shot in (None, s.shot_id, s.label)]
    if args.shot and not shots:
        known = ", ".join(s.id for s in loaded.storyboard.shots)
        raise UserError(f"no shot '{args.shot}' in {args.spec}", f"shots: {known}")
    seen: set[tuple[str, str]] = set()
    rows = []
    for shot in shots:
        if (shot.label, shot.prompt) in seen:
            continue
        seen.add((shot.label, shot.prompt))
        rows.append({"shot": shot.label, "variant": shot.variant, "prompt": shot.prompt})
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        return 0
    for row in rows:
        variant = f" [{row['variant']}]" if row["variant"] else ""
        print(f"{row['shot']}{variant}\n  {row['prompt']}\n")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    import os

    from pipeline import lock as lockfile
    from pipeline.build import (
        OutputIndex,
        build_sequences,
        check_budget,
        check_frozen,
        make_lock,
        render_shots,
        select_shots,
    )
    from pipeline.progress import NORMAL, QUIET, VERBOSE, make_reporter
    from pipeline.render import RendererOptions
    from pipeline.scheduler import ScheduleOptions

    loaded, plan, store = load_plan(args)
    _warn(plan.expansion.warnings)
    renderer = _renderer_name(args, loaded)
    sequences = _chosen_sequences(args, plan)
    _check_names(args, loaded)
    to_render, cached, forced = select_shots(plan, args.only, args.force, sequences)
    estimate = round(sum(s.price or 0.0 for s in to_render), 2) if renderer != "preview" else 0.0
    max_cost = args.max_cost if args.max_cost is not None else loaded.storyboard.budget
    if renderer != "preview":
        check_budget(estimate, max_cost)
    api_key = os.environ.get("RUNWARE_API_KEY") or None
    if renderer == "runware" and to_render and not api_key:
        raise UserError(
            "RUNWARE_API_KEY is not set: the runware renderer needs an API key",
            "set RUNWARE_API_KEY, or build local animatics with --preview",
        )
    verbosity = QUIET if args.quiet else VERBOSE if args.verbose else NORMAL
    if not args.json and verbosity > QUIET:
        print(
            f"build {loaded.path.name} with {renderer}: {len(to_render)} to render"
            + (f" (about ${estimate:.2f})" if renderer != "preview" else "")
            + f", {len(cached)} cached",
            file=sys.stderr,
        )
    options = ScheduleOptions(
        jobs=args.jobs,
        keep_going=args.keep_going,
        retries=max(args.retries, 0),
        max_cost=max_cost if renderer != "preview" else None,
        force=forced,
    )
    renderer_options = RendererOptions(
        api_key=api_key,
        base_url=os.environ.get("RUNWARE_BASE_URL") or None,
        task_timeout=args.task_timeout,
    )
    lock_file = lockfile.lock_path(loaded.path, renderer)
    previous = lockfile.read(lock_file)
    if args.frozen:
        check_frozen(lock_file, previous, to_render)
    with make_reporter(len(to_render), estimate, verbosity) as reporter:
        summary = render_shots(to_render, store, renderer, renderer_options, options, reporter)
        summary.cached = cached
        if not summary.interrupted and summary.fatal is None:
            summary.sequences = build_sequences(
                sequences if sequences is not None else list(plan.expansion.sequences),
                store,
                OutputIndex.load(store.root / "outputs.json"),
                _films(args, loaded),
                previous,
                reporter.note,
            )
    if not args.frozen and not summary.interrupted:
        lock = make_lock(loaded.storyboard.name, renderer, plan, store, summary.sequences, previous)
        if lockfile.write(lock_file, lock) and verbosity > QUIET and not args.json:
            print(f"wrote {lock_file}", file=sys.stderr)
    if summary.fatal:
        print(f"error: {summary.fatal}", file=sys.stderr)
    _print_summary(args, summary)
    return summary.exit_code


def _films(args: argparse.Namespace, loaded: Spec) -> Path:
    """Where this storyboard's sequence files go for the renderer in use."""
    from pipeline.build import film_dir
    from pipeline.cache import project_root

    build_dir = getattr(args, "output_dir", None) or project_root(loaded.path) / "build"
    return film_dir(build_dir.resolve(), loaded.storyboard.name, _renderer_name(args, loaded))


def _chosen_sequences(args: argparse.Namespace, plan: Plan) -> list[Any] | None:
    if not args.sequence:
        return None
    chosen = [
        s for s in plan.expansion.sequences if s.id in args.sequence or s.name in args.sequence
    ]
    missing = [n for n in args.sequence if not any(n in (s.id, s.name) for s in chosen)]
    if missing:
        from pipeline.errors import UserError

        known = ", ".join(dict.fromkeys(s.id for s in plan.expansion.sequences)) or "(none)"
        raise UserError(f"no sequence '{missing[0]}' in {args.spec}", f"sequences: {known}")
    return chosen


def _check_names(args: argparse.Namespace, loaded: Spec) -> None:
    known = {s.id for s in loaded.storyboard.shots}
    for name in (args.only or []) + (args.force or []):
        if name.split("@", 1)[0] not in known:
            from pipeline.errors import UserError

            raise UserError(
                f"no shot '{name}' in {args.spec}", f"shots: {', '.join(sorted(known))}"
            )


def _print_summary(args: argparse.Namespace, summary: Any) -> None:
    if args.json:
        sys.stdout.write(json.dumps(summary.to_json(), indent=1) + "\n")
        return
    if args.quiet and not summary.failed:
        return
    data = summary.to_json()
    joined = sum(1 for s in summary.sequences if s.status == "built")
    current = sum(1 for s in summary.sequences if s.status == "current")
    line = (
        f"done: {data['rendered']} rendered, {data['from_cache']} from cache, "
        f"{data['failed']} failed"
        + (f", {data['skipped']} not started" if data["skipped"] else "")
        + f"; {joined} sequences joined, {current} up to date"
        + f"; spent ${data['spent']:.2f}"
    )
    for outcome in summary.sequences:
        if outcome.status in ("blocked", "failed"):
            line += f"\n  sequence {outcome.sequence.name} {outcome.status}: {outcome.error}"
    if summary.interrupted:
        line += " (interrupted)"
    print(line, file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    """One storyboard in detail, or a one-line summary per storyboard under a folder."""
    if args.spec.is_dir():
        return _status_folder(args)
    rows, name = _status_rows(args)
    if args.json:
        sys.stdout.write(json.dumps([r.to_json() for r in rows], indent=1) + "\n")
        return 0
    from rich.markup import escape

    from pipeline.report import make_console
    from pipeline.status import summary_line

    console = make_console()
    styles = {"current": "green", "stale": "yellow", "in flight": "cyan", "missing": "red"}
    for row in rows:
        style = styles.get(row.status, "white")
        variants = ", ".join(v for v in row.variants if v)
        take = f" take {row.take}" if row.take > 1 else ""
        console.print(
            f"{row.kind:8} {row.name}{take}"
            + (escape(f" [{variants}]") if variants else "")
            + f"  [{style}]{row.status}[/{style}]"
            + (f"  [dim]{row.detail}[/dim]" if row.detail else ""),
            highlight=False,
        )
    console.print(summary_line(name, rows), highlight=False)
    return 0


def _status_rows(args: argparse.Namespace) -> tuple[list[Any], str]:
    from pipeline import lock as lockfile
    from pipeline.build import OutputIndex
    from pipeline.status import statuses

    loaded, plan, store = load_plan(args)
    lock = lockfile.read(lockfile.lock_path(loaded.path, _renderer_name(args, loaded)))
    outputs = OutputIndex.load(store.root / "outputs.json")
    return statuses(plan, lock, outputs, _films(args, loaded)), loaded.storyboard.name


def _status_folder(args: argparse.Namespace) -> int:
    from pipeline.status import summary_line

    folder = args.spec
    found = storyboards_under([folder])
    if not found:
        raise UserError(f"no storyboard (*.yaml with version: and shots:) under {folder}")
    results = []
    code = 0
    for path in found:
        args.spec = path
        try:
            rows, name = _status_rows(args)
        except StoryboardError as exc:
            code = exc.exit_code
            line = f"{path}: {exc.render().splitlines()[0]}"
            results.append({"spec": str(path), "error": exc.message})
        else:
            line = summary_line(name, rows)
            results.append(
                {"spec": str(path), "summary": line, "rows": [r.to_json() for r in rows]}
            )
        if not args.json:
            print(line)
    if args.json:
        sys.stdout.write(json.dumps(results, indent=1) + "\n")
    return code


def storyboards_under(paths: list[Path]) -> list[Path]:
    """YAML files that look like storyboards, skipping hidden folders and build outputs."""
    found = []
    for root in paths:
        if root.is_file():
            found.append(root)
            continue
        for path in sorted(root.rglob("*.y*ml")):
            parts = path.relative_to(root).parts
            if any(p.startswith(".") or p in ("build", "node_modules") for p in parts[:-1]):
                continue
            head = path.read_text(encoding="utf-8", errors="replace")[:4000]
            if "version:" in head and "shots:" in head:
                found.append(path)
    return found


def cmd_review(args: argparse.Namespace) -> int:
    from pipeline import lock as lockfile
    from pipeline.review import write_review

    loaded, plan, store = load_plan(args)
    renderer = _renderer_name(args, loaded)
    lock = lockfile.read(lockfile.lock_path(loaded.path, renderer))
    page = write_review(loaded.storyboard.name, plan, store, lock, _films(args, loaded), renderer)
    print(page)
    if args.open:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """Everything a storyboard under the paths uses (both renderers, and its locks) stays."""
    from pipeline import cache, expand, spec
    from pipeline import lock as lockfile

    found = storyboards_under(args.paths)
    if not found:
        raise UserError(
            f"no storyboard under {', '.join(str(p) for p in args.paths)}",
            "gc keeps what the storyboards use: without any, it would remove everything",
        )
    store = cache.Cache(cache.resolve_root(found[0], args.cache_dir))
    used: set[str] = set()
    for path in found:
        loaded = spec.load(path)  # a broken storyboard stops gc: its clips must not go
        for renderer in ("preview", "runware"):
            used.update(s.key for s in expand.expand(loaded, renderer).shots)
            lock = lockfile.read(lockfile.lock_path(loaded.path, renderer))
            if lock is not None:
                used.update(lock.shots)
    in_flight = set(store.journal())
    records = store.records()
    unused = [r for r in records if r.key not in used and r.key not in in_flight]
    unused.sort(key=lambda r: r.created)
    total = sum(r.bytes for r in unused)
    if args.yes:
        for record in unused:
            store.forget(record.key)
    if args.json:
        rows = [
            {"key": r.key, "shot": r.label, "renderer": r.renderer, "bytes": r.bytes}
            for r in unused
        ]
        sys.stdout.write(
            json.dumps({"unused": rows, "bytes": total, "removed": args.yes}, indent=1) + "\n"
        )
        return 0
    for record in unused:
        print(
            f"{record.key[:12]}  {record.renderer:8} {record.bytes / 1e6:8.2f} MB  {record.label}"
        )
    verb = "removed" if args.yes else "would be freed"
    print(
        f"{len(unused)} unused clips, {total / 1e6:.2f} MB {verb}"
        f" ({len(used & {r.key for r in records})} in use"
        + (f", {len(in_flight)} in flight kept" if in_flight else "")
        + ")"
        + ("" if args.yes or not unused else "; run with --yes to remove them")
    )
    return 0
