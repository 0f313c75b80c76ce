"""What the GitHub Action (`action.yml`) runs on a pull request, in two steps.

`report`: every storyboard whose project the change touches is checked (`plan`: its problems
printed as annotations on the lines they name, and the step fails with exit code 2), priced
against the pull request's base (`diff --format markdown`), previewed for free (`build
--preview` of the renders the change adds or changes) and drawn on a contact sheet; the
comment's body is written to a file, and to the job's summary.

`comment`: the one comment on the pull request, found by a hidden marker in its body, is
created when the change touches a cost or a film, and edited only when what it says
changes (a push that changes nothing it reports notifies nobody); with `--to-file`, the
comment is a file instead (a workflow that posts it itself, or a test).

No API key is read or used: nothing is rendered for money.

    python -m pipeline.pull_request report --out DIR [--base REV] [--previews changed|all|none]
        [STORYBOARD_OR_FOLDER ...]
    python -m pipeline.pull_request comment --body DIR/comment.md [--to-file FILE]
        [--artifact-url URL]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.compare import Comparison
from pipeline.errors import Diagnostic, SpecError, StoryboardError, UserError, printable
from pipeline.settings import Environment

MARKER = "<!-- storyboard-pull-request"  # the start of the hidden line that finds the comment
MAX_COMMENT = 60_000  # characters: GitHub takes 65,536
PREVIEWS = ("changed", "all", "none")
OLD_SIDE, NEW_SIDE = "base", "this pull request"


@dataclass(frozen=True)
class GitHub:
    """What the runner says of the run (its environment), read once."""

    event: Mapping[str, Any] = field(default_factory=dict)
    repository: str = ""
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    run_id: str = ""
    token: str = ""
    base_ref: str = ""  # the base branch's name
    output: Path | None = None  # GITHUB_OUTPUT: the step's outputs
    summary: Path | None = None  # GITHUB_STEP_SUMMARY

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> GitHub:
        def path(name: str) -> Path | None:
            return Path(environ[name]) if environ.get(name) else None

        event_path = path("GITHUB_EVENT_PATH")
        event = json.loads(event_path.read_text()) if event_path and event_path.is_file() else {}
        return cls(
            event=event if isinstance(event, dict) else {},
            repository=environ.get("GITHUB_REPOSITORY", ""),
            api_url=environ.get("GITHUB_API_URL") or cls.api_url,
            server_url=environ.get("GITHUB_SERVER_URL") or cls.server_url,
            run_id=environ.get("GITHUB_RUN_ID", ""),
            token=environ.get("GITHUB_TOKEN", ""),
            base_ref=environ.get("GITHUB_BASE_REF", ""),
            output=path("GITHUB_OUTPUT"),
            summary=path("GITHUB_STEP_SUMMARY"),
        )

    @property
    def number(self) -> int | None:
        """The pull request's number (None: the run is not for one)."""
        found = (self.event.get("pull_request") or {}).get("number")
        return found if isinstance(found, int) else None

    @property
    def base(self) -> str | None:
        """The commit the pull request is to be merged into, as the event says."""
        found = ((self.event.get("pull_request") or {}).get("base") or {}).get("sha")
        return found if isinstance(found, str) and found else None

    @property
    def run_url(self) -> str:
        if not (self.repository and self.run_id):
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    def set_output(self, name: str, value: str) -> None:
        if self.output is not None:
            with self.output.open("a", encoding="utf-8") as outputs:
                outputs.write(f"{name}={value}\n")


# -- report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """What the report found of one storyboard."""

    spec: str  # as the repository names it
    comparison: Comparison | None = None
    problems: tuple[str, ...] = ()  # why it does not plan: the check fails
    sheet: Path | None = None
    warnings: tuple[str, ...] = ()  # why it could not be compared with the base

    @property
    def says(self) -> bool:
        """Whether the comment has anything to say of it: costs, films, or problems."""
        if self.problems or self.warnings:
            return True
        c = self.comparison
        return c is not None and (c.changed or c.old.cost != c.new.cost)


