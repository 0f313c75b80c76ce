"""The review app: the review page with buttons, served on this machine (`storyboard review
SPEC --serve`). Picking, approving, rejecting and noting write the decisions file (and
nothing else of the project); "Another take" adds a take that only `storyboard build`
renders; "Re-join" joins the films whose clips are all here (free).

Safe by default: it listens on 127.0.0.1, answers only requests whose Host is its own (a
DNS-rebinding page cannot read it) and changes nothing for a request whose Origin is not
its own (a page on another site cannot change the picks through the browser). It serves
only the files the build made, by key, never through a link; it reads a request's body only
up to MAX_BODY; a storyboard or decisions file with a problem is shown, located.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import socket
import stat
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline import deciding
from pipeline.api import Session, decide_in
from pipeline.cache import CACHE_DIRNAME, Cache
from pipeline.errors import SpecError, StoryboardError, UserError, printable
from pipeline.nodes import Film, Node
from pipeline.outputs import output_path
from pipeline.plan import Loaded
from pipeline.review import Board, Group, Links, board, make_poster, render_page, thumbnail

MAX_BODY = 16_384  # a decision is a few hundred bytes
SAFE_METHODS = ("GET", "HEAD")


@dataclass
class Served:
    """What the app serves now: the page's model as last planned, and the files it links
    to, by key and name only (no path ever comes from a request)."""

    session: Session
    review: Path  # where thumbnails and posters are kept (the static page's folder)
    # What a file served must be under, reached through no link: the project, or the folder
    # the person building chose outside it (--cache-dir, --output-dir). None: not planned.
    films_base: Path | None = None
    cache_base: Path | None = None
    loaded: Loaded | None = None  # the storyboard as last planned (its cache closed)
    groups: dict[str, Group] = field(default_factory=dict)
    clips: dict[str, tuple[Path, float]] = field(default_factory=dict)  # key: file, length
    films: dict[str, tuple[Path, Film]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def refresh(served: Served) -> Board:
    """Plan the storyboard again and remember what the page links to."""
    loaded = served.session.load()
    clips: dict[str, tuple[Path, float]] = {}
    films: dict[str, tuple[Path, Film]] = {}
    try:
        links = _links(clips, films, loaded.cache, loaded.films)
        model = board(
            loaded.spec.storyboard.name,
            loaded.plan,
            loaded.cache,
            loaded.decisions,
            links,
            loaded.renderer,
        )
    finally:
        loaded.cache.close()
    # Swapped in whole: a file asked for meanwhile is looked up in the last page's links.
    served.clips, served.films = clips, films
    served.review = loaded.films / "review"
    root = loaded.spec.root
    served.films_base = root if served.session.output_dir is None else loaded.films
    served.cache_base = root if loaded.cache.root == root / CACHE_DIRNAME else loaded.cache.root
    served.loaded = loaded
    served.groups = {group.id: group for group in model.groups}
    return model


def _links(
    clips: dict[str, tuple[Path, float]],
    films: dict[str, tuple[Path, Film]],
    cache: Cache,
    folder: Path,
) -> Links:
    """The app's URLs, each file they name noted in `clips` and `films`."""

    def clip(key: str) -> str:
        clips.setdefault(key, (cache.clips.path(key), 0.0))
        return f"/media/clip/{key}"

    def thumb(shot: Node) -> str | None:
        clips[shot.key] = (cache.clips.path(shot.key), shot.duration)
        return f"/media/thumb/{shot.key}.jpg"

    def film(sequence: Film) -> str | None:
        video = output_path(folder, sequence)
        if not video.exists():
            return None
        films[sequence.name] = (video, sequence)
        return f"/media/film/{sequence.name}.mp4?v={sequence.key[:12]}"

    def poster(sequence: Film) -> str | None:
        if film(sequence) is None:
            return None
        return f"/media/poster/{sequence.name}.jpg?v={sequence.key[:12]}"

    return Links(clip, thumb, film, poster)


