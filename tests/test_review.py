"""The review page in headless Chromium, and `storyboard gc`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import av
import pytest

from pipeline.cache import Cache, JournalEntry
from tests.conftest import build_once, copy_built, write

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SPEC = """\
version: 1
name: reel
# A model the catalogue does not know takes any size: small clips keep these tests quick.
defaults: {model: acme:1@1, width: 320, height: 180, duration: 6}
matrix:
  mood: [calm, storm]
shots:
  - id: sea
    prompt: "the sea, {{ mood }}"
    takes: 2
    pick: 2
  - id: gull
    prompt: a gull hangs in the wind
  - id: rock
    prompt: "a rock in the {{ mood }} surf"
    model: acme:1@1
sequences:
  - id: reel
    shots: [sea, gull]
    transition: {type: crossfade, duration: 0.5}
    preset: ultrafast
    formats: [16:9, 9:16]
    text: [{text: "The {{ mood }} sea", shot: gull}]
"""


def brightness_spread(png: Path) -> float:
    """Standard deviation of grey levels: near 0 for a blank image."""
    with av.open(str(png)) as container:
        frame = next(container.decode(video=0)).reformat(format="gray")
    plane = frame.planes[0]
    data = bytes(plane)[:: max(1, len(bytes(plane)) // 200_000)]
    mean = sum(data) / len(data)
    return (sum((v - mean) ** 2 for v in data) / len(data)) ** 0.5


@pytest.fixture(scope="session")
def reel_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reel built once per session (sea and gull); each test gets a copy."""
    only = ("-k", "--only", "sea", "gull")
    return build_once(tmp_path_factory.mktemp("reel"), "reel", SPEC, *only)


@pytest.fixture
def reel(project: Path, reel_built: Path) -> Path:
    return copy_built(reel_built, project, "reel")


