"""Storyboards in pull requests (issue 35): the Markdown and JSON diff, the contact sheet,
thumbnails made in process, and the GitHub Action's own script run on a real repository of
two commits (its comment written to a file: nothing leaves the machine)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import yaml

from pipeline import contact_sheet as sheet
from pipeline import media, pull_request
from pipeline.compare import Comparison, ShotChange, Side
from pipeline.thumbnails import thumbnail
from tests.conftest import REPO

# -- thumbnails ---------------------------------------------------------------------------


def _pixels(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)


def _colour_at_middle(path: Path) -> tuple[int, int, int]:
    picture = _pixels(path)
    r, g, b = picture[picture.shape[0] // 2, picture.shape[1] // 2]
    return int(r), int(g), int(b)


def _three_colours(folder: Path) -> Path:
    """6 s at 25 fps: red, green, blue, 2 s each; keyframes at 0 and 4 s (red and blue)."""
    clip = folder / "colours.mp4"
    media.run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=red:s=320x180:r=25:d=2",
         "-f", "lavfi", "-i", "color=c=green:s=320x180:r=25:d=2",
         "-f", "lavfi", "-i", "color=c=blue:s=320x180:r=25:d=2",
         "-filter_complex", "[0][1][2]concat=n=3:v=1[v]", "-map", "[v]",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "100", "-pix_fmt", "yuv420p",
         str(clip)],
        "make a clip of three colours",
    )  # fmt: skip
    return clip


def test_a_thumbnail_is_the_keyframe_before_its_moment_and_a_poster_the_exact_frame(
    tmp_path: Path,
) -> None:
    clip = _three_colours(tmp_path)
    first = thumbnail(clip, tmp_path / "first.jpg", at=3.0, width=160)
    exact = thumbnail(clip, tmp_path / "exact.jpg", at=3.0, width=160, exact=True)
    later = thumbnail(clip, tmp_path / "later.jpg", at=5.0, width=160)
    assert _pixels(first).shape == (90, 160, 3)
    red, green, blue = (_colour_at_middle(p) for p in (first, exact, later))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert green[1] > 100 and green[0] < 60 and green[2] < 60  # lavfi's green is 0x008000
    assert blue[2] > 200 and blue[0] < 60 and blue[1] < 60


def test_a_thumbnail_of_a_still_image(tmp_path: Path) -> None:
    image = tmp_path / "still.png"
    media.run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=red:s=640x360", "-frames:v", "1", str(image)],
        "draw a still",
    )
    made = thumbnail(image, tmp_path / "thumbs" / "still.jpg", at=0.0, width=320)
    assert _pixels(made).shape == (180, 320, 3)
    assert _colour_at_middle(made)[0] > 200


# -- the diff as Markdown and JSON ------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout


def _committed_edit(project: Path, old: str, new: str) -> Path:
    """The bundled ballroom storyboard committed, then committed again with `old` -> `new`."""
    spec = project / "specs" / "ballroom.yaml"
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "first cut")
    spec.write_text(spec.read_text().replace(old, new))
    git(project, "commit", "-qam", "an edit")
    return spec


def _cells(row: str) -> list[str]:
    """A Markdown table row's cells (a pipe escaped with a backslash is not a border)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def test_the_markdown_diff_of_a_committed_edit_has_a_row_with_the_word_diff_and_price(
    project: Path, cli
) -> None:
    spec = _committed_edit(project, "A single white glove", "A single red glove")
    result = cli("diff", "HEAD~1", "HEAD", spec, "--format", "markdown")
    assert result.code == 0, result.err
    rows = [line for line in result.out.splitlines() if line.startswith("| changed |")]
    assert rows, result.out
    _, shot, _, prompt, price = _cells(rows[0])
    assert shot == "**glove**"
    assert "A single ~~white~~ **red** glove" in prompt
    assert re.fullmatch(r"\\\$0\.28", price)  # a dollar sign GitHub shows, not maths
    assert "| **still to pay** | | **\\$0.56** |" in result.out  # two takes, none cached
    assert "**teaser--golden-dusk** changed" in result.out

    data = json.loads(cli("diff", "HEAD~1", "HEAD", spec, "--format", "json").out)
    glove = next(c for c in data["shots"] if c["label"] == "glove" and c["take"] == 1)
    assert ["removed", "white"] in glove["prompt_diff"]
    assert ["added", "red"] in glove["prompt_diff"]
    assert glove["price"] == 0.28 and data["to_pay"] == 0.56
    people = cli("diff", "HEAD~1", "HEAD", spec).out  # the terminal's, as before
    assert "prompt changed: A single [-white-] {+red+} glove" in people


