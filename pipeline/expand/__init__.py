"""Storyboard -> shots and sequences: matrix, takes, templates, and the exact provider request."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.decisions import Decisions, line_name
from pipeline.errors import Problems
from pipeline.expand.context import (
    MAX_COUNTED,
    MAX_SHOTS,
    Context,
    Inputs,
    Saying,
    combinations,
    combo_matches,
    variant_of,
    vars_order,
)
from pipeline.expand.films import EmptyFilm, expand_sequence, formatted, with_voice
from pipeline.expand.framing import framing
from pipeline.expand.shots import expand_shot, prompt_source
from pipeline.expand.sound import Made, expand_music, expand_voice, finished
from pipeline.expand.text import with_captions, with_text
from pipeline.nodes import (
    Expansion,
    Film,
    Node,
)
from pipeline.order import upstream_first
from pipeline.render import kind
from pipeline.spec import Spec
from pipeline.spec.references import frame_refs
from pipeline.spec.schema import SequenceSpec, ShotSpec
from pipeline.templates import PromptTemplates
from pipeline.typeface import Fonts


def expand(
    spec: Spec,
    renderer: str,
    max_shots: int | None = None,
    fonts: Fonts | None = None,
    decisions: Decisions | None = None,
    flagged: Callable[[str], bool] | None = None,
) -> Expansion:
    """Every still, shot and sequence of every variant; errors point at the YAML or template
    line. A storyboard that would expand to more than `max_shots` (MAX_SHOTS) shots is refused
    first. A shot that starts from another render's frame has a pending key: the graph
    resolves it once the frame exists. `fonts` keeps the sanitized copies of project fonts
    (in the cache: `Fonts(cache.fonts)`); `decisions`: the picks, approvals and notes of
    the build expanded for (its own file: a pick on the preview build never changes a paid
    film), and the problems of that file; `flagged`: whether the quality check found
    something in a render's clip, by key (such a take is never picked by default)."""
    board = spec.storyboard
    decisions = decisions or Decisions(Path())
    check_size(spec, decisions, max_shots or MAX_SHOTS)
    templates = PromptTemplates(spec.template_dirs, spec.root)
    # Labels of free animatics are kept inside what every format of their films keeps.
    shapes = framing(board) if not kind(renderer).paid else {}
    context = Context(renderer, Inputs(spec), {}, decisions, shapes)
    context.flagged = flagged or context.flagged
    fonts = fonts or Fonts()
    problems = Problems([*spec.problems, *decisions.problems])
    # Items that cannot be checked (left out of the storyboard, a prompt that cannot be
    # read) are not tried. One with a problem in a variant is tried in each other variant:
    # a missing key may be another (a problem it had before is not said again). What starts
    # from one that was not made, or joins one, is checked without it.
    failed = set(spec.failed)
    shots: list[Node] = []
    sequences: list[Film] = []
    variants = combinations(board.matrix or {}, spec, ("matrix",))
    order = render_order(spec)
    items = {loc: _item(board, loc) for loc in order}
    sources = {}
    for loc, item in items.items():
        sources[loc] = problems.attempt(prompt_source, spec, loc, item)
        if sources[loc] is None:
            failed.add(item.id)
    finishing: dict[str, Node] = {}  # lip-syncs and upscales, made once per input
    with templates.limits():
        worked = problems.attempt(vars_order, spec, templates)  # the vars that are templates
        for combination in variants if worked is not None else ():
            variant = problems.attempt(variant_of, spec, templates, worked, combination)
            if variant is None:
                continue
            variant_name = variant.name
            saying = Saying(context.inputs, templates, fonts, variant.values, variant.name)
            voices, music = _sounds(spec, variant_name, saying, context, problems, failed)
            by_id: dict[str, list[Node]] = {}
            for loc in order:
                item = items[loc]
                if problems.full:
                    break
                if item.id in failed:
                    continue
                prompting = (templates, sources[loc])
                made = problems.attempt_in(
                    variant_name, expand_shot, spec, loc, item, variant, prompting, context, by_id
                )
                if made is not None:
                    by_id[item.id] = made
            shots.extend(voices.values())
            shots.extend(music.values())
            for item in (*board.stills, *board.shots):
                shots.extend(by_id.get(item.id, ()))
            used: dict[str, Node] = {}  # the finishing renders this variant's films use
            finish = _finisher(spec, context, voices, finishing, used)
            made = Made(voices, music, finish, lambda said: context.warnings.setdefault(said))
            for index, sequence_spec in enumerate(board.sequences):
                if problems.full:
                    break
                # A sequence is checked on what it has: a shot, a voice or a bed that failed
                # is left out of it (its own problem is said; nothing is built).
                if sequence_spec.id in failed:
                    continue
                films = problems.attempt_in(
                    variant_name,
                    _films,
                    spec,
                    index,
                    sequence_spec,
                    variant_name,
                    by_id,
                    saying,
                    made,
                )
                sequences.extend(films or ())
            shots.extend(replace(shot, variant=variant_name) for shot in used.values())
    problems.raise_any()
    for warning in _unused_decisions(decisions, shots):
        context.warnings.setdefault(warning)
    variant_names = tuple(n for n, _ in variants)
    warnings = tuple(context.warnings)
    return Expansion(renderer, tuple(shots), tuple(sequences), variant_names, warnings)