def report(
    top: Path,
    base: str,
    paths: list[Path],
    previews: str,
    out: Path,
    github: GitHub,
    environment: Environment,
) -> int:
    """Check, price and preview every storyboard the change since `base` touches; write the
    comment's body (`out/comment.md`) and contact sheets (`out/contact-sheets/`)."""
    since = _git(["rev-parse", "--short", _git(["merge-base", base, "HEAD"], top)], top)
    changed = _changed_files(top, since)
    found = [
        _look_at(top, spec, since, previews, out / "contact-sheets", environment)
        for spec in _storyboards(top, paths, changed)
    ]
    body = comment_body(found, github.base_ref or base[:12], since)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comment.md").write_text(body, encoding="utf-8")
    if github.summary is not None:
        with github.summary.open("a", encoding="utf-8") as summary:
            summary.write(body)
    sheets = [f.sheet for f in found if f.sheet is not None]
    github.set_output("body", str(out / "comment.md"))
    github.set_output("sheets", str(out / "contact-sheets") if sheets else "")
    github.set_output("storyboards", str(len(found)))
    print(f"storyboard: {len(found)} storyboard(s) touched, {len(sheets)} contact sheet(s)")
    return 2 if any(f.problems for f in found) else 0


def _changed_files(top: Path, since: str) -> list[Path]:
    """The files git tracks that differ between `since` and the work tree (what a build
    leaves, untracked, is no change)."""
    listed = _git(["diff", "--name-only", "-z", since, "--"], top).split("\0")
    return [top / name for name in listed if name]


def _storyboards(top: Path, paths: list[Path], changed: list[Path]) -> list[Path]:
    """The storyboards under `paths` (and the YAML files there that could not be read to
    tell) that a changed file may touch: one in its project that is not another storyboard's
    own (its YAML, its locks, its decisions)."""
    from pipeline.api import storyboards
    from pipeline.project import project_root

    found, unreadable = storyboards(paths or [top])
    # Named as the changed files are (from the top of the repository, its links followed).
    candidates = sorted(
        {p.parent.resolve() / p.name for p in [*found, *(u for u, _ in unreadable)]}
    )
    touched = []
    for spec in candidates:
        root = project_root(spec)
        inside = [file for file in changed if file == root or root in file.parents]
        if any(_owner(file, candidates) in (None, spec) for file in inside):
            touched.append(spec)
    return touched


def _owner(file: Path, storyboards: list[Path]) -> Path | None:
    """The storyboard whose own file this is (`ballroom.yaml`, `ballroom.preview.lock`)."""
    for spec in storyboards:
        if file.parent == spec.parent and file.name.startswith(spec.stem + "."):
            return spec
    return None


def _look_at(
    top: Path, spec: Path, since: str, previews: str, sheets: Path, environment: Environment
) -> Found:
    """Check one storyboard, compare it with `since`, preview what changed, draw it."""
    from pipeline.api import Session

    named = _in_repository(spec, top)
    paid = Session(spec, environment=environment, note=_warn)
    try:
        paid.plan()
    except SpecError as exc:
        for diagnostic in exc.diagnostics:
            print(annotation(diagnostic, top))
        return Found(named, problems=tuple(d.render() for d in exc.diagnostics))
    except StoryboardError as exc:
        print(f"::error file={_property(named)}::{_data(exc.render())}")
        return Found(named, problems=(exc.render(),))
    try:
        comparison = paid.diff(since, None)
    except StoryboardError as exc:
        said = f"could not be compared with the base: {exc.render()}"
        print(f"::warning file={_property(named)}::{_data(said)}")
        return Found(named, warnings=(said,))
    # Named so that the comment says the same while the base branch moves on.
    comparison = replace(
        comparison,
        old=replace(comparison.old, name=OLD_SIDE),
        new=replace(comparison.new, name=NEW_SIDE),
    )
    sheet = None
    if previews != "none" and (comparison.shots or previews == "all"):
        sheet = _preview(spec, named, comparison, since, previews, sheets, environment)
    return Found(named, comparison, sheet=sheet)


def _preview(
    spec: Path,
    named: str,
    comparison: Comparison,
    since: str,
    previews: str,
    sheets: Path,
    environment: Environment,
) -> Path | None:
    """Build the free previews of what changed (of everything: `all`) and draw the contact
    sheet, the changed renders first; None when nothing could be drawn."""
    from pipeline.api import Session

    preview = Session(spec, preview=True, environment=environment, note=_warn)
    only = () if previews == "all" else tuple(
        dict.fromkeys(c.label for c in comparison.shots if c.kind != "removed")
    )  # fmt: skip
    try:
        if previews == "all" or only:
            summary = preview.build(_quiet_output(), only=only)
            if summary.exit_code != 0:
                print(f"::warning file={_property(named)}::{_data('some previews failed')}")
        return preview.contact_sheet(sheets / f"{_flat(named)}.png", since)
    except StoryboardError as exc:
        print(f"::warning file={_property(named)}::{_data('no previews: ' + exc.render())}")
        return None