def test_nothing_a_prompt_says_becomes_markup_a_mention_or_html(project: Path, cli) -> None:
    hostile = "A single | <!-- storyboard --> @octocat *glove* [link](x) $1 $2"
    spec = _committed_edit(project, "A single white glove", hostile)
    out = cli("diff", "HEAD~1", "HEAD", spec, "--format", "markdown").out
    row = next(line for line in out.splitlines() if line.startswith("| changed |"))
    assert len(_cells(row)) == 5
    assert "<!--" not in out and "@octocat" not in out and "@\u200boctocat" in row
    assert "\\*glove\\*" in row and "\\[link\\](x)" in row and "\\$1 \\$2" in row


# -- the contact sheet ------------------------------------------------------------------------

GLOVE_TAKES = 2  # the glove of ballroom.yaml: shared by both lights, two takes


def _box(picture: np.ndarray, index: int) -> np.ndarray:
    """The pixels of the poster box of the sheet's `index`th render."""
    row, column = divmod(index, sheet.COLUMNS)
    left = sheet.GUTTER + column * (sheet.BOX_WIDTH + sheet.GUTTER)
    top = sheet.HEADER + row * (sheet.BOX_HEIGHT + sheet.CAPTION + sheet.GUTTER)
    return picture[top : top + sheet.BOX_HEIGHT, left : left + sheet.BOX_WIDTH]


def _framed(picture: np.ndarray, index: int) -> bool:
    """Whether the render's box is framed as one the change touches (orange)."""
    row, column = divmod(index, sheet.COLUMNS)
    left = sheet.GUTTER + column * (sheet.BOX_WIDTH + sheet.GUTTER)
    top = sheet.HEADER + row * (sheet.BOX_HEIGHT + sheet.CAPTION + sheet.GUTTER)
    return bool(np.abs(picture[top + 20, left - 2] - np.array(sheet.TOUCHED)).max() < 8)


def assert_sheet_shows_the_glove_first(png: Path) -> None:
    """A PNG at least 1,200 px wide; the glove's takes first, framed, each a real poster
    (many colours, not one); a render not built is an empty grey box."""
    picture = _pixels(png)
    assert picture.shape[1] >= 1200
    for index in range(GLOVE_TAKES):
        poster = _box(picture, index)
        assert _framed(picture, index)
        assert poster.std() > 10 and len(np.unique(poster.reshape(-1, 3), axis=0)) > 50
    empty = _box(picture, GLOVE_TAKES)  # not in the build of the glove alone
    assert not _framed(picture, GLOVE_TAKES)
    assert (empty == np.array(sheet.EMPTY)).all(axis=2).mean() > 0.95


def test_the_contact_sheet_puts_what_changed_first_with_real_posters(project: Path, cli) -> None:
    spec = _committed_edit(project, "A single white glove", "A single red glove")
    assert cli("build", spec, "--preview", "-q", "--only", "glove").code == 0
    png = project / "out" / "sheet.png"
    result = cli("review", spec, "--preview", "--contact-sheet", png, "--changed-from", "HEAD~1")
    assert result.code == 0, result.err
    assert result.out.strip() == str(png)
    assert_sheet_shows_the_glove_first(png)
    refused = cli("review", spec, "--changed-from", "HEAD~1")
    assert refused.code == 2 and "--contact-sheet" in refused.err


# -- the GitHub Action ------------------------------------------------------------------------

ACTION = REPO / "action.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def test_the_repository_ships_a_composite_action_whose_scripts_paste_no_input() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    assert [s["uses"].split("@")[0] for s in steps if "uses" in s] == [
        "actions/setup-python",
        "actions/upload-artifact",
    ]
    for step in steps:
        # An input pasted into a script could run as code (a branch named `$(...)`).
        assert "run" not in step or not EXPRESSION.search(step["run"]), step["name"]


