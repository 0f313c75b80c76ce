"""A build request, as the command line (or a program) gives it, in groups: what it looks at
(settings.Target), what it works on (settings.Selection), how it renders (scheduling, the
renderer's options); and where its words go."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from pipeline.render import RendererOptions, ignore
from pipeline.run.films import FilmReporter
from pipeline.run.shots import Outlook, Reporter, ScheduleOptions
from pipeline.settings import Selection, Target


class QcMode(StrEnum):
    """What the quality check's findings do to a build (qc.py)."""

    WARN = "warn"  # said, kept, badged; the build goes on
    STRICT = "strict"  # a finding in what the build delivers fails it (exit 1)


@dataclass(frozen=True)
class BuildRequest:
    """Everything a build needs to know."""

    target: Target
    selection: Selection = field(default_factory=Selection)
    schedule: ScheduleOptions = field(default_factory=ScheduleOptions)
    renderer: RendererOptions = field(default_factory=RendererOptions)
    max_cost: float | None = None  # None: the storyboard's `budget:`, if any
    frozen: bool = False
    cluster: str | None = None  # a Dask scheduler's address: films are joined there
    qc: QcMode = QcMode.WARN


class BuildReporter(Reporter, FilmReporter, Protocol):
    """Where a build says how its renders and its joins go."""


@dataclass(frozen=True)
class BuildOutput:
    """Where a build's words go; the caller decides how loud each kind is."""

    info: Callable[[str], None]  # the plan of the build, the lock written
    warn: Callable[[str], None]  # warnings, and what the cache repaired
    progress: Callable[[Outlook], AbstractContextManager[BuildReporter]]
    explain: Callable[[str], None] = ignore  # why each render is made (-v)
