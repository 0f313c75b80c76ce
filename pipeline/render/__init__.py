"""The renderer protocol: what a renderer receives and returns, and how one is chosen."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.errors import UserError
from pipeline.retry import Backoff

if TYPE_CHECKING:
    from pipeline.cache import Cache
    from pipeline.media import ClipInfo, Taken
    from pipeline.nodes import Node


@dataclass(frozen=True)
class RendererKind:
    """What a renderer is, known without loading its module (the Runware client's costs a
    plan 50 ms): whether it spends money, and where its class lives."""

    name: str
    paid: bool
    module: str
    cls: str
    build: str  # its build, as commands that look at one name it


KINDS = {
    "preview": RendererKind(
        "preview",
        False,
        "pipeline.render.preview",
        "PreviewRenderer",
        "the preview build (local animatics: free)",
    ),
    "runware": RendererKind(
        "runware",
        True,
        "pipeline.render.runware",
        "RunwareRenderer",
        "the Runware build (paid renders)",
    ),
}
RENDERERS = tuple(KINDS)
PREVIEW = "preview"  # the renderer of `--preview`


def ignore(*_: Any) -> None:
    """A callback that does nothing: a default where nobody listens."""
    return None


@dataclass(frozen=True)
class RenderJob:
    """One shot to render into `output` (a temporary path on the cache's filesystem)."""

    shot: Node
    output: Path
    # Write a remote task id durably *before* submitting it, so a crash can collect it.
    note_task: Callable[[str], None]
    # A task id the journal holds from an earlier build: collect it instead of submitting.
    resume_task: str | None = None
    # When that task was sent (wall clock, as the journal says); None: not known.
    resumed_at: float | None = None
    # Called when the remote render is over, with the cost the provider reported (None when it
    # reported none, or nothing usable): frees the concurrency slot (downloading remains) and
    # counts the money as spent, whatever becomes of the clip afterwards.
    remote_done: Callable[[float | None], None] = ignore
    # The frames other shots start from (first, last, seconds): taken while the clip is
    # checked, so that it is decoded once.
    frames: tuple[str | float, ...] = ()
    # The variants the render serves (one render is shared by every variant whose request
    # it is): what a preview labels it with.
    variants: tuple[str, ...] = ()
    # Told what the render is doing now (DOWNLOADING, CHECKING): for the progress display.
    phase: Callable[[str], None] = ignore


RUNNING, DOWNLOADING, CHECKING = "running", "downloading", "checking"  # a render's phases


@dataclass(frozen=True)
class RenderResult:
    path: Path
    # The renderer's own check of the clip as delivered; the scheduler checks it when None.
    info: ClipInfo | None = None
    seed: int | None = None
    cost: float | None = None
    remote_ids: dict[str, str] = field(default_factory=dict)
    frames: Taken = field(default_factory=dict)  # the frames asked for, beside the clip


class Renderer(Protocol):
    """Turns a shot's request into a checked clip file. Implementations are async.

    `paid` renderers spend money: budgets apply to them, and a clip they deliver is kept even
    when it differs from what was asked (it was paid for). A free renderer's clip must be
    exactly what was asked, or it is made again.
    """

    name: str
    paid: bool

    async def render(self, job: RenderJob) -> RenderResult: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class RendererOptions:
    api_key: str | None = None
    base_url: str | None = None
    task_timeout: float = 1800.0
    download_timeout: float = 600.0
    # The first and shortest wait between polls of a task (Runware advises 1 to 2 s).
    poll_seconds: float = 1.0
    # How long an accepted task may be unknown to the server before it is submitted anew.
    not_found_grace: float = 300.0
    backoff: Backoff = field(default_factory=Backoff)


def kind(name: str) -> RendererKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UserError(
            f"unknown renderer '{name}'", f"renderers: {', '.join(RENDERERS)}"
        ) from None


def renderer_class(name: str) -> Any:
    """The class of a renderer by name."""
    described = kind(name)
    return getattr(importlib.import_module(described.module), described.cls)


def is_paid(name: str) -> bool:
    return kind(name).paid


def make_renderer(
    name: str, cache: Cache, options: RendererOptions, note: Callable[[str], None]
) -> Renderer:
    return renderer_class(name).from_options(cache, options, note)
