"""Decisions on takes, kept in git beside the storyboard: the file (read, written, located
errors), the decision core on in-memory shots (table-driven), and `storyboard pick /
approve / reject`, `status -v`, `build --approved` through the command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline import deciding, decisions
from pipeline.deciding import Act
from pipeline.decisions import Decided, Decision, Decisions
from pipeline.errors import UserError
from pipeline.nodes import Node
from pipeline.render import KINDS
from tests.conftest import a_shot, write

SPEC = """\
version: 1
name: reel
defaults: {resolution: 768p, duration: 6}
matrix:
  mood: [calm, storm]
shots:
  - id: sea
    prompt: "the sea, {{ mood }}"
    takes: 3
    pick: 1
  - id: gull
    prompt: a gull hangs in the wind
sequences:
  - {id: reel, shots: [sea, gull], preset: ultrafast}
  - {id: birds, shots: [gull], preset: ultrafast}
"""


def take(label: str, variant: str, number: int, takes: int = 3, picked: int = 1) -> Node:
    return a_shot(
        f"{label}-{variant}-{number}",
        shot_id=label,
        label=label,
        variant=variant,
        take=number,
        takes=takes,
        picked=number == picked,
        fps=24,
    )


PAID, PREVIEW = KINDS["runware"], KINDS["preview"]
SEA = [take("sea", v, n) for v in ("calm", "storm") for n in (1, 2, 3)]
NONE = Decisions(Path("specs/reel.picks.yaml"))
WITH_CALM = Decisions(
    NONE.path, {("sea", "calm"): Decided(Decision(take=2, verdict="approved", note="keep"), 4)}
)


@pytest.mark.parametrize(
    ("given", "variants", "act", "lines"),
    [
        # The same decision in every variant: one line for the shot.
        (NONE, (), Act("pick", 2), {("sea", ""): (2, None, 0, ""), **{}}),
        # One variant: its own line.
        (NONE, ("storm",), Act("pick", 3), {("sea", "storm"): (3, None, 0, "")}),
        # Approving names the picked take, when none is given.
        (NONE, ("calm",), Act("approve"), {("sea", "calm"): (1, "approved", 0, "")}),
        # Picking anew drops the approval of the take before, and keeps the note.
        (WITH_CALM, ("calm",), Act("pick", 3), {("sea", "calm"): (3, None, 0, "keep")}),
        # Rejecting with another take asks for one more, per variant.
        (
            NONE,
            ("calm", "storm"),
            Act("reject", another=True),
            {("sea", ""): (1, "rejected", 1, "")},
        ),
        # Different decisions before: a line per variant.
        (
            WITH_CALM,
            (),
            Act("note", note="too dark"),
            {
                ("sea", "calm"): (2, "approved", 0, "too dark"),
                ("sea", "storm"): (None, None, 0, "too dark"),
            },
        ),
    ],
)
def test_decide(
    given: Decisions,
    variants: tuple[str, ...],
    act: Act,
    lines: dict[tuple[str, str], tuple[int | None, str | None, int, str]],
) -> None:
    outcome = deciding.decide(given, SEA, "sea", variants, act)
    written = {
        name: (d.take, d.verdict, d.more, d.note)
        for name, d in outcome.changes.items()
        if d is not None
    }
    assert written == lines
    removed = {name for name, d in outcome.changes.items() if d is None}
    if ("sea", "") in lines:  # the shot's line replaces the variants' own
        assert removed == {("sea", "calm"), ("sea", "storm")}


@pytest.mark.parametrize(
    ("variants", "act", "message"),
    [
        ((), Act("pick", 4), "'sea [calm]' has 3 take(s), not 4"),
        (("dusk",), Act("pick", 1), "'sea' has no variant 'dusk'"),
    ],
)
def test_decide_refuses(variants: tuple[str, ...], act: Act, message: str) -> None:
    with pytest.raises(UserError) as raised:
        deciding.decide(NONE, SEA, "sea", variants, act)
    assert raised.value.message == message


def test_the_file_is_sorted_one_line_each_and_reads_back(tmp_path: Path) -> None:
    spec = tmp_path / "reel.yaml"
    entries = {
        ("sea", "storm"): Decision(take=3, verdict="rejected", more=1, note="too\ndark"),
        ("gull", ""): Decision(take=1, verdict="approved", by="Ana <ana@example.com>"),
        ("sea", ""): Decision(take=2),
    }
    decisions.write(Decisions(tmp_path / "reel.picks.yaml"), tmp_path, entries)
    text = (tmp_path / "reel.picks.yaml").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        "gull: {take: 1, verdict: approved, by: Ana <ana@example.com>}",
        "sea: {take: 2}",
        "sea [storm]: {take: 3, verdict: rejected, more: 1, note: too dark}",
    ]
    read = decisions.read(spec, PAID)
    assert read.problems == ()
    assert {name: d.decision for name, d in read.entries.items()} == {
        **entries,
        ("sea", "storm"): entries[("sea", "storm")].model_copy(update={"note": "too dark"}),
    }
    assert read.entries[("sea", "storm")].line == 6
    # What holds for a variant: its own line, else the shot's.
    assert read.find("sea", "sea", "storm")[0] == "sea [storm]"
    assert read.find("sea", "sea", "calm")[0] == "sea"


def test_every_mistake_of_the_file_is_located(tmp_path: Path) -> None:
    spec = tmp_path / "reel.yaml"
    write(
        tmp_path / "reel.picks.yaml",
        "sea: {take: 0}\n"
        "gull: {take: 1, colour: red}\n"
        "'two words': {take: 1}\n"
        "sea: {take: 2}\n"
        "hero: [1, 2]\n"
        "wave: {verdict: maybe}\n",
    )
    problems = decisions.read(spec, PAID).problems
    said = [(p.line, p.col, p.message) for p in problems]
    assert said == [
        (1, 13, "decision 'sea': take: input should be greater than or equal to 1"),
        (2, 17, "decision 'gull': colour: extra inputs are not permitted"),
        (3, 1, "'two words' names no shot: write `shot` or `shot [variant]`"),
        (5, 7, "decision 'hero': write {take: 2, verdict: approved}"),
        (6, 17, "decision 'wave': verdict: input should be 'approved' or 'rejected'"),
    ]
    assert all(p.path == str(tmp_path / "reel.picks.yaml") for p in problems)


@pytest.fixture
def reel(project: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    for key, value in (("user.name", "Ana Lima"), ("user.email", "ana@example.com")):
        subprocess.run(["git", "-C", str(project), "config", key, value], check=True)
    return write(project / "specs" / "reel.yaml", SPEC)


def test_pick_writes_the_decisions_file_and_wins_over_pick(cli, reel: Path) -> None:
    result = cli("pick", reel, "sea", "2", "--vars", "mood=storm", "--preview")
    assert result.code == 0, result.err
    said = "sea [storm]: take 2 picked (preview build: specs/reel.preview.picks.yaml)\n"
    assert result.out == said
    assert "nothing to render" in result.err
    text = (reel.parent / "reel.preview.picks.yaml").read_text()
    assert "sea [storm]: {take: 2, by: Ana Lima <ana@example.com>, at: '20" in text
    plan = json.loads(cli("plan", reel, "--preview", "--json").out)
    films = {s["name"]: s["shots"] for s in plan["sequences"]}
    keys = {(r["shot"], r["take"], tuple(r["variants"])): r["key"] for r in plan["shots"]}
    assert films["reel--storm"][0] == keys[("sea", 2, ("storm",))]  # over `pick: 1`
    assert films["reel--calm"][0] == keys[("sea", 1, ("calm",))]
    status = "".join(cli("status", reel, "--preview", "-v").out.split())  # rich folds lines
    assert "take2picked,over`pick:1`inthestoryboardin" in status
    assert "reel.preview.picks.yaml:4byAnaLimaon20" in status


def test_a_decision_names_its_line_when_wrong(cli, reel: Path) -> None:
    write(reel.parent / "reel.picks.yaml", "# mine\nsea [calm]: {take: 5}\nold: {take: 1}\n")
    result = cli("plan", reel)
    assert result.code == 2
    assert (
        "specs/reel.picks.yaml:2:1: decision 'sea [calm]': take 5 is more than the shot's 3 takes"
        in result.err
    )
    write(reel.parent / "reel.picks.yaml", "old: {take: 1}\n")
    result = cli("plan", reel)
    assert result.code == 0
    assert "reel.picks.yaml:1: 'old' is decided, and the storyboard has no such shot" in result.err


def test_another_take_is_priced_and_rendered_only_by_a_build(cli, reel: Path) -> None:
    before = json.loads(cli("plan", reel, "--json").out)["totals"]
    result = cli("reject", reel, "gull", "--another", "--note", "wings blur")
    assert result.code == 0, result.err
    said = "gull: take 1 rejected; one more take asked for (paid build: specs/reel.picks.yaml)\n"
    assert result.out == said
    # One new render (shared by both moods), priced as plan prices it.
    assert "1 more render(s), about $0.28: the next `storyboard build` makes them" in result.err
    after = json.loads(cli("plan", reel, "--json").out)["totals"]
    assert after["unique_renders"] == before["unique_renders"] + 1
    assert after["cost_needed"] == pytest.approx(before["cost_needed"] + 0.28)
    assert "gull: {take: 1, verdict: rejected, more: 1, note: wings blur" in (
        (reel.parent / "reel.picks.yaml").read_text()
    )


def test_build_approved_joins_only_films_whose_shots_are_all_approved(cli, reel: Path) -> None:
    assert cli("approve", reel, "gull", "--preview").code == 0
    assert cli("approve", reel, "sea", "--vars", "mood=calm", "--preview").code == 0
    result = cli("build", reel, "--preview", "--approved", "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    joined = sorted(s["sequence"] for s in summary["sequences"])
    assert joined == ["birds--calm", "birds--storm", "reel--calm"]
    assert "not joined (--approved): reel--storm: sea take 1 not approved" in result.err
    # Only what the approved films use is rendered: sea's takes in storm are left.
    rendered = {(s["shot"], s["variant"]) for s in summary["shots"]}
    assert ("sea", "storm") not in rendered and ("sea", "calm") in rendered
    # Picking another take drops the approval: its film is left out again.
    assert cli("pick", reel, "sea", "2", "--vars", "mood=calm", "--preview").code == 0
    result = cli("build", reel, "--preview", "--approved", "--json")
    assert "reel--calm: sea take 2 not approved" in result.err


def test_decisions_refuse_unknown_shots_and_variants(cli, reel: Path) -> None:
    result = cli("pick", reel, "wave", "1")
    assert result.code == 2 and "no shot 'wave' in" in result.err
    result = cli("approve", reel, "sea", "--vars", "mood=fog")
    assert result.code == 2 and "no variant has mood=fog" in result.err
    result = cli("pick", reel, "sea", "4")
    assert result.code == 2 and "'sea [calm]' has 3 take(s), not 4" in result.err
    result = cli("approve", reel, "sea", "--note", "x" * 1001)
    assert result.code == 2 and "a note is at most 1,000 characters, not 1,001" in result.err
    assert not (reel.parent / "reel.picks.yaml").exists()  # nothing was written


@pytest.mark.parametrize(
    ("decision", "used", "approved"),
    [
        (Decision(take=2, verdict="approved"), 2, True),
        # A film that names another take (`take: 3` in the sequence) uses one not approved.
        (Decision(take=2, verdict="approved"), 3, False),
        (Decision(take=2, verdict="rejected"), 2, False),
        (Decision(take=2), 2, False),
    ],
)
def test_approved_means_the_take_the_film_uses(
    decision: Decision, used: int, approved: bool
) -> None:
    given = Decisions(NONE.path, {("sea", ""): Decided(decision, 1)})
    assert deciding.approved(given, take("sea", "calm", used), "calm") is approved


def test_takes_asked_for_count_against_the_shot_limit(cli, reel: Path) -> None:
    # 4 renders a variant (sea's 3 takes, gull), 2 variants; 20 more of gull in each: 8 + 40.
    write(reel.parent / "reel.preview.picks.yaml", "gull: {more: 20}\n")
    result = cli("plan", reel, "--preview", "--max-shots", "45")
    assert result.code == 2 and "expands to 48 shots" in result.err
    assert cli("plan", reel, "--preview", "--max-shots", "48").code == 0


DUO = """\
version: 1
name: duo
defaults: {resolution: 768p, duration: 6}
shots:
  - {id: glove, prompt: a white glove drifts past the keys, takes: 2}
  - {id: keys, prompt: piano keys at dusk}
