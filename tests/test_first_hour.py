"""What a new user meets in the first hour: which build a command looks at, set-up, and
messages that say what to do."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import write

TINY = """\
version: 1
name: tiny
defaults: {model: acme:1@1, width: 320, height: 180, duration: 6}
shots:
  - {id: a, prompt: a lamp in an empty room}
sequences:
  - {id: s, shots: [a], preset: ultrafast}
"""


def test_each_look_at_a_build_says_which_and_points_at_the_other(project: Path, cli) -> None:
    spec = write(project / "specs" / "tiny.yaml", TINY)
    git(project, "init", "-q")
    git(project, "add", "specs/tiny.yaml")
    git(project, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "tiny")
    assert cli("build", spec, "--preview", "-q").code == 0
    lock = Path("specs") / "tiny.lock"
    for command in ("plan", "status", "diff"):
        result = cli(command, spec)
        assert result.code == 0, result.err
        assert result.out.startswith(
            f"The Runware build (paid renders) of {spec} (not built yet: no {spec.parent / lock.name})"
        ), command
        assert (
            "note: there is a preview build (local animatics: free): add --preview to look at it"
            in result.err
        ), command
        preview = cli(command, spec, "--preview")
        assert preview.out.startswith(
            f"The preview build (local animatics: free) of {spec} ({spec.parent}/tiny.preview.lock)"
        ), command
        assert "note: there is" not in preview.err
    review = cli("review", spec)
    assert "add --preview to look at it" in review.err
    helped = cli("status", "--help")
    assert "look at the preview build (local animatics: free) instead of the Runware" in " ".join(
        helped.out.split()
    )


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)
