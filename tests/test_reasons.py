"""Say why: each shot's and film's state and its reasons against the lock, a lock that reads
as a change of prompts, films kept by key, and two git revisions compared."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, write

SPEC = """\
version: 1
name: why
defaults: {resolution: 768p, duration: 6}
shots:
  - id: harbour
    template: why/harbour.j2
  - id: boat
    prompt: a red boat rocks at its mooring at dawn
    first_frame: assets/frame.jpg
sequences:
  - id: reel
    shots: [harbour, boat]
    preset: ultrafast
  - id: short
    shots: [{shot: harbour, out: 3}]
    preset: ultrafast
"""
HARBOUR = "A quiet harbour at dawn,\nfishing boats at rest, soft mist over the water\n"


@pytest.fixture
def why(project: Path) -> Path:
    write(project / "templates" / "why" / "harbour.j2", HARBOUR)
    shutil.copy(
        REPO / "specs" / "assets" / "raincoat.jpg", project / "specs" / "assets" / "frame.jpg"
    )
    return write(project / "specs" / "why.yaml", SPEC)


def plan_rows(cli, spec: Path) -> dict[str, dict]:
    result = cli("plan", spec, "--preview", "--json")
    assert result.code == 0, result.err
    return {row["shot"] + f"#{row['take']}": row for row in json.loads(result.out)["shots"]}


def test_each_reason_is_said(project: Path, cli, why: Path) -> None:
    assert cli("build", why, "--preview", "-q").code == 0
    rows = plan_rows(cli, why)
    assert {row["status"] for row in rows.values()} == {"cached"}

    write(project / "templates" / "why" / "harbour.j2", HARBOUR.replace("soft mist", "low fog"))
    harbour = plan_rows(cli, why)["harbour#1"]
    assert harbour["status"] == "changed"
    assert harbour["reasons"] == [
        "prompt changed: … fishing boats at rest, [-soft mist-] {+low fog+} over the water"
    ]
    table = cli("plan", why, "--preview", "--why").out
    assert "[-soft mist-] {+low fog+}" in table
    write(project / "templates" / "why" / "harbour.j2", HARBOUR)

    write(
        why,
        SPEC.replace(
            "    template: why/harbour.j2\n",
            "    template: why/harbour.j2\n    resolution: 1080p\n",
        ),
    )
    assert plan_rows(cli, why)["harbour#1"]["reasons"] == ["size: 1366x768 -> 1920x1080"]

    write(
        why,
        SPEC.replace(
            "first_frame: assets/frame.jpg", "first_frame: assets/frame.jpg\n    takes: 2"
        ),
    )
    rows = plan_rows(cli, why)
    assert rows["boat#1"]["status"] == "cached"
    assert (rows["boat#2"]["status"], rows["boat#2"]["reasons"]) == ("new", ["take 2 added"])

    write(why, SPEC.replace("id: boat\n", "id: boat\n    duration: 10\n"))
    assert plan_rows(cli, why)["boat#1"]["reasons"] == ["duration: 6 s -> 10 s"]

    write(
        why,
        SPEC.replace(
            "shots:\n  - id: harbour", "shots:\n  - id: gull\n    prompt: a gull\n  - id: harbour"
        ),
    )
    assert plan_rows(cli, why)["gull#1"]["reasons"] == ["new shot"]
    write(why, SPEC)

    shutil.copy(
        REPO / "specs" / "assets" / "luthier.jpg", project / "specs" / "assets" / "frame.jpg"
    )
    assert plan_rows(cli, why)["boat#1"]["reasons"] == ["first frame changed"]
    shutil.copy(
        REPO / "specs" / "assets" / "raincoat.jpg", project / "specs" / "assets" / "frame.jpg"
    )

    forced = cli("build", why, "--preview", "-v", "--force", "boat")
    assert "render   boat: cached, forced (--force)" in forced.err

    shutil.rmtree(project / ".storyboard")  # a fresh clone: the lock in git, no cache
    (project / ".storyboard").mkdir()
    rows = plan_rows(cli, why)
    assert {row["status"] for row in rows.values()} == {"missing"}
    assert rows["boat#1"]["reasons"][0].startswith("in the lock but not in this cache")
    status = cli("status", why, "--preview")
    assert "why: shots 0/2 cached, 2 missing; sequences 2/2 current" in status.out


def test_films_say_why_they_are_joined(project: Path, cli, why: Path) -> None:
    assert cli("build", why, "--preview", "-q").code == 0
    write(why, SPEC.replace("[{shot: harbour, out: 3}]", "[{shot: harbour, out: 4}]"))
    films = {
        s["name"]: s for s in json.loads(cli("plan", why, "--preview", "--json").out)["sequences"]
    }
    assert films["reel"]["status"] == "current"
    assert films["short"]["status"] == "changed"
    assert films["short"]["reasons"] == ["trim of harbour: 0.0-3.0 s -> 0.0-4.0 s"]


def test_a_lock_reads_as_a_change_of_prompts(project: Path, cli, why: Path) -> None:
    assert cli("build", why, "--preview", "-q").code == 0
    lock_path = project / "specs" / "why.preview.lock"
    before = lock_path.read_text()
    write(project / "templates" / "why" / "harbour.j2", HARBOUR.replace("dawn", "dusk"))
    assert cli("build", why, "--preview", "-q").code == 0
    after = lock_path.read_text()
    removed = [line for line in before.splitlines() if line not in after.splitlines()]
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert any('"positivePrompt": "A quiet harbour at dawn,' in line for line in removed)
    assert any('"positivePrompt": "A quiet harbour at dusk,' in line for line in added)
    entry = next(e for e in json.loads(after)["shots"].values() if e["shot"] == "harbour")
    assert entry["request"]["model"] == "minimax:4@1" and entry["request"]["width"] == 1366


def test_a_lock_of_the_first_format_still_loads(project: Path, cli, why: Path) -> None:
    assert cli("build", why, "--preview", "-q").code == 0
    lock_path = project / "specs" / "why.preview.lock"
    lock = json.loads(lock_path.read_text())
    lock["version"] = 1
    for entry in lock["shots"].values():
        del entry["request"]
    for entry in lock["sequences"].values():
        del entry["recipe"], entry["shots"]
    lock_path.write_text(json.dumps(lock))
    write(project / "templates" / "why" / "harbour.j2", HARBOUR.replace("dawn", "dusk"))
    rows = plan_rows(cli, why)
    assert rows["harbour#1"]["reasons"] == [
        "changed since the lock (the lock does not say what was sent)"
    ]


def test_a_revert_after_a_one_sequence_build_joins_nothing(project: Path, cli, why: Path) -> None:
    assert cli("build", why, "--preview", "-q").code == 0
    write(project / "templates" / "why" / "harbour.j2", HARBOUR.replace("dawn", "dusk"))
    assert cli("build", why, "--preview", "-q", "short").code == 0
    write(project / "templates" / "why" / "harbour.j2", HARBOUR)
    result = cli("build", why, "--preview", "--json")
    summary = json.loads(result.out)
    assert summary["rendered"] == 0
    assert {s["sequence"]: s["status"] for s in summary["sequences"]} == {
        "reel": "current",
        "short": "placed",
    }
    lock = json.loads((project / "specs" / "why.preview.lock").read_text())
    assert sorted(lock["sequences"]) == ["reel", "short"]


def test_plan_costs_the_whole_storyboard_and_nothing_for_previews(project: Path, cli) -> None:
    spec = project / "specs" / "ballroom.yaml"
    paid = json.loads(cli("plan", spec, "--json").out)["totals"]
    assert paid["cost_total"] == paid["cost_needed"] == round(4 * 0.49 + 2 * 0.56 + 2 * 0.28, 2)
    free = json.loads(cli("plan", spec, "--preview", "--json").out)
    assert free["totals"]["cost_total"] == free["totals"]["cost_needed"] == 0
    assert {row["estimate"] for row in free["shots"]} == {0}
    assert (
        "cost of what is needed: $0.00 (the whole storyboard: $0.00)"
        in cli("plan", spec, "--preview").out
    )


def _git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_diff_compares_two_commits_without_touching_the_work_tree(
    project: Path, cli, why: Path
) -> None:
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "first cut")
    template = project / "templates" / "why" / "harbour.j2"
    write(template, HARBOUR.replace("soft mist", "low fog"))
    write(why, SPEC.replace("prompt: a red boat", "resolution: 1080p\n    prompt: a red boat"))
    _git(project, "commit", "-qam", "fog, and a bigger boat")
    write(template, "an edit in the work tree, not committed\n")
    result = cli("diff", "HEAD~1", "HEAD", why, "--json")
    assert result.code == 0, result.err
    diff = json.loads(result.out)
    changed = {c["label"]: c["reasons"] for c in diff["shots"] if c["kind"] == "changed"}
    assert changed == {
        "harbour": [
            "prompt changed: … fishing boats at rest, [-soft mist-] {+low fog+} over the water"
        ],
        "boat": ["size: 1366x768 -> 1920x1080"],
    }
    assert diff["old"]["cost"] == 0.56 and diff["new"]["cost"] == 0.77
    assert diff["added_renders"] == 2 and diff["added_cost"] == 0.77
    assert {s["name"] for s in diff["sequences"]} == {"reel", "short"}
    assert template.read_text() == "an edit in the work tree, not committed\n"
    assert _git(project, "status", "--porcelain").strip() == "M templates/why/harbour.j2"
    people = cli("diff", "HEAD~1", "HEAD", why).out
    assert "the change adds 2 render(s), $0.77" in people
    assert "[-soft mist-] {+low fog+}" in people


def test_a_diff_names_every_variant_of_a_shared_render_and_only_what_changed(
    project: Path, cli
) -> None:
    spec = write(
        project / "specs" / "shared.yaml",
        "version: 1\nname: shared\n"
        "vars: {lines: {en: Meet the can., de: Das ist die Dose.}}\n"
        "matrix: {flavour: [yuzu, cocoa], lang: [en, de]}\n"
        "voices:\n  - {id: vo, text: '{{ lines[lang] }}', voice: narrator}\n"
        "shots:\n  - {id: pour, prompt: '{{ flavour }} pours into a glass'}\n"
        "sequences:\n  - id: spot\n    shots: [pour]\n    voice: {voice: vo}\n"
        "    text: [{text: '{{ lang }}', position: bottom}]\n",
    )
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "first cut")
    write(spec, spec.read_text().replace("Meet the can.", "Meet the new can."))
    diff = json.loads(cli("diff", spec, "--preview", "--json").out)
    # The English voice is one render both flavours share: the change names both.
    assert diff["shots"] == [
        {
            "kind": "changed",
            "label": "vo",
            "take": 1,
            "variants": ["cocoa-en", "yuzu-en"],
            "reasons": ['setting speech.text: "Meet the can." -> "Meet the new can."'],
            "prompt_diff": [["same", "Meet the"], ["added", "new"], ["same", "can."]],
            "others": [],
            "renders": 1,
            "price": 0.0,
            "to_pay": 0.0,
        }
    ]
    # Each English film changed by its voice alone: nothing else is said of it.
    assert {s["name"]: s["reasons"] for s in diff["sequences"]} == {
        name: ["the voice-over changed (vo's render)"]
        for name in ("spot--yuzu-en", "spot--cocoa-en")
    }