sequences:
  - {id: film, shots: [glove, keys], preset: ultrafast}
"""


def test_a_pick_decides_for_its_own_build_only(project: Path, cli, server) -> None:
    """Each build has its own decisions file, as it has its own lock: a pick on the
    animatics never changes the paid film or its lock, and a paid pick leaves the preview
    build as it was."""
    spec = write(project / "specs" / "duo.yaml", DUO)
    assert cli("build", spec).code == 0
    paid_lock = (project / "specs" / "duo.lock").read_bytes()
    paid = json.loads(cli("plan", spec, "--json").out)
    assert [f["status"] for f in paid["sequences"]] == ["current"]
    animatic = json.loads(cli("plan", spec, "--preview", "--json").out)["sequences"][0]["key"]

    result = cli("pick", spec, "glove", "2", "--preview")
    assert result.out == "glove: take 2 picked (preview build: specs/duo.preview.picks.yaml)\n"
    assert json.loads(cli("plan", spec, "--json").out) == paid  # the paid film is current
    assert (project / "specs" / "duo.lock").read_bytes() == paid_lock
    assert not (project / "specs" / "duo.picks.yaml").exists()
    preview = json.loads(cli("plan", spec, "--preview", "--json").out)
    assert preview["sequences"][0]["key"] != animatic  # the preview film joins take 2

    picked = (project / "specs" / "duo.preview.picks.yaml").read_text()
    result = cli("pick", spec, "glove", "2")
    assert result.out == "glove: take 2 picked (paid build: specs/duo.picks.yaml)\n"
    assert json.loads(cli("plan", spec, "--preview", "--json").out) == preview
    assert (project / "specs" / "duo.preview.picks.yaml").read_text() == picked
    changed = json.loads(cli("plan", spec, "--json").out)
    assert [f["status"] for f in changed["sequences"]] == ["changed"]
    assert cli("build", spec).code == 0  # a decision renders nothing: the film is joined again
    assert server.stats()["submits"] == 3


def test_both_decisions_files_are_for_git(cli, tmp_path: Path, monkeypatch) -> None:
    """`storyboard init`'s .gitignore leaves them to be committed, as the locks are."""
    monkeypatch.chdir(tmp_path)
    assert cli("init", "film").code == 0
    names = ["specs/first.picks.yaml", "specs/first.preview.picks.yaml", "specs/first.lock"]
    ignored = subprocess.run(
        ["git", "-C", "film", "check-ignore", *names], capture_output=True, text=True, check=False
    )
    assert ignored.returncode == 1 and ignored.stdout == ""  # 1: none of them is ignored
