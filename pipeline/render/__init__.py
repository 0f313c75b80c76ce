"""The renderer protocol: what a renderer receives and returns, and how one is chosen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.cache import Cache
    from pipeline.expand import Shot
    from pipeline.media import ClipInfo

RENDERERS = ("preview", "runware")


@dataclass(frozen=True)
class RenderJob:
    """One shot to render into `output` (a temporary path on the cache's filesystem)."""

    shot: Shot
    output: Path
    # Write a remote task id durably *before* submitting it, so a crash can collect it.
    note_task: Callable[[str], None]
    # A task id the journal holds from an earlier build: collect it instead of submitting.
    resume_task: str | None = None
    # Called when the remote render is over, with the cost the provider reported: frees the
    # concurrency slot (downloading remains) and counts the real cost against the budget.
    remote_done: Callable[[float | None], None] = lambda cost: None


@dataclass(frozen=True)
class RenderResult:
    path: Path
    # The renderer's own check of the clip; the scheduler decodes it itself when None.
    info: ClipInfo | None = None
    seed: int | None = None
    cost: float | None = None
    remote_ids: dict[str, str] = field(default_factory=dict)


class Renderer(Protocol):
    """Turns a shot's request into a validated clip file. Implementations are async."""

    name: str

    async def render(self, job: RenderJob) -> RenderResult: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class RendererOptions:
    api_key: str | None = None
    base_url: str | None = None
    poll_interval: float = 2.0
    first_poll: float = 1.0
    task_timeout: float = 1800.0
    retry_base: float = 0.5


def make_renderer(name: str, cache: Cache, options: RendererOptions) -> Renderer:
    if name == "preview":
        from pipeline.render.preview import PreviewRenderer

        return PreviewRenderer()
    if name == "runware":
        from pipeline.render.runware import RunwareRenderer

        return RunwareRenderer.from_options(cache, options)
    raise UserError(f"unknown renderer '{name}'", f"renderers: {', '.join(RENDERERS)}")