def _sounds(
    spec: Spec,
    variant: str,
    saying: Saying,
    context: Context,
    problems: Problems,
    failed: set[str],
) -> tuple[dict[str, Node], dict[str, Node]]:
    """The variant's voices and music by id; one that fails is said, and what uses it is
    checked without it."""
    voices: dict[str, Node] = {}
    music: dict[str, Node] = {}
    board = spec.storyboard
    for found, ids, make in (
        (voices, [voice.id for voice in board.voices], expand_voice),
        (music, [bed.id for bed in board.music], expand_music),
    ):
        for index, item_id in enumerate(ids):
            if item_id in failed or problems.full:
                continue
            shot = problems.attempt_in(variant, make, spec, index, variant, saying, context)
            if shot is not None:
                found[item_id] = shot
    return voices, music


def _finisher(
    spec: Spec,
    context: Context,
    voices: dict[str, Node],
    finishing: dict[str, Node],
    used: dict[str, Node],
) -> Callable[[str, Node], Node]:
    """How a variant's films get the render they use of a take: lip-synced, upscaled (made
    once per input across variants, in `finishing`); each one made or used is in `used`."""
    where = {shot.id: ("shots", index) for index, shot in enumerate(spec.storyboard.shots)}

    def finish(shot_id: str, take: Node) -> Node:
        loc = where.get(shot_id)
        if loc is None:  # a still
            return take
        item = spec.storyboard.shots[loc[1]]
        return finished(spec, loc, item, take, (voices, context), finishing, used)

    return finish


def _films(
    spec: Spec,
    index: int,
    sequence_spec: SequenceSpec,
    variant_name: str,
    by_id: dict[str, list[Node]],
    saying: Saying,
    made: Made,
) -> list[Film]:
    """The films of one sequence in one variant: one per format, with voice and text. Each
    part is checked whatever another's problem: every problem is said at once."""
    problems = Problems()
    try:
        base = expand_sequence(
            spec, index, sequence_spec, variant_name, by_id, saying, made, problems
        )
    except EmptyFilm:  # every shot of it failed, and said why
        problems.raise_any()
        return []
    if sequence_spec.voice is not None:
        base = problems.attempt(with_voice, spec, index, base, saying, made) or base
    if sequence_spec.captions:
        base = problems.attempt(with_captions, spec, index, base, saying) or base
    films = []
    for film in problems.attempt(formatted, spec, index, base) or [base]:
        if sequence_spec.text or sequence_spec.subtitles is not None:
            film = problems.attempt(with_text, spec, index, film, saying) or film
        films.append(film)
    problems.raise_any()
    return films