# -- requests -----------------------------------------------------------------------------


async def page(request: Request) -> Response:
    served: Served = request.app.state.served
    try:
        model = await run_in_threadpool(_locked, served, refresh)
    except StoryboardError as exc:
        return _problem_page(exc)
    return HTMLResponse(render_page(model, app=True), headers={"Cache-Control": "no-store"})


def _problem_page(exc: StoryboardError) -> Response:
    """The page when the storyboard or its decisions file cannot be read (a merge left
    conflicted, a mistake): what is wrong, located, and what to do; reloading tries again."""
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>storyboard: a problem</title>"
        '<body style="font: 16px/1.5 system-ui; margin: 2em">'
        "<h1>The storyboard cannot be shown</h1>"
        f'<pre id="problem" style="white-space: pre-wrap">{html.escape(_told(exc))}</pre>'
        "<p>Fix it, then reload this page.</p></body></html>"
    )
    return HTMLResponse(body, 409, headers={"Cache-Control": "no-store"})


def _told(exc: StoryboardError) -> str:
    """An error as the command line says it: each problem located, with its hint."""
    said = exc.render()
    return said if isinstance(exc, SpecError) else said.removeprefix("error: ")


async def clip_file(request: Request) -> Response:
    served: Served = request.app.state.served
    found = served.clips.get(request.path_params["key"])
    clip = _servable(found[0], served.cache_base) if found else None
    if clip is None:
        return PlainTextResponse("no such clip", 404)
    return FileResponse(clip)


async def thumb_file(request: Request) -> Response:
    served: Served = request.app.state.served
    found = served.clips.get(request.path_params["key"])
    if found is None:
        return PlainTextResponse("no such clip", 404)
    clip, duration = _servable(found[0], served.cache_base), found[1]
    if clip is None:
        return PlainTextResponse("no such clip", 404)
    key = request.path_params["key"]
    made = await run_in_threadpool(thumbnail, clip, served.review / "thumbs", key, duration / 2)
    made = _servable(made, served.films_base) if made else None
    if made is None:
        return PlainTextResponse("no thumbnail", 404)
    return FileResponse(made, headers={"Cache-Control": "max-age=86400"})


async def film_file(request: Request) -> Response:
    served: Served = request.app.state.served
    found = served.films.get(request.path_params["name"])
    video = _servable(found[0], served.films_base) if found else None
    if video is None:
        return PlainTextResponse("no such film", 404)
    return FileResponse(video, headers={"Cache-Control": "no-cache"})


async def poster_file(request: Request) -> Response:
    served: Served = request.app.state.served
    found = served.films.get(request.path_params["name"])
    if found is None:
        return PlainTextResponse("no such film", 404)
    video, film = _servable(found[0], served.films_base), found[1]
    if video is None:
        return PlainTextResponse("no such film", 404)
    made = await run_in_threadpool(make_poster, video, served.review / "posters", film, 640)
    made = _servable(made, served.films_base) if made else None
    if made is None:
        return PlainTextResponse("no poster", 404)
    return FileResponse(made, headers={"Cache-Control": "max-age=86400"})  # its URL has the key


def _servable(file: Path, base: Path | None) -> Path | None:
    """`file` when it is a regular file under `base` reached through no link: a link a
    repository planted in build/ or .storyboard/ never serves what it points at."""
    if base is None:
        return None
    try:
        below = Path(os.path.abspath(file)).relative_to(os.path.abspath(base))
        real = Path(os.path.realpath(base)) / below
        if Path(os.path.realpath(file)) != real or not stat.S_ISREG(os.lstat(real).st_mode):
            return None
    except (ValueError, OSError):
        return None
    return real


