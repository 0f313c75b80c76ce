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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import plan as planning
from pipeline.errors import UserError, no_such
from pipeline.nodes import Clip, Still
from pipeline.settings import Environment, Selection, Target

if TYPE_CHECKING:
    from pipeline.build import BuildSummary
    from pipeline.compare import Comparison
    from pipeline.deciding import Act, DecisionResult
    from pipeline.export import Exported
    from pipeline.gc import Collection
    from pipeline.measure import Loudness
    from pipeline.qc import Findings
    from pipeline.render import RendererOptions
    from pipeline.request import BuildOutput
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
    # Read once, here or by the command line, and handed down: no step reads it again.
    environment: Environment = field(default_factory=Environment.read)

    def target(self, remote: bool = True) -> Target:
        """What this session looks at, as planning takes it."""
        return Target(
            self.spec,
            self.preview,
            self.cache_dir,
            self.output_dir,
            self.max_shots,
            remote,
            self.environment,
        )

    def load(self) -> planning.Loaded:
        """The storyboard read, expanded and planned; the caller closes `loaded.cache`."""
        loaded = planning.load(self.target(), self.note)
        if loaded.remote_problem is not None:
            self.note(f"warning: {loaded.remote_problem.message}: this is the plan without it")
        return loaded

    def looking_at(self) -> tuple[str, str | None]:
        """Which build the plan, status, review and diff of this session look at (its lock),
        and, when only the other kind has been built, how to look at that one: a preview
        build and a paid one are kept apart, each with its own lock and films."""
        from pipeline.lock import lock_path
        from pipeline.render import kind

        mine, other = ("preview", "runware") if self.preview else ("runware", "preview")
        lock, other_lock = lock_path(self.spec, mine), lock_path(self.spec, other)
        which = f"{kind(mine).build} of {self.spec}" + (
            f" ({lock})" if lock.exists() else f" (not built yet: no {lock})"
        )
        if lock.exists() or not other_lock.exists():
            return which, None
        how = "drop --preview" if self.preview else "add --preview"
        there = kind(other).build.replace("the ", "a ", 1)
        return which, f"there is {there}: {how} to look at it"

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
        cache = loaded.cache

        def checked(key: str) -> Findings | None:
            found = cache.clips.get(key) or cache.films.get(key)
            return found.qc if found is not None else None

        def heard(key: str) -> Loudness | None:
            found = cache.films.get(key)
            return found.loudness if found is not None else None

        try:
            rows = statuses(loaded.plan, checked, heard)
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
            raise no_such("shot", shot, self.spec, (s.id for s in loaded.spec.storyboard.shots))
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
                loaded.decisions,
                loaded.spec.root,
                self.note,
            )
        finally:
            loaded.cache.close()

    def contact_sheet(self, output: Path, changed_from: str | None = None) -> Path:
        """Draw the contact sheet of every picture render (a PNG at `output`); with
        `changed_from` (a git revision), the renders changed since then first, framed."""
        from pipeline.contact_sheet import draw, sheet_of
        from pipeline.render import kind

        changes = self.diff(changed_from, None) if changed_from else None
        loaded = self.load()
        try:
            build = kind(loaded.renderer).build
            sheet = sheet_of(loaded.spec.storyboard.name, build, loaded.plan, loaded.cache, changes)
            return draw(sheet, output)
        finally:
            loaded.cache.close()

    def decide(
        self, shot: str, act: Act, variants: tuple[str, ...] = (), values: tuple[str, ...] = ()
    ) -> DecisionResult:
        """Pick, approve or reject a take of `shot` (by label or id), or note on it, in the
        variants named and those whose matrix `values` (`flavour=caramel`) agree (else in
        every variant); written in the decisions file. Nothing is rendered: the outcome
        counts and prices the renders it adds, for the next build."""
        from pipeline import deciding

        loaded = self.load()
        loaded.cache.close()
        outcome = decide_in(loaded, shot, act, variants, values)
        return deciding.with_renders(outcome, loaded.plan, self.plan())

    def diff(self, old: str, new: str | None) -> Comparison:
        """What changes from revision `old` to `new` (None: the work tree), and its cost."""
        from pipeline.compare import compare

        return compare(self.target(), old, new, self.note)

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
        approved: bool = False,
        join_only: bool = False,
        qc: str = "warn",
    ) -> BuildSummary:
        """Plan, render what is missing, join the films, write the lock (build.py). The
        arguments are BuildRequest's."""
        from pipeline import build
        from pipeline.render import RendererOptions
        from pipeline.request import BuildRequest, QcMode
        from pipeline.run.shots import ScheduleOptions

        request = BuildRequest(
            target=self.target(remote),
            selection=Selection(sequences, only, force, approved, join_only),
            schedule=schedule or ScheduleOptions(),
            renderer=renderer or RendererOptions(),
            max_cost=max_cost,
            frozen=frozen,
            # Only the person building names a cluster (never a repository): its answers
            # are unpickled here.
            cluster=cluster or self.environment.cluster,
            qc=QcMode(qc),
        )
        return build.run(request, output)

    def export(self, format: str = "otio", sequences: tuple[str, ...] = ()) -> list[Exported]:
        """Write the timeline of each film (of the sequences named, else every one) beside
        it, in `format` (export.FORMATS): made from its recipe, pointing at the clips in the
        cache. A film whose renders the cache does not hold yet is said, not written."""
        from pipeline import export, media
        from pipeline.cache import write_atomic
        from pipeline.outputs import output_path

        export.adapter(format)  # an adapter that is not installed is refused first
        loaded = self.load()
        cache = loaded.cache

        def clip(key: str) -> export.Media | None:
            record = cache.clips.get(key)
            return export.Media(cache.clips.path(key), record.duration) if record else None

        def sound_file(path: Path) -> float:
            return media.sound_info(path).duration

        try:
            graph = loaded.plan.graph
            named = graph.films_named(sequences, self.spec)
            films = [graph.film(f) for f in named] if named is not None else graph.films()
            done = []
            for film in films:
                files = export.media_of(film, clip, sound_file)
                if isinstance(files, list):
                    error = f"not rendered yet: {', '.join(files)} (build it first)"
                    done.append(export.Exported(film, None, error))
                    continue
                path = output_path(loaded.films, film).with_suffix(export.FORMATS[format][1])
                write_atomic(path, export.written(export.timeline(film, files), format))
                done.append(export.Exported(film, path))
            return done
        finally:
            cache.close()

    def pull(self, say: Callable[[str], None]) -> Transfer:
        """Fetch from the team cache what this storyboard uses and the local cache lacks;
        `say` hears each file fetched."""
        from pipeline.share import pull_storyboard

        loaded = planning.load(self.target(), self.note)
        try:
            return pull_storyboard(loaded, say)
        finally:
            loaded.cache.close()


