"""The library face of storyboard: what the command line calls, and what a program may.

    from pipeline.api import Session
    session = Session(Path("specs/ballroom.yaml"), preview=True)
    plan = session.plan()            # every render and film, its state and why, the cost
    summary = session.build(output, only=("glove",))

Each call reads the storyboard, plans it once against the cache (and the team cache), does
its one job and closes the cache; it returns values (a Plan, rows, a summary), never
prints. Problems are raised as StoryboardError (SpecError holds every diagnostic).
Steps a command does not need are imported when called: a plan loads no ffmpeg code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import plan as planning
from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.build import BuildOutput, BuildSummary
    from pipeline.compare import Comparison
    from pipeline.gc import Collection
    from pipeline.render import RendererOptions
    from pipeline.run.shots import ScheduleOptions
    from pipeline.share import Transfer
    from pipeline.status import StatusRow


def _ignore(message: str) -> None:
    return None


@dataclass(frozen=True)
class Session:
    """One storyboard, planned for the preview renderer or its own, against a cache."""

    spec: Path
    preview: bool = False
    cache_dir: str | None = None
    output_dir: Path | None = None
    max_shots: int | None = None  # None: expand.MAX_SHOTS
    note: Callable[[str], None] = _ignore  # warnings, and what the cache repaired

    def load(self) -> planning.Loaded:
        """The storyboard read, expanded and planned; the caller closes `loaded.cache`."""
        loaded = planning.load(
            self.spec,
            self.preview,
            self.cache_dir,
            self.note,
            self.max_shots,
            output_dir=self.output_dir,
        )
        if loaded.remote_problem is not None:
            self.note(f"warning: {loaded.remote_problem.message}: this is the plan without it")
        return loaded

    def plan(self) -> planning.Plan:
        """Every render and film with its state and why, and what a build would cost."""
        loaded = self.load()
        loaded.cache.close()
        for warning in loaded.plan.warnings:
            self.note(f"warning: {warning}")
        return loaded.plan

    def status(self) -> tuple[str, list[StatusRow]]:
        """The storyboard's name, and a row per render and film: its state and why."""
        from pipeline.status import statuses

        loaded = self.load()
        try:
            rows = statuses(loaded.plan)
            loaded.outputs.save()  # the films' checksums, for the next run
        finally:
            loaded.cache.close()
        return loaded.spec.storyboard.name, rows

    def prompts(self, shot: str | None = None) -> list[dict[str, Any]]:
        """Each render's prompt once per shot and variant (of one shot, by id or label)."""
        loaded = self.load()
        loaded.cache.close()
        every = loaded.plan.graph.variant_shots()
        chosen = [s for s in every if shot in (None, s.shot_id, s.label)]
        if shot and not chosen:
            known = ", ".join(s.id for s in loaded.spec.storyboard.shots)
            raise UserError(f"no shot '{shot}' in {self.spec}", f"shots: {known}")
        seen: set[tuple[str, str]] = set()
        rows = []
        for render in chosen:
            if (render.label, render.prompt) not in seen:
                seen.add((render.label, render.prompt))
                rows.append(
                    {"shot": render.label, "variant": render.variant, "prompt": render.prompt}
                )
        return rows

    def review(self) -> Path:
        """Write the review page of every render and film; its path."""
        from pipeline.review import write_review

        loaded = self.load()
        try:
            return write_review(
                loaded.spec.storyboard.name,
                loaded.plan,
                loaded.cache,
                loaded.films,
                loaded.renderer,
            )
        finally:
            loaded.cache.close()

    def diff(self, old: str, new: str | None) -> Comparison:
        """What changes from revision `old` to `new` (None: the work tree), and its cost."""
        from pipeline.compare import compare

        return compare(self.spec, old, new, self.preview, self.cache_dir, self.note, self.max_shots)

    def build(
        self,
        output: BuildOutput,
        *,
        sequences: tuple[str, ...] = (),
        only: tuple[str, ...] = (),
        force: tuple[str, ...] = (),
        schedule: ScheduleOptions | None = None,
        renderer: RendererOptions | None = None,
        max_cost: float | None = None,
        frozen: bool = False,
        remote: bool = True,
        cluster: str | None = None,
    ) -> BuildSummary:
        """Plan, render what is missing, join the films, write the lock (build.py). The
        arguments are BuildRequest's."""
        from pipeline import build
        from pipeline.render import RendererOptions
        from pipeline.run.shots import ScheduleOptions

        request = build.BuildRequest(
            spec=self.spec,
            preview=self.preview,
            sequences=sequences,
            only=only,
            force=force,
            schedule=schedule or ScheduleOptions(),
            renderer=renderer or RendererOptions(),
            max_cost=max_cost,
            frozen=frozen,
            output_dir=self.output_dir,
            cache_dir=self.cache_dir,
            max_shots=self.max_shots,
            remote=remote,
            cluster=cluster,
        )
        return build.run(request, output)

    def pull(self, say: Callable[[str], None]) -> Transfer:
        """Fetch from the team cache what this storyboard uses and the local cache lacks;
        `say` hears each file fetched."""
        from pipeline.share import pull_storyboard

        loaded = planning.load(self.spec, self.preview, self.cache_dir, self.note)
        try:
            return pull_storyboard(loaded, say)
        finally:
            loaded.cache.close()


def storyboards(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The storyboards under `paths`, and the YAML files that could not be read to tell."""
    from pipeline.spec import find_storyboards

    return find_storyboards(paths)


def push(
    folder: Path, cache_dir: str | None, note: Callable[[str], None], say: Callable[[str], None]
) -> Transfer:
    """Share with the team cache every clip and film of the local cache it lacks; `say`
    hears each file sent."""
    from pipeline.cache import Cache, resolve_root
    from pipeline.project import project_root
    from pipeline.share import push_project

    cache = Cache(resolve_root(folder, cache_dir), note)
    try:
        return push_project(cache, project_root(folder), say)
    finally:
        cache.close()


def collect_garbage(
    paths: list[Path],
    cache_dir: str | None,
    note: Callable[[str], None],
    forget: list[Path],
    remove: bool,
) -> tuple[Collection, list[tuple[Path, bool]]]:
    """What the cache holds that no storyboard under `paths` uses (removed with `remove`),
    once the storyboards `forget` names are forgotten (each: whether it was known)."""
    from pipeline import gc
    from pipeline.cache import Cache, resolve_root

    cache = Cache(resolve_root(paths[0], cache_dir), note)
    try:
        forgotten = [(path, cache.storyboards.forget(path)) for path in forget]
        collection = gc.collect(cache, paths)
        if remove:
            gc.remove(cache, collection)
        return collection, forgotten
    finally:
        cache.close()