async def decide(request: Request) -> Response:
    """`{group, action, take?, note?}`: a decision on a group of the page as last served."""
    served: Served = request.app.state.served
    body = await _json(request)
    if isinstance(body, Response):
        return body
    group = served.groups.get(str(body.get("group", "")))
    action = body.get("action")
    if group is None:
        return _error("that shot is not on the page any more: reload it", 409)
    if action not in (*deciding.ACTIONS, "another") or not group.decidable:
        return _error(f"cannot {action} {group.named}", 400)
    take, note = body.get("take"), body.get("note")
    if take is not None and (not isinstance(take, int) or isinstance(take, bool) or take < 1):
        return _error("take: a whole number from 1", 400)
    if note is not None and not isinstance(note, str):
        return _error("note: text", 400)
    act = deciding.Act(
        deciding.REJECT if action == "another" else action,
        take,
        note,
        another=action == "another",
    )
    try:
        return JSONResponse(await run_in_threadpool(_locked, served, _decided, group, act))
    except StoryboardError as exc:
        return _error(_told(exc), 400)


def _decided(served: Served, group: Group, act: deciding.Act) -> dict[str, Any]:
    planned = served.loaded
    if planned is None:
        raise UserError("the page is not planned yet: reload it")
    outcome = decide_in(planned, group.label, act, group.variants)
    model = refresh(served)
    after = served.loaded.plan if served.loaded is not None else planned.plan
    outcome = deciding.with_renders(outcome, planned.plan, after)
    said = list(outcome.said)
    if outcome.renders:
        unknown = f" (+{outcome.unpriced} of unknown price)" if outcome.unpriced else ""
        said.append(
            f"{outcome.renders} more render(s), about ${outcome.cost:.2f}{unknown}: "
            "`storyboard build` renders them"
        )
    else:
        said.append("free: nothing to render")
    stale = model.totals["stale"]
    if stale:
        said.append(f"{stale} film(s) to re-join")
    return {
        "said": said,
        "reload": outcome.renders > 0 or group.id not in served.groups,
        "groups": {g.id: _group_state(g) for g in model.groups if g.label == group.label},
        "strips": render_page(model, app=True, part="strips"),
        "approved": model.totals["approved"],
    }


def _group_state(group: Group) -> dict[str, Any]:
    return {
        "picked": group.picked,
        "verdict": group.verdict,
        "decided": group.decided,
        "note": group.note,
    }


async def join(request: Request) -> Response:
    """Join the films whose clips are all here: a free step, never a render."""
    served: Served = request.app.state.served
    body = await _json(request)
    if isinstance(body, Response):
        return body
    try:
        return JSONResponse(await run_in_threadpool(_locked, served, _joined))
    except StoryboardError as exc:
        return _error(_told(exc), 400)


def _joined(served: Served) -> dict[str, Any]:
    from pipeline.build import BuildOutput
    from pipeline.progress import QUIET, make_reporter
    from pipeline.state import Joined

    notes: list[str] = []
    output = BuildOutput(
        info=lambda message: None,
        warn=notes.append,
        progress=lambda outlook: make_reporter(outlook, QUIET),
    )
    summary = served.session.build(output, join_only=True, remote=True)
    joined = [
        s.sequence.name for s in summary.sequences if s.status in (Joined.BUILT, Joined.PLACED)
    ]
    failed = [
        f"{s.sequence.name}: {s.error}"
        for s in summary.sequences
        if s.status in (Joined.FAILED, Joined.BLOCKED)
    ]
    model = refresh(served)
    said = [f"joined {len(joined)} film(s)" + (f": {', '.join(joined)}" if joined else "")]
    said += [note.removeprefix("warning: ") for note in notes if "not joined" in note]
    said += failed
    if summary.fatal:
        said.append(summary.fatal)
    return {
        "said": said,
        "joined": joined,
        "strips": render_page(model, app=True, part="strips"),
    }


def _locked(served: Served, work: Any, *args: Any) -> Any:
    """One decision or join at a time: each reads what the one before wrote."""
    with served.lock:
        return work(served, *args)