def _quiet_output() -> Any:
    from pipeline.progress import QUIET, make_reporter
    from pipeline.request import BuildOutput

    def progress(outlook: Any) -> AbstractContextManager[Any]:
        return make_reporter(outlook, QUIET)

    return BuildOutput(info=_warn, warn=_warn, progress=progress)


def _warn(message: str) -> None:
    print(printable(message), file=sys.stderr)


def _in_repository(path: Path, top: Path) -> str:
    try:
        return path.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _flat(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "storyboard"


def annotation(diagnostic: Diagnostic, top: Path) -> str:
    """A problem as a workflow command GitHub shows on the line it names."""
    where = Path(diagnostic.path)
    named = _in_repository(where if where.is_absolute() else Path.cwd() / where, top)
    said = diagnostic.message + (f" (hint: {diagnostic.hint})" if diagnostic.hint else "")
    return (
        f"::error file={_property(named)},line={diagnostic.line},col={diagnostic.col},"
        f"title={_property('storyboard ' + diagnostic.code)}::{_data(said)}"
    )


def _data(text: str) -> str:
    """A workflow command's message, escaped as GitHub reads it."""
    return printable(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


# -- the comment's body ---------------------------------------------------------------------


def comment_body(found: list[Found], base: str, since: str) -> str:
    """The comment: a hidden marker with the digest of what it says (so that a comment
    that says the same is left alone), a line per storyboard, each one's diff; then the
    revisions compared, which the digest leaves out (a base that moved changes no figure)."""
    from pipeline.markdown import comparison_markdown, dollars, text

    lines = ["## Storyboards in this pull request", ""]
    saying = [f for f in found if f.says]
    if not saying:
        lines.append("No storyboard change here touches a render's cost or a film.")
    else:
        lines += [
            "| storyboard | renders added | still to pay | every render, before → after | films |",
            "|:--|--:|--:|--:|--:|",
        ]
        for f in saying:
            c = f.comparison
            if c is None:
                why = f"does not plan: {len(f.problems)} problem(s)" if f.problems else "see below"
                lines.append(f"| {text(f.spec)} | {why} | | | |")
                continue
            lines.append(
                f"| {text(f.spec)} | {c.added_renders} | {dollars(c.to_pay)} | "
                f"{dollars(c.old.cost)} → {dollars(c.new.cost)} | {len(c.sequences)} |"
            )
    for f in saying:
        lines.append("")
        if f.comparison is None:
            said = (*f.problems, *f.warnings)
            lines += [f"### {text(f.spec)}", "", *(f"- {text(p)}" for p in said)]
        else:
            lines.append(comparison_markdown(f.comparison, f.spec).rstrip())
    content = "\n".join(lines)
    if len(content) > MAX_COMMENT:
        content = content[:MAX_COMMENT].rsplit("\n", 1)[0] + "\n\n(cut short: the whole report "
        content += "is in the job's summary)"
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    say = "yes" if saying else "no"
    footer = (
        f"\n\n<sub>Against {text(base)} (`{since}`, where this branch leaves it). No API key was "
        "used: nothing was rendered for money; previews are local animatics.</sub>\n"
    )
    return f"{MARKER} digest={digest} say={say} -->\n{content}{footer}"


def _said(body: str) -> tuple[str, bool] | None:
    """The digest and whether the change is worth a comment, from a body's marker."""
    found = re.search(re.escape(MARKER) + r" digest=([0-9a-f]+) say=(yes|no) -->", body)
    return (found.group(1), found.group(2) == "yes") if found else None


# -- comment -------------------------------------------------------------------------------


class CommentError(StoryboardError):
    """GitHub did not take the comment."""


@dataclass(frozen=True)
class Existing:
    id: int | None  # None: the comment is a file
    body: str


def comment(
    body: str,
    to_file: Path | None,
    artifact_url: str,
    github: GitHub,
) -> str:
    """Create or edit the pull request's one comment; what was done, in a word: created,
    updated, unchanged, or skipped (nothing worth saying, and no comment yet)."""
    said = _said(body)
    if said is None:
        raise UserError("the comment's body has no marker", "make it with `report`")
    digest, worth = said
    if artifact_url:
        body += f"\n[The contact sheets of the previews]({artifact_url}) (a zip of PNGs).\n"
    existing = _read_file(to_file) if to_file else _find_on_github(github)
    if existing is None and not worth:
        return "skipped"
    if existing is not None and (_said(existing.body) or ("", False))[0] == digest:
        return "unchanged"
    if to_file is not None:
        to_file.parent.mkdir(parents=True, exist_ok=True)
        to_file.write_text(body, encoding="utf-8")
    else:
        _post(github, body, existing.id if existing else None)
    return "created" if existing is None else "updated"


def _read_file(path: Path) -> Existing | None:
    return Existing(None, path.read_text(encoding="utf-8")) if path.is_file() else None


def _client(github: GitHub) -> Any:
    import httpx

    if github.number is None or not github.repository:
        raise UserError("not a pull request: no comment", "run on `pull_request` events")
    return httpx.Client(
        base_url=f"{github.api_url}/repos/{github.repository}/issues/",
        headers={
            "Authorization": f"Bearer {github.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        },
        timeout=30.0,
    )


def _find_on_github(github: GitHub) -> Existing | None:
    """The comment the marker names among the pull request's (100 a page)."""
    with _client(github) as client:
        page = 1
        while True:
            answer = _answer(
                client.get(f"{github.number}/comments", params={"per_page": 100, "page": page})
            )
            for item in answer:
                if isinstance(item, dict) and str(item.get("body", "")).startswith(MARKER):
                    return Existing(int(item["id"]), str(item["body"]))
            if len(answer) < 100:
                return None
            page += 1


def _post(github: GitHub, body: str, existing: int | None) -> None:
    with _client(github) as client:
        if existing is None:
            _answer(client.post(f"{github.number}/comments", json={"body": body}))
        else:
            _answer(client.patch(f"comments/{existing}", json={"body": body}))


def _answer(response: Any) -> Any:
    if response.status_code >= 400:
        try:
            said = response.json().get("message", "")
        except ValueError:
            said = response.text[:200]
        raise CommentError(f"GitHub answered {response.status_code}: {said}")
    return response.json()


# -- the command ----------------------------------------------------------------------------


def _git(args: list[str], cwd: Path) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = result.stderr.strip().splitlines()
        raise UserError(
            f"git {args[0]}: {said[-1] if said else f'exit code {result.returncode}'}",
            "check out the repository with its history (actions/checkout with fetch-depth: 0)",
        )
    return result.stdout.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.pull_request", description=__doc__.splitlines()[0]
    )
    steps = parser.add_subparsers(dest="step", required=True)
    made = steps.add_parser("report", help="check, price, preview; write the comment's body")
    made.add_argument("paths", nargs="*", type=Path, help="storyboards or folders (default: all)")
    made.add_argument(
        "--base", default="", help="the revision to compare with (default: the pull request's base)"
    )
    made.add_argument("--previews", choices=PREVIEWS, default="changed")
    made.add_argument(
        "--out", type=Path, required=True, help="where the body and contact sheets go"
    )
    post = steps.add_parser("comment", help="create or update the pull request's comment")
    post.add_argument("--body", type=Path, required=True)
    post.add_argument("--to-file", default="", help="write the comment to this file instead")
    post.add_argument("--artifact-url", default="", help="where the contact sheets were uploaded")
    return parser


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = _parser().parse_args(argv)
    given = os.environ if environ is None else environ
    github = GitHub.read(given)
    try:
        if args.step == "report":
            top = Path(_git(["rev-parse", "--show-toplevel"], Path.cwd())).resolve()
            base = args.base or github.base
            if not base:
                raise UserError(
                    "no base to compare with", "give --base REV, or run on a pull request"
                )
            environment = Environment.read(given)
            return report(top, base, list(args.paths), args.previews, args.out, github, environment)
        body = args.body.read_text(encoding="utf-8")
        done = comment(
            body, Path(args.to_file) if args.to_file else None, args.artifact_url, github
        )
    except CommentError as exc:
        print(f"::warning::{_data('no comment: ' + exc.message)}")
        return 0
    except StoryboardError as exc:
        print(printable(exc.render()), file=sys.stderr)
        return exc.exit_code
    github.set_output("comment", done)
    print(f"storyboard: comment {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
