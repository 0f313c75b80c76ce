"""The review app: its guard against other sites (in process, through Starlette's client),
and a director's session in real Chromium against the app as `storyboard review --serve`
runs it: pick with the mouse, pick and approve with keys alone, re-join, and what `plan`
and `build` make of the decisions afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, build_once, copy_built

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SPEC = """\
version: 1
name: promo
# A model the catalogue does not know takes any size: small, short clips keep the test quick.
defaults: {model: acme:1@1, width: 320, height: 180, duration: 2}
shots:
  - id: hero
    prompt: a lighthouse at dusk, the beam sweeps over the sea
    takes: 3
  - id: coast
    prompt: waves on black rocks
sequences:
  - id: one
    shots: [hero, coast, {card: "Visit the coast", duration: 1, background: "#203040"}]
    preset: ultrafast
  - id: two
    shots: [coast]
    preset: ultrafast
"""


@pytest.fixture(scope="module")
def promo_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_once(tmp_path_factory.mktemp("promo"), "promo", SPEC)


@pytest.fixture
def promo(project: Path, promo_built: Path) -> Path:
    spec = copy_built(promo_built, project, "promo")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    for key, value in (("user.name", "Dee Rector"), ("user.email", "dee@example.com")):
        subprocess.run(["git", "-C", str(project), "config", key, value], check=True)
    return spec


def picks(spec: Path) -> str:
    path = spec.with_name("promo.preview.picks.yaml")
    return path.read_text() if path.exists() else ""


@pytest.fixture
def app_url(promo: Path) -> Iterator[str]:
    """`storyboard review SPEC --preview --serve --port 0` in a child process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "review",
            str(promo),
            "--preview",
            "--serve",
            "--port",
            "0",
        ],
        cwd=promo.parent.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip() if process.stdout else ""
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_the_app_refuses_other_sites_and_changes_nothing(promo: Path) -> None:
    asyncio.run(_refusals(promo))


async def _refusals(promo: Path) -> None:
    """The app itself, through httpx's ASGI transport: the requests a browser on another
    site could send, each refused, then the app's own."""
    import httpx

    from pipeline.api import Session
    from pipeline.review_app import make_app, refresh

    app = make_app(Session(promo, preview=True), "127.0.0.1", 8765)
    refresh(app.state.served)
    own = "http://127.0.0.1:8765"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=own) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert 'aria-label="Pick hero take 2"' in page.text
        group = re.search(r'<section class="group" id="(\w+)"', page.text)
        assert group is not None
        body = {"group": group.group(1), "action": "pick", "take": 2}
        rebound = {"Host": "evil.example:8765", "Origin": "http://evil.example:8765"}
        refused = [
            await client.post("/api/decide", json=body, headers={"Origin": "http://evil.example"}),
            await client.post("/api/decide", json=body),  # no Origin: not from the app's page
            await client.post(
                "/api/decide", json=body, headers={"Origin": own, "Sec-Fetch-Site": "cross-site"}
            ),
            # DNS rebinding: another name for this address, and its own origin.
            await client.post("/api/decide", json=body, headers=rebound),
            await client.post("/api/join", json={}, headers={"Origin": "http://evil.example"}),
        ]
        assert [r.status_code for r in refused] == [403, 403, 403, 400, 403]
        assert (await client.get("/", headers={"Host": "evil.example:8765"})).status_code == 400
        assert picks(promo) == ""  # nothing was written
        # A form post from the app's own origin is refused too: only JSON is read.
        form = await client.post("/api/decide", data=body, headers={"Origin": own})
        assert form.status_code == 415 and picks(promo) == ""
        done = await client.post("/api/decide", json=body, headers={"Origin": own})
        assert done.status_code == 200, done.text
        assert "hero: {take: 2, by: Dee Rector <dee@example.com>" in picks(promo)
        # Files are served by key only: no path from a request reaches the disk.
        assert (await client.get("/media/clip/..%2F..%2Fpromo.yaml")).status_code == 404


