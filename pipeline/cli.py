"""The command line: parses, calls the steps, prints. Imports only what a command needs."""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import SpecError, StoryboardError, UserError, printable
from pipeline.settings import Environment

if TYPE_CHECKING:
    from pipeline.api import Session

DESCRIPTION = """\
storyboard: a make-style build tool for AI video.

A storyboard (YAML) plus Jinja prompt templates becomes a grid of shots; each shot is
one render of MiniMax Hailuo 2.3 through the Runware API, cached by the content of its
request so that nobody pays twice for the same shot; ffmpeg joins the clips into films.
"""

EPILOG = """\
examples:
  storyboard plan specs/ballroom.yaml            what is cached, what a build would cost
  storyboard plan specs/ballroom.yaml --why      ... and why each shot renders
  storyboard diff specs/ballroom.yaml            what the uncommitted edits change and cost
  storyboard build specs/ballroom.yaml --preview local animatic clips: no key, no cost
  RUNWARE_API_KEY=... storyboard build specs/ballroom.yaml --max-cost 5

environment:
  RUNWARE_API_KEY       the Runware API key (never printed or stored)
  RUNWARE_BASE_URL      the API endpoint (default https://api.runware.ai/v1)
  RUNWARE_POLL_SECONDS  the first and shortest wait between polls of a task (default 1;
                        under 1 only for a local server)
  RUNWARE_NOT_FOUND_GRACE  how long a task Runware accepted may be unknown to it before it
                        is taken as lost and submitted anew (default 300 s; under 60 only
                        for a local server)
  STORYBOARD_CACHE_DIR  the cache folder (default .storyboard/ at the project root)
  STORYBOARD_FFMPEG     the ffmpeg binary to use

the team cache (pip install 'storyboard[remote]'):
  STORYBOARD_REMOTE     s3://bucket/prefix (else [remote] url in storyboard.toml)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL
                        its credentials and, for MinIO, R2, SeaweedFS or Ceph, its address
  STORYBOARD_NO_REMOTE  1: work without the team cache (renders then take no lease)
  STORYBOARD_LEASE_SECONDS  how long a dead machine's lease holds a shot (default 120)
  STORYBOARD_CLUSTER    a Dask scheduler to join films on (never from a repository's files)
"""