def test_review_page_in_headless_chromium(project: Path, cli, reel: Path, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium: .ci/run installs it")
        pytest.skip("no chromium on this machine")
    from playwright.sync_api import sync_playwright

    result = cli("review", reel, "--preview")
    assert result.code == 0, result.err
    page_path = Path(result.out.strip())
    assert page_path == project / "build" / "reel" / "preview" / "review" / "index.html"
    html = page_path.read_text()
    assert "http://" not in html and "https://" not in html  # self-contained
    screenshot = tmp_path / "review.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on(
            "requestfailed",
            # A media element stops fetching once it has the metadata: that is not a failure.
            lambda r: None if "ERR_ABORTED" in (r.failure or "") else problems.append(r.url),
        )
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        posters = page.eval_on_selector_all(".strip video", "els => els.map(e => e.poster)")
        # Films load nothing until played (a campaign has hundreds): ask for each one's length.
        page.eval_on_selector_all(
            ".strip video", "els => els.forEach(v => { v.preload = 'metadata'; v.load(); })"
        )
        page.wait_for_function(
            "[...document.querySelectorAll('.strip video')].every(v => v.readyState >= 1 || v.error)"
        )
        players = page.eval_on_selector_all(
            ".strip video", "els => els.map(e => ({error: !!e.error, duration: e.duration}))"
        )
        frames = page.eval_on_selector_all(
            ".frames img",
            "els => els.map(e => ({src: e.src, ok: e.complete && e.naturalWidth > 0}))",
        )
        statuses = page.eval_on_selector_all(".take .status", "els => els.map(e => e.textContent)")
        picked = page.eval_on_selector_all(".take.picked", "els => els.map(e => e.dataset.take)")
        # The variant filter hides the other variant's shots.
        page.select_option("#variant", "storm")
        hidden = page.eval_on_selector_all(
            ".group.hidden", "els => els.map(e => e.dataset.variants)"
        )
        page.select_option("#variant", "")
        # The format filter shows one format's films.
        page.select_option("#format", "9:16")
        shown = page.eval_on_selector_all(
            "figure[data-format]:not(.hidden) video",
            "els => els.map(e => [e.videoWidth, e.videoHeight])",
        )
        page.select_option("#format", "")
        # A shot's takes side by side, at a size one can judge.
        sea = page.eval_on_selector_all(
            ".group:first-of-type .take .media",
            "els => els.map(e => [Math.round(e.getBoundingClientRect().top), e.clientWidth])",
        )
        texts = page.eval_on_selector_all(".texts li", "els => els.map(e => e.textContent)")
        scrolled = page.eval_on_selector("body", "b => b.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(screenshot))
        browser.close()
    assert problems == []
    assert [p["duration"] for p in players] == [pytest.approx(11.5, abs=0.05)] * 4
    assert all(posters) and len(set(posters)) == 4  # each film shows a frame of its own
    for poster in (page_path.parent / "posters").glob("*.jpg"):
        assert brightness_spread(poster) > 5, poster
    assert shown == [[180, 320]] * 2  # each mood's 9:16 film, and nothing else
    assert len(sea) == 2 and sea[0][0] == sea[1][0] and min(w for _, w in sea) >= 360
    assert sorted(" ".join(t.split()) for t in texts) == [
        "The calm sea 5.5–11.5 s, bottom",
        "The calm sea 5.5–11.5 s, bottom",
        "The storm sea 5.5–11.5 s, bottom",
        "The storm sea 5.5–11.5 s, bottom",
    ]
    assert not any(p["error"] for p in players)
    # Two strips (the moods' sea clips differ) of two frames each, not one per film.
    assert len(frames) == 2 * 2 and all(f["ok"] for f in frames)
    assert sorted(set(statuses)) == ["cached", "new"]
    assert statuses.count("new") == 2  # the two `rock` renders
    assert picked == ["2", "2"]  # take 2 of `sea`, in each mood
    assert hidden and all("storm" not in v.split() for v in hidden)
    assert scrolled  # nothing wider than the window
    assert brightness_spread(screenshot) > 20
    for thumb in (page_path.parent / "thumbs").glob("*.jpg"):
        assert brightness_spread(thumb) > 5, thumb


def test_review_marks_failed_shots_with_the_message(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "odd.yaml",
        "version: 1\nname: odd\nshots:\n"
        "  - {id: bad, prompt: odd size, model: acme:1@1, width: 1366, height: 767}\n",
    )
    assert cli("build", spec, "--preview").code == 1
    page = Path(cli("review", spec, "--preview").out.strip())
    html = page.read_text()
    assert "failed" in html and "ffmpeg failed to draw the preview" in html


def test_gc_keeps_what_specs_use_and_removes_the_rest(project: Path, cli, reel: Path) -> None:
    store = Cache(project / ".storyboard")
    before = {r.key for r in store.clips.records()}
    assert len(before) == 5  # sea x2 takes x2 moods + gull
    reel.write_text(SPEC.replace("a gull hangs in the wind", "a gull dives"))
    assert cli("build", reel, "--preview", "--only", "gull").code == 0
    stale_gull = before - {r.key for r in store.clips.records()} or None
    assert stale_gull is None  # building does not delete anything by itself
    # Something in flight is never collected, even if no storyboard uses it.
    store.journal.write(JournalEntry(key="f" * 64, renderer="runware", label="x", started=0))
    dry = cli("gc", "--json")
    listed = json.loads(dry.out)
    assert dry.code == 0 and not listed["removed"]
    assert [r["shot"] for r in listed["unused"]] == ["gull"]
    assert {r.key for r in store.clips.records()} >= before  # a dry run removes nothing
    human = cli("gc")
    assert "1 unused clips" in human.out and "run with --yes" in human.out
    assert cli("gc", "--yes").code == 0
    remaining = {r.key for r in store.clips.records()}
    assert len(remaining) == 5
    plan = json.loads(cli("plan", reel, "--preview", "--json").out)
    cached = [r for r in plan["shots"] if r["status"] == "cached"]
    assert len(cached) == 5  # everything the current storyboard rendered is still there
    assert "f" * 64 in Cache(project / ".storyboard").journal.entries()


def test_gc_refuses_with_a_broken_storyboard(project: Path, cli, reel: Path) -> None:
    write(project / "specs" / "broken.yaml", "version: 1\nname: broken\nshots:\n  - id: [\n")
    result = cli("gc", "--yes")
    assert result.code == 2 and "broken.yaml" in result.err
    assert len(Cache(project / ".storyboard").clips.records()) == 5


def test_status_of_a_folder(project: Path, cli, reel: Path) -> None:
    result = cli("status", project / "specs", "--preview")
    assert "reel: shots 5/7 cached, 2 new; sequences 4/4 current" in result.out
    assert "ballroom: shots 0/8 cached, 8 new" in result.out