def storyboard(cli, *args: str) -> dict:
    result = cli(*args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_a_director_picks_and_approves_in_chromium(promo: Path, app_url: str, cli) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium: .ci/run installs it")
        pytest.skip("no chromium on this machine")
    from playwright.sync_api import sync_playwright

    before = storyboard(cli, "plan", str(promo), "--preview", "--json")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(app_url)
        said = page.locator("#said")
        # The film strip shows the end card among the clips.
        strip = page.locator(".strip").filter(has_text="one").first
        assert "Visit the coast" in strip.locator(".frames").inner_text()
        old_film = strip.locator("video").get_attribute("src")

        page.get_by_role("button", name="Pick hero take 2").click()
        page.wait_for_function("document.getElementById('said').textContent.includes('picked')")
        assert said.text_content() == (
            "hero: take 2 picked (preview build: specs/promo.preview.picks.yaml); "
            "free: nothing to render; 1 film(s) to re-join"
        )
        assert "hero: {take: 2, by: Dee Rector <dee@example.com>" in picks(promo)
        assert page.get_by_role("button", name="Pick hero take 2").get_attribute(
            "aria-pressed"
        ) == ("true")
        # What is picked shows at once in the film strip; the film waits for a re-join.
        assert "hero · take 2" in strip.locator(".frames").inner_text()
        assert strip.locator(".state-changed").count() == 1
        plan = storyboard(cli, "plan", str(promo), "--preview", "--json")
        assert plan["totals"]["renders_needed"] == 0
        films = {s["name"]: s for s in plan["sequences"]}
        assert films["one"]["status"] == "changed" and films["two"]["status"] == "current"
        assert films["two"]["key"] == {s["name"]: s for s in before["sequences"]}["two"]["key"]

        page.get_by_role("button", name="Re-join changed films (free)").click()
        page.wait_for_function(
            "document.getElementById('said').textContent.startsWith('joined')", timeout=60_000
        )
        assert said.text_content() == "joined 1 film(s): one"
        new_film = page.locator(".strip").filter(has_text="one").first.locator("video")
        assert new_film.get_attribute("src") != old_film
        assert films["one"]["key"][:12] in (new_film.get_attribute("src") or "")
        new_film.evaluate("v => { v.preload = 'metadata'; v.load(); }")
        page.wait_for_function(
            "document.querySelector('.strip video').readyState >= 1", timeout=30_000
        )
        assert new_film.evaluate("v => v.duration") == pytest.approx(5.0, abs=0.1)

        # Keys alone: to the first take, two to the right, pick it, approve the shot.
        page.locator("h1").click()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
        assert focused == "Pick hero take 3"
        page.keyboard.press("p")
        page.wait_for_function(
            "document.getElementById('said').textContent.includes('take 3 picked')"
        )
        page.keyboard.press("a")
        page.wait_for_function("document.getElementById('said').textContent.includes('approved')")
        assert page.locator(".group .verdict").first.text_content() == "take 3 approved"
        browser.close()
    assert problems == []
    assert re.search(r"^hero: \{take: 3, verdict: approved, by: Dee Rector", picks(promo), re.M)
    # A decision never renders: the build joins exactly the film that changed.
    built = storyboard(cli, "build", str(promo), "--preview", "--json")
    assert built["rendered"] == 0 and built["failed"] == 0
    joined = {s["sequence"]: s["status"] for s in built["sequences"]}
    assert joined == {"one": "built", "two": "current"}


@contextlib.asynccontextmanager
async def app_client(promo: Path, host: str = "127.0.0.1") -> AsyncIterator[tuple[Any, str]]:
    """The app of `promo`'s preview build in this process, through httpx's ASGI transport,
    as its own page asks it (its Origin): a client, and the id of the first shot's group."""
    import httpx

    from pipeline.api import Session
    from pipeline.review_app import make_app, refresh

    app = make_app(Session(promo, preview=True), host, 8765)
    refresh(app.state.served)
    own = f"http://{f'[{host}]' if ':' in host else host}:8765"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=own, headers={"Origin": own}
    ) as client:
        page = await client.get("/")
        assert page.status_code == 200, page.text
        group = re.search(r'<section class="group" id="(\w+)"', page.text)
        assert group is not None
        yield client, group.group(1)


def test_the_app_writes_nothing_that_is_not_text(promo: Path, cli) -> None:
    async def session() -> None:
        async with app_client(promo) as (client, group):
            # Half an emoji, as a browser's JSON.stringify sends it: `\ud800`.
            half = json.dumps({"group": group, "action": "note", "note": "x\ud800y"})
            json_type = {"Content-Type": "application/json"}
            refused = await client.post("/api/decide", content=half, headers=json_type)
            assert refused.status_code == 400
            assert refused.json()["error"].startswith("a note must be text")
            assert picks(promo) == ""
            noted = {"group": group, "action": "note", "note": "x\U0001f600y"}
            assert (await client.post("/api/decide", json=noted)).status_code == 200
            assert (await client.get("/")).status_code == 200

    asyncio.run(session())
    assert "note: x\U0001f600y" in picks(promo)
    assert cli("plan", str(promo), "--preview").code == 0