def run() -> None:
    """The `storyboard` command: `main` in a process set for a run that keeps what it makes.

    A run makes many objects that live to its end (the storyboard, the graph, the plan) and
    few reference cycles: at the default thresholds the collector walks every live object
    again and again, a quarter of the time of a plan of 1,000 shots or of 10,000. At exit,
    the garbage is collected (whatever it holds is finalized) and the rest frozen: the
    interpreter would free every object one by one, a fifth of the time of a plan.
    """
    gc.set_threshold(100_000, 50, 100)
    code = main()
    gc.collect()
    gc.freeze()
    sys.exit(code)


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
    args.environment = Environment.read()  # once, here: every step is handed what it says
    try:
        return int(args.handler(args))
    except StoryboardError as exc:
        print(exc.render(), file=sys.stderr)
        if getattr(args, "json", False) and isinstance(exc, SpecError):
            errors = [d.to_json() for d in exc.diagnostics]
            write_json({"errors": errors})
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # The last net: every expected file error is a StoryboardError with a hint already.
        where = f"{exc.filename}: " if exc.filename else ""
        print(printable(f"error: {where}{exc.strerror or exc}"), file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storyboard",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=CommandParser
    )

    init = _command(
        commands,
        "init",
        cmd_init,
        "start a project: a storyboard, its templates, the editor schema, its settings, a "
        ".gitignore, and a git repository with a first commit (when not in one)",
    )
    init.add_argument("folder", nargs="?", type=Path, default=Path(), help="where (default: here)")
    init.add_argument(
        "--name", default="first", help="the storyboard's name: specs/NAME.yaml (first)"
    )

    plan = _command(commands, "plan", cmd_plan, "show every shot, what is cached, and the cost")
    _spec_options(plan)
    plan.add_argument(
        "--why",
        action="store_true",
        help="say why each shot and film is made: what changed since the lock, word by word",
    )
    plan.add_argument("--json", action="store_true", help="print the plan as JSON (with reasons)")
    _output_option(plan)

    prompts = _command(commands, "prompts", cmd_prompts, "print the rendered prompts")
    _spec_options(prompts, "the prompts of the preview build (the same words, its own keys)")
    prompts.add_argument("shot", nargs="?", help="only this shot id")
    prompts.add_argument("--json", action="store_true", help="print as JSON")

    build = _command(
        commands,
        "build",
        cmd_build,
        "render every missing shot, then join the sequences (cached shots are never rendered)",
    )
    _spec_options(
        build,
        "render with the local preview renderer: animatics, no key, no cost (its own "
        "lock, films under build/<storyboard>/preview/)",
    )
    build.add_argument("sequence", nargs="*", help="build only these sequences and their shots")
    build.add_argument(
        "--only",
        nargs="+",
        metavar="SHOT",
        help="render only these shots (and the shots and stills they start from)",
    )
    build.add_argument(
        "--force",
        nargs="+",
        metavar="SHOT",
        help="render these again even if cached (paid again): a shot's id names every take "
        "and what is made of it; a label one render (hero/upscale); hero#2 one take",
    )
    build.add_argument("-j", "--jobs", type=_positive_int, default=4, help="renders at once (4)")
    build.add_argument(
        "-k", "--keep-going", action="store_true", help="go on with other shots after a failure"
    )
    build.add_argument(
        "--retries",
        type=_count,
        default=3,
        help="new tries of a render that failed in a way that may not recur (3)",
    )
    build.add_argument(
        "--task-timeout",
        type=_seconds,
        default=1800.0,
        metavar="SECONDS",
        help="give up waiting for a remote render after this long; it stays journaled (1800)",
    )
    build.add_argument(
        "--download-timeout",
        type=_seconds,
        default=600.0,
        metavar="SECONDS",
        help="give up one download of a clip after this long; it is tried again (600)",
    )
    build.add_argument(
        "--max-cost",
        type=_dollars,
        metavar="USD",
        help="refuse a build estimated above this (or with renders of unknown price), "
        "and stop new renders before passing it",
    )
    build.add_argument(
        "--frozen",
        action="store_true",
        help="render nothing the lock file does not already name, and leave the lock as it is",
    )
    build.add_argument(
        "--no-push",
        action="store_true",
        help="share nothing this build renders or joins with the team cache (it still reads it)",
    )
    build.add_argument(
        "--no-remote",
        action="store_true",
        help="work without the team cache: no fetches, no leases (a colleague may then pay "
        "for the same shot)",
    )
    build.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="join the films on this Dask scheduler (tcp://host:8786; or STORYBOARD_CLUSTER); "
        "its workers read clips from the team cache. Only the person building names one: a "
        "repository's storyboard.toml cannot",
    )
    build.add_argument(
        "--approved",
        action="store_true",
        help="join only the films whose shots are all approved (in the build's decisions "
        "file), and render only what those films use; each film left out is said",
    )
    build.add_argument(
        "--join-only",
        action="store_true",
        help="render nothing: join the films whose renders are all in the cache (free)",
    )
    build.add_argument(
        "--qc",
        choices=("warn", "strict"),
        default="warn",
        help="what the quality check of paid takes and films (black, frozen, flashes, "
        "silence, length) does with a finding: warn (the default), or strict: a finding in "
        "what the build delivers fails it (exit 1)",
    )
    _output_option(build)
    build.add_argument("--json", action="store_true", help="end with a JSON summary on stdout")
    build.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    build.add_argument("-v", "--verbose", action="store_true", help="print every step")

    status = _command(
        commands,
        "status",
        cmd_status,
        "say per shot and sequence what it is (cached, new, changed, missing, in flight, remote...)",
    )
    _spec_options(status)
    status.add_argument("-v", "--verbose", action="store_true", help="say why, for each")
    status.add_argument("--json", action="store_true", help="print as JSON (with reasons)")
    _output_option(status)

    diff = _command(
        commands,
        "diff",
        cmd_diff,
        "compare a storyboard at two git revisions: shots and films changed, and what it costs",
    )
    diff.add_argument(
        "revisions",
        nargs="*",
        metavar="REV",
        help="one or two git revisions (default: HEAD, against the work tree)",
    )
    _spec_options(diff)
    diff.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="text for people (default); markdown (GitHub-flavoured: a table of the renders "
        "changed with each prompt's word diff and price, the films, the cost) for a pull "
        "request; json for programs",
    )
    diff.add_argument("--json", action="store_true", help="print as JSON (--format json)")

    export = _command(
        commands,
        "export",
        cmd_export,
        "write each film's timeline for an editor, beside the film: OpenTimelineIO (otio), "
        "Final Cut Pro XML (fcpxml) or a CMX 3600 EDL (edl), pointing at the clips in the cache",
    )
    _spec_options(export)
    export.add_argument("sequence", nargs="*", help="only the films of these sequences")
    export.add_argument(
        "--format",
        choices=("otio", "fcpxml", "edl"),
        default="otio",
        help="the timeline's format (otio; fcpxml and edl through OpenTimelineIO's adapters)",
    )
    _output_option(export)

    review = _command(
        commands,
        "review",
        cmd_review,
        "write an HTML contact sheet of every shot and sequence; with --serve, a local app "
        "to pick, approve and reject takes",
    )
    _spec_options(review)
    _output_option(review)
    review.add_argument("--open", action="store_true", help="open the page in a browser")
    review.add_argument(
        "--serve",
        action="store_true",
        help="serve the review app: decisions go to the decisions file of the build it shows",
    )
    review.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address the app listens on (127.0.0.1: this machine only)",
    )
    review.add_argument(
        "--port", type=_port, default=8765, help="the app's port (8765; 0: any free one)"
    )
    review.add_argument(
        "--contact-sheet",
        type=Path,
        metavar="FILE.png",
        help="draw one PNG instead of the page: a grid of every take's poster with its label "
        "and price (1,488 px wide)",
    )
    review.add_argument(
        "--changed-from",
        metavar="REV",
        help="with --contact-sheet: the renders changed since this git revision first, framed",
    )

    for name, summary in (
        ("pick", "pick a take of a shot (in the decisions file of the build; free)"),
        ("approve", "approve the picked take of a shot (or TAKE); free"),
        ("reject", "reject the picked take of a shot (or TAKE); --another asks for one more"),
    ):
        decide = _command(commands, name, cmd_decide, summary)
        _spec_options(
            decide,
            "decide on the takes of the preview build, in its own decisions file "
            "(NAME.preview.picks.yaml): the paid build never reads it",
        )
        decide.add_argument("shot", help="the shot: its id, or its label (crew@airship)")
        decide.add_argument(
            "take",
            type=_positive_int,
            nargs=None if name == "pick" else "?",
            help="the take" + ("" if name == "pick" else " (default: the picked one)"),
        )
        decide.add_argument(
            "--variant",
            action="append",
            default=[],
            metavar="NAME",
            help="only in this variant (as status names it); repeatable",
        )
        decide.add_argument(
            "--vars",
            nargs="+",
            default=[],
            metavar="KEY=VALUE",
            help="only in the variants with these matrix values (flavour=caramel)",
        )
        decide.add_argument("--note", help="a note on the shot, kept with the decision")
        if name == "reject":
            decide.add_argument(
                "--another",
                action="store_true",
                help="ask for one more take: the next `storyboard build` renders it (paid)",
            )

    push = _command(
        commands,
        "push",
        cmd_push,
        "share every clip and film of the local cache that the team cache lacks",
    )
    push.add_argument("--cache-dir", help="cache folder (default: .storyboard/ at project root)")

    pull = _command(
        commands,
        "pull",
        cmd_pull,
        "fetch from the team cache the clips and films of storyboards that this cache lacks",
    )
    pull.add_argument(
        "specs",
        nargs="*",
        type=Path,
        help="storyboards, or folders of them (default: the current folder)",
    )
    pull.add_argument(
        "--preview", action="store_true", help="the preview renderer's clips and films"
    )
    pull.add_argument("--cache-dir", help="cache folder (default: .storyboard/ at project root)")

    gc = _command(
        commands,
        "gc",
        cmd_gc,
        "list (and with --yes remove) cached clips and films that no storyboard of the cache uses",
    )
    gc.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="folders or storyboards to count as well (every storyboard that built into the "
        "cache always counts; default: the current folder)",
    )
    gc.add_argument("--yes", action="store_true", help="remove them (default: only list)")
    gc.add_argument(
        "--forget",
        action="append",
        type=Path,
        metavar="SPEC",
        help="a storyboard that is gone for good: its clips stop being kept",
    )
    gc.add_argument("--cache-dir", help="cache folder (default: .storyboard/ at project root)")
    gc.add_argument("--json", action="store_true", help="print as JSON")
    schema = _command(
        commands,
        "schema",
        cmd_schema,
        "print the JSON Schema of the storyboard format (editors complete and check with it)",
    )
    schema.add_argument("-o", "--output", type=Path, help="write it to this file instead")

    completion = _command(
        commands,
        "completion",
        cmd_completion,
        'print the shell completion script: eval "$(storyboard completion bash)"',
    )
    completion.add_argument("shell", choices=("bash", "zsh", "fish"))
    hidden = commands.add_parser("__complete")  # no help: not listed
    hidden.add_argument("words", nargs=argparse.REMAINDER)
    hidden.set_defaults(handler=cmd_complete, handler_name="__complete")
    return parser