def decide_in(
    loaded: planning.Loaded,
    shot: str,
    act: Act,
    variants: tuple[str, ...] = (),
    values: tuple[str, ...] = (),
) -> DecisionResult:
    """`Session.decide` on a storyboard planned already, in the decisions file of the build
    it was planned for: that file is read again under its lock, so that what was decided
    meanwhile (by another command, or the app) is kept. Each line said names the build."""
    from pipeline import deciding, decisions
    from pipeline.expand.context import combinations

    spec, plan = loaded.spec, loaded.plan
    chosen = decided_variants(
        combinations(spec.storyboard.matrix or {}, spec, ("matrix",)), variants, values
    )
    renders = [s for s in plan.graph.expansion.shots if isinstance(s, (Clip, Still))]
    labels = dict.fromkeys(s.label for s in renders if shot in (s.label, s.shot_id))
    if not labels:
        raise no_such("shot", shot, spec.path, (s.label for s in renders))
    act = replace(act, by=act.by or decisions.who(spec.folder), at=act.at or decisions.now())

    def decided(
        current: decisions.Decisions,
    ) -> tuple[decisions.Changes, deciding.DecisionResult]:
        outcomes = [deciding.decide(current, renders, label, chosen, act) for label in labels]
        changes = {k: v for outcome in outcomes for k, v in outcome.changes.items()}
        where = f" ({current.named})"
        said = tuple(line + where for outcome in outcomes for line in outcome.said)
        return changes, deciding.DecisionResult(changes, said)

    return decisions.update(loaded.decisions, spec.root, decided)


def decided_variants(
    every: list[tuple[str, dict[str, Any]]], names: tuple[str, ...], values: tuple[str, ...]
) -> tuple[str, ...]:
    """The variants a decision is for: those named, and those whose matrix values agree
    with each `key=value`; () when neither is given (every variant)."""
    known = {name: variables for name, variables in every}
    for name in names:
        if name not in known:
            raise UserError(f"no variant '{name}'", f"variants: {', '.join(known) or '(none)'}")
    wanted: dict[str, str] = {}
    for value in values:
        key, equals, given = value.partition("=")
        if not equals or not key:
            raise UserError(f"--vars {value}: write key=value (flavour=caramel)")
        wanted[key.strip()] = given.strip()
    chosen = list(names)
    if wanted:
        matching = [
            name
            for name, variables in every
            if all(str(variables.get(k)) == v for k, v in wanted.items())
        ]
        if not matching:
            shown = ", ".join(values)
            raise UserError(f"no variant has {shown}", f"variants: {', '.join(known)}")
        chosen += [name for name in matching if name not in chosen]
    return tuple(chosen)


def storyboards(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The storyboards under `paths`, and the YAML files that could not be read to tell."""
    from pipeline.spec import find_storyboards

    return find_storyboards(paths)


def push(
    folder: Path,
    note: Callable[[str], None],
    say: Callable[[str], None],
    environment: Environment | None = None,
    cache_dir: str | None = None,
) -> Transfer:
    """Share with the team cache every clip and film of the local cache it lacks; `say`
    hears each file sent. `environment`: as read (else now)."""
    from pipeline.cache import Cache, resolve_root
    from pipeline.project import project_root
    from pipeline.share import push_project

    environment = environment or Environment.read()
    cache = Cache(resolve_root(folder, cache_dir or environment.cache_dir), note)
    try:
        return push_project(cache, project_root(folder), say, environment.remote)
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