def test_the_app_refuses_a_body_it_cannot_read_before_reading_it(promo: Path) -> None:
    read: list[int] = []

    async def chunks(count: int) -> AsyncIterator[bytes]:
        for _ in range(count):
            read.append(1)
            yield b" " * 65_536

    async def session() -> None:
        async with app_client(promo) as (client, group):
            deep = await client.post(
                "/api/decide",
                content=b"[" * 8000 + b"]" * 8000,
                headers={"Content-Type": "application/json"},
            )
            assert deep.status_code == 400 and "nested too deep" in deep.json()["error"]
            # 300 MB said in its Content-Length: refused unread.
            said = {"Content-Type": "application/json", "Content-Length": str(300 << 20)}
            large = await client.post("/api/decide", content=chunks(4800), headers=said)
            assert large.status_code == 413 and read == []
            # No length said: refused at the chunk that passes the limit.
            streamed = await client.post(
                "/api/decide", content=chunks(4800), headers={"Content-Type": "application/json"}
            )
            assert streamed.status_code == 413 and len(read) <= 2
            body = {"group": group, "action": "pick", "take": 2}
            assert (await client.post("/api/decide", json=body)).status_code == 200

    asyncio.run(session())


def test_the_app_serves_no_file_through_a_link(promo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.mp4"
    secret.write_text("the-secret-value")
    films = promo.parent.parent / "build" / "promo" / "preview"
    (films / "one.mp4").unlink()
    (films / "one.mp4").symlink_to(secret)
    moved = tmp_path / "moved"
    (films / "two.mp4").rename(moved)
    (films / "two.mp4").symlink_to(moved)

    async def session() -> None:
        async with app_client(promo) as (client, _):
            page = (await client.get("/")).text
            clip = re.search(r"/media/clip/(\w+)", page)
            assert clip is not None
            cached = next((promo.parent.parent / ".storyboard").rglob(f"{clip.group(1)}.mp4"))
            cached.unlink()
            cached.symlink_to(secret)
            for url in (
                "/media/film/one.mp4",
                "/media/poster/one.jpg",
                "/media/film/two.mp4",
                f"/media/clip/{clip.group(1)}",
                f"/media/thumb/{clip.group(1)}.jpg",
            ):
                answer = await client.get(url)
                assert answer.status_code == 404, url
                assert "the-secret-value" not in answer.text

    asyncio.run(session())


def test_the_app_shows_a_merge_left_in_the_decisions_file(promo: Path) -> None:
    conflicted = "<<<<<<< HEAD\nhero: {take: 2}\n=======\nhero: {take: 3}\n>>>>>>> theirs\n"

    async def session() -> None:
        async with app_client(promo) as (client, group):
            promo.with_name("promo.preview.picks.yaml").write_text(conflicted)
            page = await client.get("/")
            assert page.status_code == 409
            assert "promo.preview.picks.yaml:1:1: a git merge conflict" in page.text
            assert "resolve the merge" in page.text
            body = {"group": group, "action": "approve"}
            refused = await client.post("/api/decide", json=body)
            assert refused.status_code == 400
            assert "promo.preview.picks.yaml:1:1: a git merge conflict" in refused.json()["error"]

    asyncio.run(session())
    assert picks(promo) == conflicted


def test_the_app_answers_on_ipv6_loopback(promo: Path) -> None:
    import httpx

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = ["review", str(promo), "--preview", "--serve", "--host", "::1", "--port", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *command],
        cwd=promo.parent.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip() if process.stdout else ""
        assert re.fullmatch(r"http://\[::1\]:\d+/", url), process.stderr and process.stderr.read()
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and "Pick hero take 2" in page.text
        group = re.search(r'<section class="group" id="(\w+)"', page.text)
        assert group is not None
        body = {"group": group.group(1), "action": "pick", "take": 2}
        origin = url.rstrip("/")
        picked = httpx.post(f"{url}api/decide", json=body, headers={"Origin": origin}, timeout=30)
        assert picked.status_code == 200, picked.text
    finally:
        process.terminate()
        process.wait(10)
    assert "hero: {take: 2, by: Dee Rector" in picks(promo)
