"""The review app: the review page with buttons, served on this machine (`storyboard review
SPEC --serve`). Picking, approving, rejecting and noting write the decisions file (and
nothing else of the project); "Another take" adds a take that only `storyboard build`
renders; "Re-join" joins the films whose clips are all here (free).

Safe by default: it listens on 127.0.0.1, answers only requests whose Host is its own (a
DNS-rebinding page cannot read it) and changes nothing for a request whose Origin is not
its own (a page on another site cannot change the picks through the browser).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
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

from pipeline import decisions
from pipeline.api import Session, decide_in
from pipeline.cache import Cache
from pipeline.errors import StoryboardError, UserError, printable
from pipeline.nodes import Sequence, Shot
from pipeline.outputs import output_path
from pipeline.plan import Plan
from pipeline.review import Board, Group, Links, board, poster_time, render_page, thumbnail
from pipeline.spec import Spec

MAX_BODY = 16_384  # a decision is a few hundred bytes
SAFE_METHODS = ("GET", "HEAD")


@dataclass
class Served:
    """What the app serves now: the page's model as last planned, and the files it links
    to, by key and name only (no path ever comes from a request)."""

    session: Session
    review: Path  # where thumbnails and posters are kept (the static page's folder)
    plan: Plan | None = None
    spec: Spec | None = None
    groups: dict[str, Group] = field(default_factory=dict)
    clips: dict[str, tuple[Path, float]] = field(default_factory=dict)  # key: file, length
    films: dict[str, tuple[Path, Sequence]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def refresh(served: Served) -> Board:
    """Plan the storyboard again and remember what the page links to."""
    loaded = served.session.load()
    clips: dict[str, tuple[Path, float]] = {}
    films: dict[str, tuple[Path, Sequence]] = {}
    try:
        links = _links(clips, films, loaded.cache, loaded.films)
        model = board(
            loaded.spec.storyboard.name,
            loaded.plan,
            loaded.cache,
            loaded.spec.decisions,
            links,
            loaded.renderer,
        )
    finally:
        loaded.cache.close()
    # Swapped in whole: a file asked for meanwhile is looked up in the last page's links.
    served.clips, served.films = clips, films
    served.review = loaded.films / "review"
    served.plan, served.spec = loaded.plan, loaded.spec
    served.groups = {group.id: group for group in model.groups}
    return model


def _links(
    clips: dict[str, tuple[Path, float]],
    films: dict[str, tuple[Path, Sequence]],
    cache: Cache,
    folder: Path,
) -> Links:
    """The app's URLs, each file they name noted in `clips` and `films`."""

    def clip(key: str) -> str:
        clips.setdefault(key, (cache.clips.path(key), 0.0))
        return f"/media/clip/{key}"

    def thumb(shot: Shot) -> str | None:
        clips[shot.key] = (cache.clips.path(shot.key), shot.duration)
        return f"/media/thumb/{shot.key}.jpg"

    def film(sequence: Sequence) -> str | None:
        video = output_path(folder, sequence)
        if not video.exists():
            return None
        films[sequence.name] = (video, sequence)
        return f"/media/film/{sequence.name}.mp4?v={sequence.key[:12]}"

    def poster(sequence: Sequence) -> str | None:
        if film(sequence) is None:
            return None
        return f"/media/poster/{sequence.name}.jpg?v={sequence.key[:12]}"

    return Links(clip, thumb, film, poster)


# -- requests -----------------------------------------------------------------------------


async def page(request: Request) -> Response:
    served: Served = request.app.state.served
    model = await run_in_threadpool(_locked, served, refresh)
    return HTMLResponse(render_page(model, app=True), headers={"Cache-Control": "no-store"})


async def clip_file(request: Request) -> Response:
    served: Served = request.app.state.served
    found = served.clips.get(request.path_params["key"])
    if found is None or not found[0].is_file():
        return PlainTextResponse("no such clip", 404)
    return FileResponse(found[0])


async def thumb_file(request: Request) -> Response:
    served: Served = request.app.state.served
    found = served.clips.get(request.path_params["key"])
    if found is None:
        return PlainTextResponse("no such clip", 404)
    clip, duration = found
    key = request.path_params["key"]
    made = await run_in_threadpool(thumbnail, clip, served.review / "thumbs", key, duration / 2)
    if made is None:
        return PlainTextResponse("no thumbnail", 404)
    return FileResponse(made, headers={"Cache-Control": "max-age=86400"})


async def film_file(request: Request) -> Response:
    served: Served = request.app.state.served
    found = served.films.get(request.path_params["name"])
    if found is None or not found[0].is_file():
        return PlainTextResponse("no such film", 404)
    return FileResponse(found[0], headers={"Cache-Control": "no-cache"})


async def poster_file(request: Request) -> Response:
    served: Served = request.app.state.served
    found = served.films.get(request.path_params["name"])
    if found is None:
        return PlainTextResponse("no such film", 404)
    video, film = found
    posters = served.review / "posters"
    at = poster_time(film)
    made = await run_in_threadpool(thumbnail, video, posters, film.key, at, 640)
    if made is None:
        return PlainTextResponse("no poster", 404)
    return FileResponse(made, headers={"Cache-Control": "max-age=86400"})  # its URL has the key


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
    if action not in (*decisions.ACTIONS, "another") or not group.decidable:
        return _error(f"cannot {action} {group.named}", 400)
    take, note = body.get("take"), body.get("note")
    if take is not None and (not isinstance(take, int) or isinstance(take, bool) or take < 1):
        return _error("take: a whole number from 1", 400)
    if note is not None and not isinstance(note, str):
        return _error("note: text", 400)
    act = decisions.Act(
        decisions.REJECT if action == "another" else action,
        take,
        note,
        another=action == "another",
    )
    try:
        return JSONResponse(await run_in_threadpool(_locked, served, _decided, group, act))
    except StoryboardError as exc:
        return _error(exc.message, 400)


def _decided(served: Served, group: Group, act: decisions.Act) -> dict[str, Any]:
    before, spec = served.plan, served.spec
    if before is None or spec is None:
        raise UserError("the page is not planned yet: reload it")
    outcome = decide_in(spec, before, group.label, act, group.variants)
    model = refresh(served)
    outcome = decisions.with_renders(outcome, before, served.plan or before)
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
        return _error(exc.message, 400)


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
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _error("send JSON (Content-Type: application/json)", 415)
    data = await request.body()
    if len(data) > MAX_BODY:
        return _error("too large", 413)
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        return _error("not JSON", 400)
    return body if isinstance(body, dict) else _error("send a JSON object", 400)


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": printable(message)}, status)


# -- the app ------------------------------------------------------------------------------


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
    names = {host}
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
        Middleware(TrustedHostMiddleware, allowed_hosts=sorted(n.strip("[]") for n in names)),
        Middleware(OriginGuard, origins=origins),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.served = Served(session, Path())
    return app


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def serve(session: Session, host: str, port: int, open_browser: bool) -> int:
    """Serve the app until Ctrl-C; the URL is printed first (with --port 0, the port
    chosen)."""
    import uvicorn

    listening = _bind(host, port)
    port = listening.getsockname()[1]
    app = make_app(session, host, port)
    refresh(app.state.served)  # a storyboard with a problem is said before the app starts
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    print(url, flush=True)
    spec = app.state.served.spec
    where = spec.decisions.named if spec else "?"
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
