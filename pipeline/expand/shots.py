"""Shots and stills: each render of an item in a variant, its model checked, its price,
and the exact request it sends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline import media, models
from pipeline.decisions import Decisions
from pipeline.errors import Problems, SpecError
from pipeline.expand.context import (
    DEFAULT_DURATION,
    DEFAULT_FPS,
    FRAME_POSITIONS,
    STILL_SIZE,
    Context,
    Variant,
    combinations,
    first_set,
    kind_of,
    select,
    size_of,
    worked_out,
)
from pipeline.expand.framing import WHOLE, kept_area
from pipeline.nodes import (
    Clip,
    FrameOf,
    Node,
    Still,
    render_key,
)
from pipeline.render import kind
from pipeline.spec import Spec
from pipeline.spec.schema import (
    RESOLUTIONS,
    FrameRef,
    SequenceShot,
    ShotSettings,
    ShotSpec,
)
from pipeline.templates import PromptSource, PromptTemplates

# The fields a model's check reads: one left out for a problem skips the check.
SHAPE_FIELDS = (
    "model", "resolution", "width", "height", "duration", "fps", "first_frame", "last_frame"
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """A shot's settings in effect: its own, else the defaults' (a still takes none)."""

    still: bool
    width: int
    height: int
    duration: int
    takes: int
    optimizer: bool | None
    seed: int | None
    negative: str | None
    audio: bool | None  # as given: None when neither the shot nor the defaults say
    fps: int | None  # as asked
    frames: tuple[tuple[str, str | FrameRef], ...]  # (position, a file or another's frame)

    @classmethod
    def of(cls, shot: ShotSpec, defaults: ShotSettings, still: bool) -> Settings:
        width, height = size_of(shot, defaults, STILL_SIZE if still else None)
        frames = []
        for position in FRAME_POSITIONS:
            name = f"{position}_frame"
            given = first_set(getattr(shot, name), getattr(defaults, name), None)
            if given is not None:
                frames.append((position, given))
        return cls(
            still=still,
            width=width,
            height=height,
            duration=0 if still else shot.duration or defaults.duration or DEFAULT_DURATION,
            takes=shot.takes or defaults.takes or 1,
            optimizer=first_set(shot.prompt_optimizer, defaults.prompt_optimizer, None),
            seed=first_set(shot.seed, defaults.seed, None),
            negative=first_set(shot.negative_prompt, defaults.negative_prompt, None),
            audio=first_set(shot.audio, defaults.audio, None),
            fps=shot.fps or defaults.fps,
            frames=tuple(frames),
        )


@dataclass(frozen=True)
class Item:
    """A shot (or still) of the storyboard being expanded: where it is, what it is, and its
    settings in effect; `where(field)`: where a field of it is written (its own, else the
    defaults')."""

    loc: tuple[str, int]
    shot: ShotSpec
    given: Settings
    where: Callable[[str], tuple[Any, ...]]


def expand_shot(
    spec: Spec,
    loc: tuple[str, int],
    shot: ShotSpec,
    variant: Variant,
    prompting: tuple[PromptTemplates, PromptSource],
    context: Context,
    by_id: dict[str, list[Node]],
) -> list[Node]:
    """Every render of one shot (or still) in one variant: its matrix and takes."""
    still = loc[0] == "stills"
    defaults = ShotSettings() if still else spec.storyboard.defaults
    given = Settings.of(shot, defaults, still)
    if given.optimizer:
        context.warnings[
            f"shot '{shot.id}': prompt_optimizer is on: the provider rewrites the prompt, "
            "so renders cannot be repeated"
        ] = None
    item = Item(loc, shot, given, _where(spec, loc, still))
    combos = combinations(shot.matrix, spec, (*loc, "matrix")) if shot.matrix else [("", {})]
    made: list[Node] = []
    for shot_variant, shot_values in combos:
        label = f"{shot.id}@{shot_variant}" if shot_variant else shot.id
        made += _combination(spec, item, (variant, label, shot_values), prompting, context, by_id)
    return made


def _where(spec: Spec, loc: tuple[str, int], still: bool) -> Callable[[str], tuple[Any, ...]]:
    """Where a field of an item is written: its own, else the defaults' (a still has none)."""
    source = spec.source

    def where(field: str) -> tuple[Any, ...]:
        if still:
            return (*loc, field) if source.has((*loc, field)) else loc
        return source.first((*loc, field), ("defaults", field))

    return where


def _combination(
    spec: Spec,
    item: Item,
    variant_of: tuple[Variant, str, dict[str, Any]],
    prompting: tuple[PromptTemplates, PromptSource],
    context: Context,
    by_id: dict[str, list[Node]],
) -> list[Node]:
    """The takes of one combination of an item's own matrix in one variant (`variant_of`: the
    variant, the combination's label, its values)."""
    variant, label, shot_values = variant_of
    loc, shot, given = item.loc, item.shot, item.given
    who = f"{kind_of(loc)} '{label}'" + (f" [{variant.name}]" if variant.name else "")
    whose = PromptSource(prompting[1].path, prompting[1].lines, who)
    around = {**variant.values, **shot_values}
    own = _shot_vars(spec, loc, shot, around, whose, prompting[0]) if shot.vars else {}
    values = {**variant.values, **own, **shot_values}
    model_id = _model(spec, loc, shot, {**variant.matrix, **shot_values}, values, prompting)
    info = models.lookup(model_id)
    fps = _fps(given.fps, info)
    positions = tuple(position for position, _ in given.frames)
    size = (given.width, given.height, given.duration, fps)
    # Each check is made whatever another finds: every problem of the shot is said at once.
    found = Problems()
    # Where a field is written is looked up only when some field was left out (it is slow).
    if not spec.left_out or not any(spec.stands_in(item.where(f)) for f in SHAPE_FIELDS):
        found.attempt(_check_model, spec, loc, shot, (model_id, info), size, positions, item.where)
    fields = (given.seed, given.negative, given.audio, given.optimizer)
    found.attempt(_check_fields, spec, shot, (model_id, info), fields, item.where, context.warnings)
    made_of = found.attempt(_inputs, spec, item, info, (by_id, shot_values), context)
    prompting_of = (prompting[0], whose, values)
    prompt = found.attempt(_checked_prompt, spec, item, prompting_of, (model_id, info), context)
    found.raise_any()
    images, hashes, after = made_of
    if len(hashes) < len(positions):
        return []  # a render it starts from failed, and said why: checked, it cannot be made
    placeholders = [
        _placeholder(digest, ahead)
        for digest, ahead in zip(hashes, _slots(after, len(hashes)), strict=True)
    ]
    audio = bool(given.audio)
    asked = Asked(
        prompt, given.width, given.height, given.duration, fps, given.optimizer, given.negative,
        audio,
    )  # fmt: skip
    request = _request(model_id, info, asked, list(zip(positions, placeholders, strict=True)))
    if not kind(context.renderer).paid:
        # An animatic's labels go where every format of its films keeps the picture.
        area = kept_area(context.framing.get(shot.id, []), given.width, given.height)
        if area != WHOLE:
            request = {**request, "previewLabelArea": list(area)}
    price = _price(shot, spec.storyboard, info, model_id, size[:3], audio)
    takes, pick, decided = _decided(context.decisions, shot, label, variant.name, given.takes)
    first = (Still if given.still else Clip)(
        key="",
        shot_id=shot.id,
        label=label,
        variant=variant.name,
        shot_vars=tuple(shot_values.items()),
        take=1,
        takes=takes,
        picked=False,
        model=model_id,
        width=given.width,
        height=given.height,
        duration=given.duration,
        fps=fps,
        prompt=prompt,
        request=request,
        images=tuple(images),
        image_hashes=tuple(hashes),
        price=price,
        index=loc[1],
        audio=audio or (info is not None and info.audio == "always"),
        after=tuple(after),
        decided=decided,
        chosen=pick is not None,
    )
    made = [
        _take(first, take, pick or 1, given.seed, context.renderer) for take in range(1, takes + 1)
    ]
    return made if pick or takes == 1 else _picked_by_default(made, context.flagged)


def _picked_by_default(takes: list[Node], flagged: Callable[[str], bool]) -> list[Node]:
    """The takes of a shot no one picked, the first one the quality check found nothing in
    picked (the first take when every one has a finding, or none is rendered yet)."""
    clean = next((t.take for t in takes if not flagged(t.key)), 1)
    if clean == 1:
        return takes
    said = f"take {clean} picked by default: the quality check found something in " + (
        "take 1" if clean == 2 else f"takes 1 to {clean - 1}"
    )
    return [
        replace(t, picked=t.take == clean, decided=said if t.take == clean else t.decided)
        for t in takes
    ]


def _take(first: Clip | Still, take: int, pick: int, seed: int | None, renderer: str) -> Node:
    """Take `take` of a render: its own seed, where the model takes one, and its own key."""
    request = first.request if seed is None else {**first.request, "seed": seed + take - 1}
    return replace(
        first,
        key=render_key(request, list(first.image_hashes), renderer, take),
        take=take,
        picked=take == pick,
        request=request,
    )


def _inputs(
    spec: Spec,
    item: Item,
    info: models.ModelInfo | None,
    upstream_of: tuple[dict[str, list[Node]], dict[str, Any]],
    context: Context,
) -> tuple[list[Path], list[str], list[FrameOf]]:
    """The item's frame images: files (checked against what the model takes, hashed), and
    frames of other renders (whose bytes, and so this render's key, are known once they are
    made: graph.resolve)."""
    by_id, shot_values = upstream_of
    shot, where = item.shot, item.where
    images: list[Path] = []
    hashes: list[str] = []
    after: list[FrameOf] = []
    for slot, (position, given) in enumerate(item.given.frames):
        field = f"{position}_frame"
        if isinstance(given, str):
            image, digest, image_info = context.inputs.image(given, where(field))
            problem = info.frames.problem(*_image_facts(image_info)) if info else None
            if problem:
                raise spec.source.error(where(field), f"shot '{shot.id}': '{given}' {problem}")
            images.append(image)
            hashes.append(digest)
            continue
        if given.name not in by_id:
            # It failed, and said why: the rest of this shot is still checked without it
            # (nothing is built while a problem stands).
            continue
        upstream = _upstream(spec, shot.id, given, by_id, shot_values, where(field))
        frame: str | float = "" if isinstance(upstream, Still) else given.frame
        if isinstance(frame, float) and frame >= upstream.duration:
            raise spec.source.error(
                (*where(field), "frame"),
                f"shot '{shot.id}': frame {frame:g} s is not inside '{upstream.label}' "
                f"({upstream.duration} s long): a time must be under its length",
                "for its last frame, write frame: last",
            )
        after.append(FrameOf(slot, upstream.key, upstream.label, frame))
        images.append(Path())  # known once the upstream render is: graph.resolve
        hashes.append("")
    return images, hashes, after


def _decided(
    decisions: Decisions, shot: ShotSpec, label: str, variant: str, takes: int
) -> tuple[int, int | None, str]:
    """A shot's takes and picked take in a variant, as its decisions file says over the
    storyboard (more takes asked for, a take picked; None: no one picked one), and the words
    that say so."""
    pick = shot.pick
    found = decisions.find(shot.id, label, variant)
    if found is None:
        return takes, pick, ""
    name, decided = found
    decision = decided.decision
    takes += decision.more
    where = decisions.where(decided)
    if decision.take is not None and decision.take > takes:
        raise SpecError(
            decisions.path,
            decided.line,
            1,
            f"decision '{name}': take {decision.take} is more than the shot's {takes} takes",
            "pick one of its takes, or ask for more with `storyboard reject --another`",
            code="decision",
        )
    said = []
    pick = decision.take or pick
    over = f", over `pick: {shot.pick}` in the storyboard" if shot.pick else ""
    if decision.verdict:
        said.append(f"take {pick or 1} {decision.verdict}{over if decision.take else ''}")
    elif decision.take is not None:
        said.append(f"take {pick} picked{over}")
    if decision.more:
        said.append(f"{decision.more} more take(s) asked for")
    who = f" by {decision.by.split(' <')[0]}" if decision.by else ""
    when = f" on {decision.at[:10]}" if decision.at else ""
    return takes, pick, f"{', '.join(said) or 'decided'} in {where}{who}{when}"


def _placeholder(digest: str, ahead: FrameOf | None) -> str:
    """What stands in a request for an input: its digest, or the upstream render's frame."""
    if digest or ahead is None:
        return f"sha256:{digest}"
    return f"after:{ahead.upstream}:{ahead.frame}"


def _slots(after: list[FrameOf], count: int) -> list[FrameOf | None]:
    """Each image slot's upstream render, None for a file."""
    by_slot: dict[int, FrameOf] = {ahead.slot: ahead for ahead in after}
    return [by_slot.get(slot) for slot in range(count)]


def _upstream(
    spec: Spec,
    shot_id: str,
    ref: FrameRef,
    by_id: dict[str, list[Node]],
    values: dict[str, Any],
    loc: tuple[Any, ...],
) -> Node:
    """The one render a frame reference names: the picked take (or `take:`), the variant its
    `vars:` name, else the one whose matrix values agree with the shot's own."""
    candidates = by_id[ref.name]
    chosen = select(candidates, SequenceShot(shot=ref.name, take=ref.take, vars=ref.vars))
    if len(chosen) > 1:
        agreeing = [c for c in chosen if all(values.get(k, v) == v for k, v in c.shot_vars)]
        chosen = agreeing or chosen
    if len(chosen) == 1:
        return chosen[0]
    known = sorted({", ".join(f"{k}: {v}" for k, v in c.shot_vars) for c in candidates})
    takes = candidates[0].takes
    if not chosen and ref.take is not None and ref.take > takes:
        problem = f"'{ref.name}' has {takes} take(s), not {ref.take}"
    elif not chosen:
        problem = f"no render of '{ref.name}' matches {ref.vars or {}}"
    else:
        problem = f"'{ref.name}' has {len(chosen)} variants here: say which with 'vars:'"
    hint = f"its variants: {'; '.join(known)}" if known else None
    raise spec.source.error(loc, f"shot '{shot_id}': {problem}", hint)


def _fps(asked: int | None, info: models.ModelInfo | None) -> int:
    """The rate asked (a model with an `fps` field), else the rate the model delivers."""
    if info is not None and info.is_image:
        return 0
    if info is not None and not info.takes_fps and info.fps:
        return info.fps[0]
    return asked or DEFAULT_FPS


def _model(
    spec: Spec,
    loc: tuple[str, int],
    shot: ShotSpec,
    matrix_values: dict[str, Any],
    values: dict[str, Any],
    prompting: tuple[PromptTemplates, PromptSource],
) -> str:
    """The shot's model in this variant: its own `model:` (a template over the variant's
    values), else a matrix variable `model`, else the defaults' (a template too). A still
    takes its own `model:` or the catalogue's default image model."""
    still = loc[0] == "stills"
    where: tuple[str | int, ...]
    if shot.model is not None:
        written, where = shot.model, (*loc, "model")
    elif still:
        return models.default_model(still=True)
    elif "model" in matrix_values:
        return str(matrix_values["model"]).strip()
    elif spec.storyboard.defaults.model is not None:
        written, where = spec.storyboard.defaults.model, ("defaults", "model")
    else:
        return models.default_model()
    if "{" not in written:
        return written.strip()
    source = PromptSource(*spec.source.text_lines(where))
    model = prompting[0].render(template=None, inline=written, context=values, where=source)
    if not model:
        raise spec.source.error(where, f"{kind_of(loc)} '{shot.id}': the model renders empty")
    return model


def _check_fields(
    spec: Spec,
    shot: ShotSpec,
    model: tuple[str, models.ModelInfo | None],
    settings: tuple[int | None, str | None, bool | None, bool | None],
    where: Callable[[str], tuple[Any, ...]],
    warnings: dict[str, None],
) -> None:
    """Fields the model does not take are errors naming what it takes; a model nobody knows
    is sent as it is."""
    model_id, info = model
    seed, negative, audio, optimizer = settings
    if info is None:
        warnings[f"shot '{shot.id}': unknown model '{model_id}': sent as is, with no price"] = None
        return
    refused = [
        ("seed", seed is not None and not info.accepts_seed, "seed"),
        (
            "negative_prompt",
            negative is not None and not info.accepts_negative_prompt,
            "negative prompt",
        ),
        ("audio", bool(audio) and info.audio == "none", "audio"),
        (
            "prompt_optimizer",
            optimizer is not None and not info.rewrite_setting,
            "prompt_optimizer",
        ),
    ]
    for name, wrong, what in refused:
        if wrong:
            raise spec.source.error(
                where(name),
                f"shot '{shot.id}': {model_id} ({info.name}) takes no {what}",
                f"it takes: {info.takes()}",
            )
    if audio is False and info.audio == "always":
        raise spec.source.error(
            where("audio"),
            f"shot '{shot.id}': {model_id} ({info.name}) makes its clips with sound, and no "
            "setting the API allows turns it off",
            "remove `audio: false`: its price is the price with sound",
        )


def _image_facts(image: media.ImageInfo) -> tuple[str, int, int, int]:
    return image.format, image.width, image.height, image.bytes


def _check_prompt_length(
    spec: Spec,
    loc: tuple[str, int],
    shot: ShotSpec,
    prompt: str,
    model: tuple[str, models.ModelInfo | None],
    warnings: dict[str, None],
) -> None:
    """A prompt the model would refuse is an error now, before anything is paid for."""
    model_id, info = model
    shortest, longest = info.prompt_range if info else (0, models.PROMPT_LIMIT)
    if not prompt or shortest <= len(prompt) <= longest:
        return
    message = (
        f"{kind_of(loc)} '{shot.id}': the prompt is {len(prompt):,} characters; {model_id} takes "
        f"{shortest} to {longest:,}"
    )
    if info is None:
        warnings[message] = None
        return
    field = "prompt" if shot.prompt is not None else "template"
    raise spec.source.error((*loc, field), message, "shorten the prompt")


def _price(
    shot: ShotSpec,
    board: Any,
    info: models.ModelInfo | None,
    model_id: str,
    shape: tuple[int, int, int],
    audio: bool,
) -> float | None:
    """The storyboard's price (a shot's `price:`, the defaults', or `prices:` of the model),
    else the catalogue's."""
    given = first_set(shot.price, board.defaults.price, board.prices.get(model_id), None)
    if given is not None:
        return float(given)
    return info.price(*shape, audio=audio) if info else None


def _check_model(
    spec: Spec,
    loc: tuple[str, int],
    shot: ShotSpec,
    model: tuple[str, models.ModelInfo | None],
    shape: tuple[int, int, int, int],
    positions: tuple[str, ...],
    where: Any,
) -> None:
    """A size, duration, fps or frame the model does not take is an error at plan time."""
    model_id, info = model
    if info is None:
        return
    width, height, duration, fps = shape
    source = spec.source
    kind = kind_of(loc)
    about = (f"{kind} '{shot.id}'",)
    if info.is_image != (kind == "still"):
        sort = "an image" if info.is_image else "a video"
        raise source.error(
            where("model"),
            f"{model_id} is {sort} model",
            "stills take image models, shots video models",
            about=about,
        )
    if not info.takes_size(width, height):
        field = "resolution" if source.has(where("resolution")) else "width"
        raise source.error(
            where(field),
            f"{width}x{height} is not a size {model_id} renders",
            f"allowed: {info.allowed_sizes()}",
            about=about,
        )
    if info.is_image:
        return
    if not info.renders(width, height, duration):
        raise source.error(
            where("duration"),
            f"{width}x{height} with duration {duration} s is not available for {model_id}",
            _shape_hint(info, width, height, duration),
            about=about,
        )
    asked_fps = shot.fps or spec.storyboard.defaults.fps
    if info.takes_fps and fps not in info.fps:
        allowed = ", ".join(str(f) for f in info.fps)
        raise source.error(
            where("fps"), f"{model_id} renders at {allowed} fps only, not {fps}", about=about
        )
    if not info.takes_fps and asked_fps is not None and asked_fps not in info.fps:
        raise source.error(
            where("fps"),
            f"{model_id} ({info.name}) takes no fps",
            f"it takes: {info.takes()}",
            about=about,
        )
    if "first" not in positions and not info.text_to_video:
        raise source.error(
            loc, f"{model_id} is image-to-video only: it needs a 'first_frame'", about=about
        )
    for position in positions:
        if position not in info.frame_positions:
            raise source.error(
                where(f"{position}_frame"),
                f"{model_id} ({info.name}) takes no {position} frame image",
                f"it takes: {info.takes()}",
                about=about,
            )


UPSCALED_TO = {1080: "1080p", 1440: "2k", 2160: "4k"}  # as `upscale:` names heights


def _shape_hint(info: models.ModelInfo, width: int, height: int, duration: int) -> str:
    """The sizes allowed; for a long shot at a size only short ones have, the way to get it
    anyway: render at a smaller size that takes the length, and upscale the take."""
    allowed = f"allowed: {info.allowed_sizes()}"
    smaller = [
        named
        for named, (w, h) in RESOLUTIONS.items()
        if h < height and duration in info.prices.get((w, h), {})
    ]
    upscaled = UPSCALED_TO.get(height)
    if not smaller or upscaled is None:
        return allowed
    return (
        f"{allowed}; for {upscaled} at {duration} s, render at {smaller[-1]} and add "
        f"'upscale: {upscaled}' to the shot"
    )


def _shot_vars(
    spec: Spec,
    loc: tuple[str, int],
    shot: ShotSpec,
    around: dict[str, Any],
    whose: PromptSource,
    templates: PromptTemplates,
) -> dict[str, Any]:
    """The shot's own vars, worked out in its variant (see `worked_out`)."""
    return {
        name: worked_out(spec, templates, value, (*loc, "vars", name), (around, whose))
        for name, value in shot.vars.items()
    }


def _checked_prompt(
    spec: Spec,
    item: Item,
    prompting: tuple[PromptTemplates, PromptSource, dict[str, Any]],
    model: tuple[str, models.ModelInfo | None],
    context: Context,
) -> str:
    """The shot's prompt in its variant, refused when the model would refuse it."""
    loc, shot = item.loc, item.shot
    model_id, info = model
    prompt = _prompt(shot, *prompting)
    if not prompt and not item.given.frames:
        raise spec.source.error(loc, f"shot '{shot.id}': the prompt renders empty")
    if not prompt and info is not None and info.needs_prompt:
        raise spec.source.error(loc, f"{kind_of(loc)} '{shot.id}': {model_id} needs a prompt")
    _check_prompt_length(spec, loc, shot, prompt, model, context.warnings)
    return prompt


def _prompt(
    shot: ShotSpec, templates: PromptTemplates, where: PromptSource, values: dict[str, Any]
) -> str:
    if shot.template is None and shot.prompt is None:
        return ""
    return templates.render(template=shot.template, inline=shot.prompt, context=values, where=where)


def prompt_source(spec: Spec, loc: tuple[str, int], shot: ShotSpec) -> PromptSource:
    """Where a shot's prompt is written (the same for each of its variants)."""
    at = (*loc, "prompt" if shot.prompt is not None else "template")
    return PromptSource(*spec.source.text_lines(at))


@dataclass(frozen=True, slots=True)
class Asked:
    """What a shot asks of its model, before the request is written in the model's fields."""

    prompt: str
    width: int
    height: int
    duration: int
    fps: int
    optimizer: bool | None
    negative: str | None
    audio: bool


# Fields sent to a model the catalogue does not know: the ones every video model lists.
UNKNOWN_MODEL_FIELDS = frozenset(
    {"positivePrompt", "negativePrompt", "width", "height", "duration", "inputs"}
)


def _request(
    model_id: str,
    info: models.ModelInfo | None,
    asked: Asked,
    frames: list[tuple[str, str]],
) -> dict[str, Any]:
    """The task exactly as it will be sent, in the model's own fields, minus taskUUID and
    image bytes (`frames`: each frame image's position and placeholder)."""
    still = info is not None and info.is_image
    fields = info.fields if info is not None else UNKNOWN_MODEL_FIELDS
    request: dict[str, Any] = {
        "taskType": models.IMAGE if still else models.VIDEO,
        "model": model_id,
        "outputFormat": "PNG" if still else "MP4",
        "deliveryMethod": "async",
        "includeCost": True,
    }
    # Some models take frame images or a size, never both: the frame sets the shape, and
    # `resolution`, where the model takes it with frames, how large it is rendered.
    if not (frames and info is not None and info.size_or_frames):
        request["width"], request["height"] = asked.width, asked.height
    elif info.resolution_with_frames:
        request["resolution"] = f"{min(asked.width, asked.height)}p"
    if not still:
        request["duration"] = asked.duration
    if "fps" in fields:
        request["fps"] = asked.fps
    if asked.prompt:
        request["positivePrompt"] = asked.prompt
    if asked.negative is not None:
        request["negativePrompt"] = asked.negative
    settings: dict[str, Any] = {}
    if info is not None and info.rewrite_setting:
        # Said either way: a provider that rewrites prompts by default makes renders that
        # cannot be repeated from their request.
        _, name, flag = info.rewrite_setting
        settings.setdefault(name, {})[flag] = bool(asked.optimizer)
    if info is not None and info.audio == "optional":
        # Said either way: a provider's default could be to charge for sound.
        _, name, flag = info.audio_setting
        settings.setdefault(name, {})[flag] = asked.audio
    if settings:
        request["providerSettings"] = settings
    if frames:
        request["inputs"] = {
            "frameImages": [{"image": image, "frame": position} for position, image in frames]
        }
    return request