class Runner:
    """The action's own steps run as a runner would on a pull request: each `run:` step in
    bash with the environment it is given, its expressions and outputs; `uses:` steps and
    the installation are left out (storyboard is installed here). GitHub is not called:
    the comment goes to a file, and its API address is one nothing answers on."""

    def __init__(self, repo: Path, work: Path, base: str, inputs: dict[str, str]) -> None:
        self.repo, self.work = repo, work
        action = yaml.safe_load(ACTION.read_text())
        self.defaults = {name: str(i.get("default", "")) for name, i in action["inputs"].items()}
        self.steps = action["runs"]["steps"]
        self.inputs = {**self.defaults, **inputs}
        event = work / "event.json"
        event.write_text(json.dumps({"pull_request": {"number": 7, "base": {"sha": base}}}))
        self.environ = {
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", str(work)),
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": "team/films",
            "GITHUB_BASE_REF": "main",
            "GITHUB_RUN_ID": "42",
            "GITHUB_API_URL": "http://127.0.0.1:9",  # the discard port: nothing is sent
            "GITHUB_WORKSPACE": str(repo),
            "GITHUB_STEP_SUMMARY": str(work / "summary.md"),
            "RUNNER_TEMP": str(work / "runner-temp"),
        }

    def run(self) -> dict[str, tuple[int, str, dict[str, str]]]:
        """Each step run: its exit code, what it printed, its outputs."""
        done: dict[str, tuple[int, str, dict[str, str]]] = {}
        shutil.rmtree(self.work / "runner-temp", ignore_errors=True)
        (self.work / "runner-temp").mkdir()
        for number, step in enumerate(self.steps):
            if "run" not in step or step["name"] == "Install storyboard":
                continue
            outputs = self.work / f"output-{number}"
            outputs.write_text("")
            env = {name: self._evaluate(str(v), done) for name, v in step.get("env", {}).items()}
            ran = subprocess.run(
                ["bash", "-e", "-c", step["run"]],
                cwd=self.repo,
                env={**self.environ, **env, "GITHUB_OUTPUT": str(outputs)},
                capture_output=True,
                text=True,
                timeout=300,
            )
            said = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
            done[step["id"]] = (ran.returncode, ran.stdout + ran.stderr, said)
        return done

    def _evaluate(self, value: str, done: dict[str, tuple[int, str, dict[str, str]]]) -> str:
        def one(found: re.Match[str]) -> str:
            name = found.group(1)
            if name.startswith("inputs."):
                return self.inputs[name.removeprefix("inputs.")]
            if name.startswith("steps."):
                step, _, output = name.removeprefix("steps.").split(".", 2)
                return done.get(step, (0, "", {}))[2].get(output, "")
            return {"github.action_path": str(REPO), "github.token": ""}[name]

        return EXPRESSION.sub(one, value)


def test_the_action_comments_once_on_a_pull_request_of_two_commits(
    project: Path, tmp_path: Path
) -> None:
    spec = _committed_edit(project, "A single white glove", "A single red glove")
    base = git(project, "rev-parse", "HEAD~1").strip()
    comment = tmp_path / "comment.md"
    runner = Runner(project, tmp_path, base, {"comment-file": str(comment)})

    done = runner.run()
    code, said, outputs = done["report"]
    assert code == 0, said
    assert "1 storyboard(s) touched" in said  # the other storyboards' files did not change
    body = comment.read_text()
    row = next(line for line in body.splitlines() if line.startswith("| changed | **glove** |"))
    assert "A single ~~white~~ **red** glove" in row and "\\$0.28" in row
    assert body.startswith(pull_request.MARKER)
    assert body.count(pull_request.MARKER) == 1
    assert done["comment"][2] == {"comment": "created"}
    assert "## Storyboards in this pull request" in (tmp_path / "summary.md").read_text()
    sheets = sorted(Path(outputs["sheets"]).glob("*.png"))
    assert [p.name for p in sheets] == ["specs-ballroom.yaml.png"]
    assert_sheet_shows_the_glove_first(sheets[0])

    # A push that changes nothing the comment says (a YAML comment) notifies nobody.
    spec.write_text(spec.read_text() + "# a note for the team\n")
    git(project, "commit", "-qam", "a note")
    runner.inputs["previews"] = "none"
    done = runner.run()
    assert done["report"][0] == 0 and done["comment"][2] == {"comment": "unchanged"}
    assert comment.read_text() == body

    # A storyboard that does not plan: its problem on its line, the check fails, and the
    # comment says so.
    spec.write_text(spec.read_text().replace("  duration: 6\n", "  duration: 6\n  colour: red\n"))
    git(project, "commit", "-qam", "a mistake")
    done = runner.run()
    code, said, _ = done["report"]
    line = spec.read_text().splitlines().index("  colour: red") + 1
    assert code == 2
    assert f"::error file=specs/ballroom.yaml,line={line},col=3," in said
    assert done["comment"][2] == {"comment": "updated"}
    assert "does not plan: 1 problem(s)" in comment.read_text()


