"""The command line: parses, calls the steps, prints. Imports only what a command needs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import StoryboardError

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
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
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
    return parser


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
        raise StoryboardError(f"no shot '{args.shot}' in {args.spec}", f"shots: {known}")
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