async def _json(request: Request) -> dict[str, Any] | Response:
    """The request's JSON object, read up to MAX_BODY bytes: a larger body is refused by
    its Content-Length before it is read, or as it streams in, at the byte past the limit."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _error("send JSON (Content-Type: application/json)", 415)
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY:
        return _error(f"too large: a request is at most {MAX_BODY:,} bytes", 413)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            return _error(f"too large: a request is at most {MAX_BODY:,} bytes", 413)
    try:
        body = json.loads(bytes(data) or b"{}")
    except (ValueError, RecursionError):  # RecursionError: nested thousands of levels deep
        return _error("not JSON, or nested too deep", 400)
    return body if isinstance(body, dict) else _error("send a JSON object", 400)


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": printable(message)}, status)


# -- the app ------------------------------------------------------------------------------


class HostGuard:
    """Answer only requests whose Host is one of the app's own names (a DNS-rebinding page
    has another): `127.0.0.1:8765`, `localhost:8765`, `[::1]:8765` on loopback."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = host_name(Headers(scope=scope).get("host", ""))
            if host not in self.hosts:
                response = PlainTextResponse("Invalid host header", 400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def host_name(host: str) -> str:
    """A Host header's name, its port left out: `[::1]:8765` -> `[::1]`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.index("]") + 1] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class OriginGuard:
    """Refuse a request that could change something (any method but GET and HEAD) unless
    the browser says it comes from the app's own page: its Origin is the app's, and its
    fetch is same-origin. A form or script on another site gets 403 and changes nothing."""

    def __init__(self, app: ASGIApp, origins: frozenset[str]) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            origin = headers.get("origin")
            site = headers.get("sec-fetch-site", "same-origin")
            if origin not in self.origins or site != "same-origin":
                shown = origin or "a request without an Origin"
                response = PlainTextResponse(
                    f"refused: {printable(shown)} is not this app's page", 403
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def make_app(session: Session, host: str, port: int) -> Starlette:
    """The app for a storyboard, answering as `host:port` (and localhost, on loopback)."""
    names = {_in_url(host)}
    if _loopback(host):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    origins = frozenset(f"http://{name}:{port}" for name in names)
    routes = [
        Route("/", page),
        Route("/media/clip/{key:str}", clip_file),
        Route("/media/thumb/{key:str}.jpg", thumb_file),
        Route("/media/film/{name:str}.mp4", film_file),
        Route("/media/poster/{name:str}.jpg", poster_file),
        Route("/api/decide", decide, methods=["POST"]),
        Route("/api/join", join, methods=["POST"]),
    ]
    middleware = [
        Middleware(HostGuard, hosts=frozenset(name.lower() for name in names)),
        Middleware(OriginGuard, origins=origins),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.served = Served(session, Path())
    return app


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def _in_url(host: str) -> str:
    """A host as a URL (and a Host header) spells it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def serve(session: Session, host: str, port: int, open_browser: bool) -> int:
    """Serve the app until Ctrl-C; the URL is printed first (with --port 0, the port
    chosen)."""
    import uvicorn

    host = host.removeprefix("[").removesuffix("]")  # `--host [::1]`, as a URL spells it

    listening = _bind(host, port)
    port = listening.getsockname()[1]
    app = make_app(session, host, port)
    refresh(app.state.served)  # a storyboard with a problem is said before the app starts
    url = f"http://{_in_url(host)}:{port}/"
    print(url, flush=True)
    planned = app.state.served.loaded
    where = planned.decisions.named if planned else "?"
    which, other = session.looking_at()
    said = f"review app for {which}: decisions go to the {where}; Ctrl-C stops it"
    print(printable(said), file=sys.stderr)
    if other:
        print(f"note: {other}", file=sys.stderr)
    if not _loopback(host):
        print(
            f"warning: listening on {host}: whoever reaches this address can change the picks",
            file=sys.stderr,
        )
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[listening])
    return 0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as exc:
        listening.close()
        raise UserError(
            f"the review app cannot listen on {host}:{port} ({exc.strerror or exc})",
            "choose another --port (0: any free one)",
        ) from None
    listening.listen(64)
    return listening