class FakeGitHub(ThreadingHTTPServer):
    """GitHub's issue comments API, as far as the comment step uses it, on loopback."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GitHubHandler)
        self.comments: list[dict[str, object]] = [{"id": 1, "body": "LGTM, but the glove?"}]
        self.calls: list[tuple[str, str, str]] = []  # method, path, authorization

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _GitHubHandler(BaseHTTPRequestHandler):
    server: FakeGitHub

    def log_message(self, *args: object) -> None:
        return None

    def _answer(self, status: int, value: object) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sent(self) -> dict[str, object]:
        self.server.calls.append((self.command, self.path, self.headers.get("Authorization", "")))
        if self.headers.get("Authorization") == "Bearer read-only":
            return {}
        length = int(self.headers.get("Content-Length", "0"))
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self) -> None:
        self._sent()
        assert self.path == "/repos/team/films/issues/7/comments?per_page=100&page=1"
        self._answer(200, self.server.comments)

    def do_POST(self) -> None:
        sent = self._sent()
        if not sent:
            self._answer(403, {"message": "Resource not accessible by integration"})
            return
        made = {"id": len(self.server.comments) + 100, "body": sent["body"]}
        self.server.comments.append(made)
        self._answer(201, made)

    def do_PATCH(self) -> None:
        sent = self._sent()
        number = int(self.path.rsplit("/", 1)[1])
        found = next(c for c in self.server.comments if c["id"] == number)
        found["body"] = sent["body"]
        self._answer(200, found)


def _report(added: float) -> pull_request.Found:
    """What `report` finds of a storyboard whose change adds one render of `added` USD."""
    shots = [ShotChange("added", "glove", 1, (), (), (("same", "a glove"),), (), 1, added, added)]
    return pull_request.Found(
        "specs/ballroom.yaml",
        Comparison(Side("base", 1.0, 2), Side("this pull request", 1.0 + added, 3), shots,
                   added_renders=1, added_cost=added, to_pay=added),
    )  # fmt: skip


def test_the_comment_step_makes_one_comment_through_github_and_edits_only_what_changed(
    tmp_path: Path, capsys
) -> None:
    server = FakeGitHub()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "base": {"sha": "0" * 40}}}))
    environ = {"GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": "team/films",
               "GITHUB_API_URL": server.url, "GITHUB_TOKEN": "t0ken"}  # fmt: skip

    def post(*found: pull_request.Found, token: str = "t0ken") -> str:
        body = tmp_path / "body.md"
        body.write_text(pull_request.comment_body(list(found), "main", "abc1234"))
        code = pull_request.main(
            ["comment", "--body", str(body), "--artifact-url", "https://example.com/a/1"],
            {**environ, "GITHUB_TOKEN": token},
        )
        assert code == 0
        return capsys.readouterr().out

    try:
        assert "comment created" in post(_report(0.28))
        assert "comment unchanged" in post(_report(0.28))
        assert "comment updated" in post(_report(0.56))
        ours = [c for c in server.comments if str(c["body"]).startswith(pull_request.MARKER)]
        assert len(ours) == 1 and len(server.comments) == 2
        assert "\\$0.56" in str(ours[0]["body"]) and "https://example.com/a/1" in str(
            ours[0]["body"]
        )
        assert {method for method, _, _ in server.calls} == {"GET", "POST", "PATCH"}
        assert {auth for _, _, auth in server.calls} == {"Bearer t0ken"}
        server.comments[:] = server.comments[:1]
        assert "comment skipped" in post(pull_request.Found("specs/ballroom.yaml"))
        said = post(_report(0.28), token="read-only")  # a fork's pull request: warned, not failed
        assert "::warning::no comment: GitHub answered 403" in said
    finally:
        server.shutdown()
        server.server_close()


def test_a_storyboard_new_in_a_revision_is_compared_with_nothing(project: Path, cli) -> None:
    spec = _committed_edit(project, "A single white glove", "A single red glove")
    copy = project / "specs" / "second.yaml"
    copy.write_text(spec.read_text().replace("name: ballroom", "name: second"))
    git(project, "add", "specs/second.yaml")
    git(project, "commit", "-qm", "a second storyboard")
    data = json.loads(cli("diff", "HEAD~1", "HEAD", copy, "--format", "json").out)
    assert data["old"] == {"name": "HEAD~1", "cost": 0.0, "renders": 0, "present": False}
    assert {c["kind"] for c in data["shots"]} == {"added"}
    assert data["added_cost"] == data["new"]["cost"] > 0
    gone = cli("diff", "HEAD~2", "HEAD~1", copy)
    assert gone.code == 2 and "is in neither revision" in gone.err