STORYBOARD_FILES = (".yaml", ".yml")  # what a storyboard is named: never a shot or KEY=VALUE
_NEGATIVE_NUMBER = re.compile(r"-\d+(\.\d*)?")


def _is_storyboard_file(word: str) -> bool:
    """A storyboard file's name as typed (a KEY=VALUE whose value ends in .yaml is a var)."""
    return "=" not in word and word.lower().endswith(STORYBOARD_FILES)


class CommandParser(argparse.ArgumentParser):
    """A command's parser, whose options may come before, between or after its positionals:
    `build --only pour specs/x.yaml` is read as `build specs/x.yaml --only pour`. argparse
    reads positionals in runs between options, and an option taking a list (--only,
    --force, --vars) takes every word after it; so the words are put in that order first,
    positionals before options, and a list ends at a storyboard file (which is never a shot
    nor a KEY=VALUE). A command whose last positional takes the rest as it is (the
    completion's) is read as given."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        takes_the_rest = any(a.nargs == argparse.REMAINDER for a in self._actions)
        if args is not None and not takes_the_rest:
            args = self._positionals_first(list(args))
        return super().parse_known_args(args, namespace)

    def _positionals_first(self, words: list[str]) -> list[str]:
        positionals: list[str] = []
        options: list[str] = []
        index = 0
        while index < len(words):
            word = words[index]
            index += 1
            if word == "--":  # the rest is positionals, as given
                return [*positionals, *options, *words[index - 1 :]]
            if not _looks_like_option(word):
                positionals.append(word)
                continue
            options.append(word)
            wanted, taken = self._values_wanted(word), 0
            while index < len(words) and taken < wanted and not _looks_like_option(words[index]):
                if wanted == LIST and _is_storyboard_file(words[index]):
                    break
                options.append(words[index])
                index += 1
                taken += 1
        return [*positionals, *options]

    def _values_wanted(self, word: str) -> int:
        """How many of the words after `word` (an option) are its values: LIST for as many
        as there are; 0 for an option not known here (argparse says so)."""
        name, attached = (word.split("=", 1)[0], "=" in word)
        action = self._option_string_actions.get(name)
        if action is None and name.startswith("--"):
            found = {a for n, a in self._option_string_actions.items() if n.startswith(name)}
            action = found.pop() if len(found) == 1 else None  # argparse's abbreviations
        if action is None and not name.startswith("--") and len(name) > 2:
            return self._cluster_wants(name)  # -kq, -j2
        if action is None or attached:
            return 0
        return _values_of(action)

    def _cluster_wants(self, word: str) -> int:
        """Short options run together (-kq) or with a value attached (-j2)."""
        for at in range(1, len(word)):
            action = self._option_string_actions.get("-" + word[at])
            if action is None:
                return 0
            if action.nargs != 0:
                return 0 if at + 1 < len(word) else _values_of(action)
        return 0


LIST = sys.maxsize  # an option's values: as many words as follow it


def _values_of(action: argparse.Action) -> int:
    if action.nargs in ("+", "*"):
        return LIST
    if action.nargs is None or action.nargs == "?":
        return 1
    return action.nargs if isinstance(action.nargs, int) else 0


def _looks_like_option(word: str) -> bool:
    return word.startswith("-") and word != "-" and not _NEGATIVE_NUMBER.fullmatch(word)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0 to 65535")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _finite_positive(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of {what}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of {what}, not {text}")
    return value


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return _seconds(text)
    except argparse.ArgumentTypeError as exc:
        raise UserError(f"{name}={text}: {exc}") from None


def _dollars(text: str) -> float:
    return _finite_positive(text, "dollars")


def _seconds(text: str) -> float:
    return _finite_positive(text, "seconds")


def _command(
    commands: Any, name: str, handler: Callable[[argparse.Namespace], int], summary: str
) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=summary, description=summary)
    sub.set_defaults(handler=handler, handler_name=name)
    return sub


LOOK_AT_PREVIEW = (
    "look at the preview build (local animatics: free) instead of the Runware one: each has "
    "its own lock and films"
)


def _spec_options(parser: argparse.ArgumentParser, preview: str = LOOK_AT_PREVIEW) -> None:
    parser.add_argument("spec", type=Path, help="the storyboard YAML file")
    parser.add_argument("--preview", action="store_true", help=preview)
    parser.add_argument("--cache-dir", help="cache folder (default: .storyboard/ at project root)")
    parser.add_argument(
        "--max-shots",
        type=_positive_int,
        metavar="N",
        help="refuse a storyboard whose matrix expands to more shots than this (10,000)",
    )


def _output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        help="the build folder: films go to DIR/<storyboard>/ (default: build/ at project root)",
    )


def _version() -> str:
    from pipeline import __version__

    return f"storyboard {__version__}"


def _note(message: str) -> None:
    """Warnings, and what the cache repaired on its own: always said, on stderr."""
    prefixed = message.startswith(("warning:", "error:", "note:"))
    print(printable(message if prefixed else f"note: {message}"), file=sys.stderr)


def _note_verbatim(message: str) -> None:
    print(printable(message), file=sys.stderr)


def _ignore(message: str) -> None:
    return None


def _cache_dir(args: argparse.Namespace) -> str | None:
    """The cache folder asked for: --cache-dir, else STORYBOARD_CACHE_DIR."""
    return args.cache_dir or args.environment.cache_dir


def session(args: argparse.Namespace) -> Session:
    """The storyboard and the choices every command shares, as the library takes them."""
    from pipeline.api import Session

    return Session(
        args.spec,
        args.preview,
        args.cache_dir,
        getattr(args, "output_dir", None),
        args.max_shots,
        _note,
        args.environment,
    )


def _say_which_build(looked_at: Session, stream: Any = None) -> None:
    """The build a command looks at, said first; and the other kind, when only that one
    has been built."""
    which, other = looked_at.looking_at()
    if other:
        _note(other)
    print(printable(which[0].upper() + which[1:]), file=stream or sys.stdout, flush=True)


def cmd_init(args: argparse.Namespace) -> int:
    from pipeline.new_project import create

    made = create(args.folder, args.name)
    for path in made.files:
        print(printable(f"wrote {made.folder / path}"))
    if made.git == "created":
        print(printable(f"made a git repository in {made.folder}"))
        if made.commit:
            _note(made.commit)
        else:
            print("committed what init wrote: the project's first commit")
    elif made.git == "missing":
        _note("git was not found: make the folder a git repository to version the storyboard")
    where = "" if made.folder == Path() else f"cd {made.folder} && "
    print(
        printable(
            f"next: {where}storyboard build {made.storyboard} --preview   (free animatics; "
            "then without --preview, with RUNWARE_API_KEY set, for the real renders)"
        )
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from pipeline.spec.json_schema import schema_text, write_schema

    if args.output is None:
        sys.stdout.write(schema_text())
        return 0
    write_schema(args.output)
    print(printable(f"wrote {args.output}"), file=sys.stderr)
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    from pipeline.completion import script

    sys.stdout.write(script(args.shell))
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    """The candidates for the words on the command line (the completion scripts ask)."""
    from pipeline.completion import candidates

    for candidate in candidates(build_parser(), list(args.words)):
        print(candidate)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    looked_at = session(args)
    plan = looked_at.plan()
    if args.json:
        body = plan.to_json()
        write_json(body)
        return 0
    from pipeline.report import print_plan

    _say_which_build(looked_at)
    print_plan(plan, why=args.why)
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    rows = session(args).prompts(args.shot)
    if args.json:
        write_json(rows)
        return 0
    for row in rows:
        variant = f" [{row['variant']}]" if row["variant"] else ""
        print(printable(f"{row['shot']}{variant}\n  {row['prompt']}\n"))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from pipeline.build import BuildOutput
    from pipeline.progress import NORMAL, QUIET, VERBOSE, make_reporter
    from pipeline.render import RendererOptions
    from pipeline.run.shots import ScheduleOptions

    verbosity = QUIET if args.quiet else VERBOSE if args.verbose else NORMAL
    talk = not args.json and verbosity > QUIET
    output = BuildOutput(
        # The plan of the build (what it renders, the team cache, the cluster) goes to stderr
        # with --json too: what a build trusts is said whoever reads it.
        info=lambda message: print(message, file=sys.stderr) if verbosity > QUIET else None,
        warn=_note,
        progress=lambda outlook: make_reporter(outlook, verbosity),
        explain=_note_verbatim if talk and verbosity >= VERBOSE else _ignore,
    )
    summary = session(args).build(
        output,
        sequences=tuple(args.sequence),
        only=tuple(args.only or ()),
        force=tuple(args.force or ()),
        schedule=ScheduleOptions(
            jobs=args.jobs,
            keep_going=args.keep_going,
            retries=args.retries,
            push=not args.no_push,
        ),
        renderer=RendererOptions(
            api_key=os.environ.get("RUNWARE_API_KEY") or None,
            base_url=os.environ.get("RUNWARE_BASE_URL") or None,
            task_timeout=args.task_timeout,
            download_timeout=args.download_timeout,
            poll_seconds=_env_seconds("RUNWARE_POLL_SECONDS", 1.0),
            not_found_grace=_env_seconds("RUNWARE_NOT_FOUND_GRACE", 300.0),
        ),
        max_cost=args.max_cost,
        frozen=args.frozen,
        remote=not args.no_remote,
        cluster=args.cluster,
        approved=args.approved,
        join_only=args.join_only,
        qc=args.qc,
    )
    if summary.lock_written is not None and talk:
        print(f"wrote {summary.lock_written}", file=sys.stderr)
    if summary.fatal:
        print(printable(f"error: {summary.fatal}"), file=sys.stderr)
    _print_summary(args, summary)
    return summary.exit_code


def _print_summary(args: argparse.Namespace, summary: Any) -> None:
    if args.json:
        write_json(summary.to_json())
        return
    if args.quiet and not summary.failed:
        return
    from pipeline.progress import summary_line

    print(printable(summary_line(summary)), file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    """One storyboard in detail, or a one-line summary per storyboard under a folder."""
    if args.spec.is_dir():
        return _status_folder(args)
    looked_at = session(args)
    name, rows = looked_at.status()
    if args.json:
        write_json([r.to_json() for r in rows])
        return 0
    _say_which_build(looked_at)
    from rich.text import Text

    from pipeline.qc import said
    from pipeline.report import make_console, print_reasons, state_text
    from pipeline.status import summary_line

    console = make_console()
    for row in rows:
        take = f" take {row.take}" if row.take > 1 else ""
        variants = f" [{row.in_variants}]" if row.in_variants else ""
        line = Text(f"{row.kind:8} {row.name}{take}{variants}")
        line += Text("  ") + state_text(row.status)
        if row.qc:
            line += Text(f"  qc: {said(row.qc)}", style="yellow")
        if row.reasons and not args.verbose:
            first = row.reasons[0]
            line += Text("  " + (first if len(first) <= 90 else first[:89] + "…"), style="dim")
        console.print(line, highlight=False)
        if args.verbose:
            print_reasons(console, row.reasons, indent=9)
    console.print(summary_line(name, rows), highlight=False)
    return 0


def _status_folder(args: argparse.Namespace) -> int:
    from pipeline.api import storyboards
    from pipeline.status import summary_line

    folder = args.spec
    found, unreadable = storyboards([folder])
    if not found and not unreadable:
        raise UserError(f"no storyboard (*.yaml with version: and shots:) under {folder}")
    results: list[dict[str, Any]] = []
    code = 0
    for path, problem in unreadable:
        code = 2
        results.append({"spec": str(path), "error": problem})
        if not args.json:
            print(problem)
    for path in found:
        args.spec = path
        try:
            name, rows = session(args).status()
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
        write_json(results)
    return code


def cmd_export(args: argparse.Namespace) -> int:
    exported = session(args).export(args.format, tuple(args.sequence))
    for done in exported:
        if done.path is not None:
            print(printable(f"wrote {done.path}"))
        else:
            _note(f"warning: {done.film.name}: not exported: {done.error}")
    return 0 if all(done.path is not None for done in exported) else 1


def cmd_diff(args: argparse.Namespace) -> int:
    if len(args.revisions) > 2:
        raise UserError("diff takes at most two revisions", "storyboard diff [REV [REV]] SPEC")
    old: str = args.revisions[0] if args.revisions else "HEAD"
    new: str | None = args.revisions[1] if len(args.revisions) > 1 else None
    looked_at = session(args)
    comparison = looked_at.diff(old, new)
    if args.json or args.format == "json":
        write_json(comparison.to_json())
        return 0
    if args.format == "markdown":
        from pipeline.markdown import comparison_markdown

        sys.stdout.write(comparison_markdown(comparison, str(args.spec)))
        return 0
    _say_which_build(looked_at)
    from pipeline.report import print_comparison

    print_comparison(comparison)
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    """pick, approve, reject: a decision in the decisions file; nothing is rendered."""
    from pipeline.deciding import Act

    act = Act(args.handler_name, args.take, args.note, getattr(args, "another", False))
    outcome = session(args).decide(args.shot, act, tuple(args.variant), tuple(args.vars))
    for line in outcome.said:
        print(printable(line))
    if outcome.renders:
        unknown = f" (+{outcome.unpriced} of unknown price)" if outcome.unpriced else ""
        print(
            f"{outcome.renders} more render(s), about ${outcome.cost:.2f}{unknown}: "
            "the next `storyboard build` makes them",
            file=sys.stderr,
        )
    else:
        print("nothing to render: a decision is free", file=sys.stderr)
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    if args.contact_sheet is not None:
        if args.serve:
            raise UserError("--contact-sheet draws a picture, --serve runs the app: one at a time")
        looked_at = session(args)
        drawn = looked_at.contact_sheet(args.contact_sheet, args.changed_from)
        _say_which_build(looked_at, sys.stderr)
        print(printable(str(drawn)))
        return 0
    if args.changed_from:
        raise UserError("--changed-from orders a contact sheet", "add --contact-sheet FILE.png")
    if args.serve:
        from pipeline.review_app import serve

        return serve(session(args), args.host, args.port, args.open)
    looked_at = session(args)
    page = looked_at.review()
    _say_which_build(looked_at, sys.stderr)
    print(page)
    if args.open:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from pipeline.api import push

    done = push(Path.cwd(), _note, _note_verbatim, args.environment, args.cache_dir)
    print(
        f"pushed {done.clips} clip(s) and {done.films} film(s), {done.bytes / 1e6:.1f} MB",
        file=sys.stderr,
    )
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from pipeline.api import Session, storyboards

    found, unreadable = storyboards(args.specs or [Path.cwd()])
    for _, problem in unreadable:
        print(problem, file=sys.stderr)
    if not found and not unreadable:
        where = ", ".join(str(p) for p in args.specs) or str(Path.cwd())
        raise UserError(f"no storyboard (*.yaml with version: and shots:) under {where}")
    code = 2 if unreadable else 0
    for path in found:
        looked_at = Session(
            path, args.preview, args.cache_dir, note=_note, environment=args.environment
        )
        done = looked_at.pull(_note_verbatim)
        print(
            printable(
                f"{path}: pulled {done.clips} clip(s) and {done.films} film(s), "
                f"{done.bytes / 1e6:.1f} MB"
                + (f"; {done.missing} shot(s) the team has not rendered" if done.missing else "")
                + (f"; {done.refused} damaged, refused" if done.refused else "")
            ),
            file=sys.stderr,
        )
        if done.refused:
            code = code or 1
    return code


def cmd_gc(args: argparse.Namespace) -> int:
    """Everything any storyboard of the cache uses stays (both renderers, its locks)."""
    from pipeline.api import collect_garbage

    paths = args.paths or [Path()]
    collection, forgotten = collect_garbage(
        paths, _cache_dir(args), _note, args.forget or [], args.yes
    )
    for spec_path, known in forgotten:
        print(f"{'forgot' if known else 'was never recorded:'} {spec_path}", file=sys.stderr)
    if args.json:
        rows = [
            {"key": r.key, "shot": r.label, "renderer": r.renderer, "bytes": r.bytes}
            for r in collection.unused
        ]
        unreadable = [
            {"path": str(u.path), "problem": u.problem, "kept": u.kept, "known": u.known}
            for u in collection.unreadable
        ]
        body = {
            "unused": rows,
            "unused_films": [{"key": f.key, "bytes": f.bytes} for f in collection.unused_films],
            "bytes": collection.bytes,
            "removed": args.yes,
            "storyboards": [str(p) for p in collection.storyboards],
            "unreadable": unreadable,
        }
        write_json(body)
        return 0
    for record in collection.unused:
        print(
            f"{record.key[:12]}  {record.renderer:8} {record.bytes / 1e6:8.2f} MB  {record.label}"
        )
    for item in collection.unreadable:
        kept = (
            f"kept the {item.kept} clips of its last build"
            if item.known
            else "what it uses is unknown: nothing can be removed"
        )
        print(f"could not read {item.path}: {item.problem} ({kept})")
    for film in collection.unused_films:
        print(f"{film.key[:12]}  film     {film.bytes / 1e6:8.2f} MB  (joins again if needed)")
    verb = "removed" if args.yes else "would be freed"
    films = f" and {len(collection.unused_films)} films" if collection.unused_films else ""
    print(
        f"{len(collection.unused)} unused clips{films}, {collection.bytes / 1e6:.2f} MB {verb}"
        f" ({collection.in_use} in use by {len(collection.storyboards)} storyboards"
        + (f", {collection.in_flight} in flight kept" if collection.in_flight else "")
        + ")"
        + (
            ""
            if args.yes or not (collection.unused or collection.unused_films)
            else "; run with --yes to remove them"
        )
    )
    return 0


def write_json(value: Any) -> None:
    """`value` as JSON on stdout, each item of a list on a line of its own: as readable as
    an indented dump and made by json's C encoder (an indented dump runs in Python: a fifth
    of a second for the plan of 10,000 shots)."""
    sys.stdout.write(_json_lines(value, top=True) + "\n")


def _json_lines(value: Any, top: bool = False) -> str:
    if isinstance(value, list) and value:
        return "[\n " + ",\n ".join(_compact_json(item) for item in value) + "\n]"
    if top and isinstance(value, dict) and value:
        fields = (f"{_compact_json(name)}: {_json_lines(item)}" for name, item in value.items())
        return "{\n" + ",\n".join(fields) + "\n}"
    return _compact_json(value)


def _compact_json(value: Any) -> str:
    return _ENCODER.encode(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # one for all rows: json.dumps makes one each