def _unused_decisions(decisions: Decisions, shots: list[Node]) -> list[str]:
    """A line of the decisions file that holds for no render: the shot was renamed or
    removed, or the variant is gone. Said, not refused: the rest of the file still holds."""
    if not decisions.entries:
        return []
    made = {(name, shot.variant) for shot in shots for name in (shot.label, shot.shot_id)}
    labels = {name for name, _ in made}
    return [
        f"{decisions.where(decided)}: '{line_name(label, variant)}' is decided, and the "
        "storyboard has no such shot"
        + ("" if label not in labels else " in that variant")
        + ": the line is left as it is"
        for (label, variant), decided in decisions.entries.items()
        if (label, variant) not in made and (variant or label not in labels)
    ]


def _item(board: Any, loc: tuple[str, int]) -> ShotSpec:
    return board.stills[loc[1]] if loc[0] == "stills" else board.shots[loc[1]]


def render_order(spec: Spec) -> list[tuple[str, int]]:
    """Stills and shots, each after the renders whose frames it starts from (the spec
    refused cycles), else in the order written."""
    board = spec.storyboard
    where: dict[str, tuple[str, int]] = {s.id: ("stills", i) for i, s in enumerate(board.stills)}
    where |= {s.id: ("shots", i) for i, s in enumerate(board.shots)}
    needs: dict[str, list[str]] = {}
    for _, shot_id, ref in frame_refs(board):
        needs.setdefault(shot_id, []).append(ref.name)
    return [where[name] for name in upstream_first(list(where), lambda n: needs.get(n, ()))]


def check_size(spec: Spec, decisions: Decisions, max_shots: int) -> None:
    """Refuse, before anything is expanded, a storyboard of more than `max_shots` shots."""
    board = spec.storyboard
    default_takes = board.defaults.takes or 1
    per_variant = 0
    exact = True
    for shot in board.shots:
        count, counted = _combination_count(shot.matrix or {}, max_shots)
        per_variant += count * (shot.takes or default_takes)
        exact = exact and counted
    for still in board.stills:  # stills are renders too, and take no defaults
        count, counted = _combination_count(still.matrix or {}, max_shots)
        per_variant += count * (still.takes or 1)
        exact = exact and counted
    variants, counted = _combination_count(board.matrix or {}, max_shots)
    # Takes a decisions file asks for count too (a line for the shot: in every variant).
    more = sum(
        decided.decision.more * (1 if variant else variants)
        for (_, variant), decided in decisions.entries.items()
    )
    total = variants * per_variant + more
    if total <= max_shots:
        return
    axes = [len(v) for k, v in (board.matrix or {}).items() if k not in ("include", "exclude")]
    product = " x ".join(str(n) for n in axes) or "1"
    raise spec.source.error(
        ("matrix",) if board.matrix else ("shots",),
        f"the storyboard expands to {'' if exact and counted else 'up to '}{total:,} shots "
        f"({variants:,} variants of the matrix {product}, times {per_variant:,} shots and "
        f"takes each{f', and {more:,} more takes its decisions file asks for' if more else ''}): "
        f"over the limit of {max_shots:,}",
        "make the matrix smaller (fewer values, exclude:), or raise the limit with --max-shots",
    )


def _combination_count(matrix: dict[str, Any], max_shots: int) -> tuple[int, bool]:
    """How many combinations a matrix makes, and whether that is exact: its `exclude:`
    entries are counted out (without building the combinations) up to MAX_COUNTED; beyond,
    the product of its axes is an upper bound."""
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    product = math.prod(len(values) for values in axes.values())
    included = len(matrix.get("include", []))
    excludes = matrix.get("exclude", [])
    if not excludes:
        return product + included, True
    if product + included <= max_shots or product > MAX_COUNTED:
        return product + included, False
    kept = sum(
        1
        for values in itertools.product(*axes.values())
        if not any(combo_matches(dict(zip(axes, values, strict=True)), e) for e in excludes)
    )
    return kept + included, True
