"""Voices and music: a variant's speech and music renders, their requests and prices; and
the finishing renders of a clip (a lip-sync to a voice, an upscale to a delivery size)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pipeline import models
from pipeline.expand.context import Context, Saying, first_set, said_as
from pipeline.nodes import (
    FrameOf,
    LipSync,
    Music,
    Node,
    Upscale,
    Voice,
    made_as,
    render_key,
)
from pipeline.spec import Spec
from pipeline.spec.schema import LipsyncSpec, MusicSpec, ShotSpec, UpscaleSpec, VoiceSpec

Edit = TypeVar("Edit", LipSync, Upscale)

AUDIO_FORMAT = "MP3"  # the models' default: small, and every player reads it
MUSIC_PREVIEW_SECONDS = 30.0  # a bed's length in preview when it gives none
LIPSYNC_MODE = "cut_off"  # the voice is cut where the clip ends: the clip keeps its length
# A voice's length is estimated from its characters, and a lip-sync is billed by the voice's
# real length: until the voice is spoken, its price counts this much more than the estimate,
# so that a slow voice does not bill above what the budget counted.
VOICE_LENGTH_MARGIN = 1.5
MAX_VOICE_ID = 200


def _tool(spec: Spec, loc: tuple[Any, ...], given: str | None, kind: str) -> models.ToolInfo:
    """The model a voice, music, upscale or lip-sync names (else the catalogue's default),
    refused unless the catalogue knows it as that kind of model."""
    air = given or models.default_tool(kind)
    info = models.tool(air)
    if info is None or info.kind != kind:
        known = [t.air for t in models.catalogue().tools.values() if t.kind == kind]
        raise spec.source.error(
            (*loc, "model") if given else loc,
            f"'{air}' is not a {kind} model the catalogue knows",
            f"{kind} models: {', '.join(known)}",
        )
    return info


def _request(info: models.ToolInfo, output_format: str, **fields: Any) -> dict[str, Any]:
    """The task exactly as it will be sent (minus taskUUID): the model's `fields`, its
    output as a file to download, the result polled for, its cost reported."""
    return {
        "taskType": info.task,
        "model": info.air,
        **fields,
        "outputType": "URL",
        "outputFormat": output_format,
        "deliveryMethod": "async",
        "includeCost": True,
    }


def _words(
    spec: Spec,
    loc: tuple[Any, ...],
    written: str,
    saying: Saying,
    whose: tuple[str, models.ToolInfo],
) -> str:
    """A voice's text or a bed's prompt as the variant says it, as long as the model takes."""
    name, info = whose
    said = said_as(spec, loc, written, saying).strip()
    low, high = info.text_range
    if not low <= len(said) <= high:
        raise spec.source.error(
            loc,
            f"{name}: the {loc[-1]} is {len(said)} characters; {info.air} takes {low} to {high}",
        )
    control = next((c for c in said if unicodedata.category(c) == "Cc" and c not in "\n\t"), None)
    if control is not None:
        raise spec.source.error(
            loc,
            f"{name}: the {loc[-1]} holds the control character U+{ord(control):04X}",
            "a paid render says every character it is sent: remove it",
        )
    if not any(_visible(c) for c in said):
        raise spec.source.error(
            loc,
            f"{name}: the {loc[-1]} says nothing: it has only spaces, control or zero-width "
            "characters",
        )
    return said


def _visible(character: str) -> bool:
    """Whether a character shows or sounds: not a space, a control or a format character
    (zero-width joiners and marks)."""
    return unicodedata.category(character)[0] not in "ZC"


def spoken_seconds(text: str, rate: float, speed: float) -> float:
    """How long `text` takes to say at `rate` characters a second (Latin script) and
    `speed`: a wide (CJK) character is a syllable, and counts as three."""
    weight = sum(3 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return round(weight / (rate * speed), 2)


def _priced(given: float | None, board: Any, air: str, estimate: float | None) -> float | None:
    """The storyboard's price (the item's `price:`, or `prices:` of the model), else the
    catalogue's estimate."""
    price = _set_price(given, board, air)
    return price if price is not None else estimate


def _set_price(given: float | None, board: Any, air: str) -> float | None:
    """The price the storyboard sets (the item's `price:`, or `prices:` of the model)."""
    price = first_set(given, board.prices.get(air), None)
    return float(price) if price is not None else None


@dataclass(frozen=True)
class Made:
    """What a variant's films use besides clips: its voices and music by id, and the
    finished render of a take (`finish(shot id, take)`: lip-synced, upscaled)."""

    voices: dict[str, Node]
    music: dict[str, Node]
    finish: Callable[[str, Node], Node]
    warn: Callable[[str], None]


def expand_voice(spec: Spec, index: int, variant: str, saying: Saying, context: Context) -> Node:
    """A voice of one variant: its text and voice id as the variant says them."""
    return _voice(spec, index, spec.storyboard.voices[index], variant, saying, context)


def _voice(
    spec: Spec, index: int, voice: VoiceSpec, variant: str, saying: Saying, context: Context
) -> Node:
    loc = ("voices", index)
    info = _tool(spec, loc, voice.model, "speech")
    text = _words(spec, (*loc, "text"), voice.text, saying, (f"voice '{voice.id}'", info))
    speaker = _voice_id(spec, (*loc, "voice"), voice, saying)
    speech = {"text": text, "voice": speaker} | {
        name: value for name in info.speech if (value := getattr(voice, name, None)) is not None
    }
    request = _request(info, AUDIO_FORMAT, speech=speech)
    estimate = spoken_seconds(text, info.speech_rate or 15.0, voice.speed or 1.0)
    price = _priced(voice.price, spec.storyboard, info.air, info.cost(characters=len(text)))
    return _sound(
        Voice, (voice.id, variant, index), info, request, (text, estimate), price, context
    )


def _voice_id(spec: Spec, loc: tuple[Any, ...], voice: VoiceSpec, saying: Saying) -> str:
    """The provider's voice id as the variant says it: one word of printable characters."""
    speaker = said_as(spec, loc, voice.voice, saying).strip()
    if not speaker:
        raise spec.source.error(loc, f"voice '{voice.id}': the voice id is empty")
    if (
        len(speaker) > MAX_VOICE_ID
        or not speaker.isprintable()
        or any(c.isspace() for c in speaker)
    ):
        shown = speaker[:40].encode("unicode_escape").decode()
        raise spec.source.error(
            loc,
            f"voice '{voice.id}': '{shown}' is not a voice id: one word of printable "
            f"characters, at most {MAX_VOICE_ID}",
            "a voice id names one of the provider's voices (English_expressive_narrator)",
        )
    return speaker


def expand_music(spec: Spec, index: int, variant: str, saying: Saying, context: Context) -> Node:
    """A music bed of one variant: its prompt as the variant says it."""
    return _music(spec, index, spec.storyboard.music[index], variant, saying, context)


def _music(
    spec: Spec, index: int, music: MusicSpec, variant: str, saying: Saying, context: Context
) -> Node:
    loc = ("music", index)
    info = _tool(spec, loc, music.model, "music")
    whose = (f"music '{music.id}'", info)
    prompt = _words(spec, (*loc, "prompt"), music.prompt, saying, whose)
    request = _request(info, AUDIO_FORMAT, positivePrompt=prompt)
    if music.seed is not None:
        request["seed"] = music.seed
    if music.instrumental and music.lyrics is not None:
        raise spec.source.error(
            (*loc, "lyrics"),
            f"music '{music.id}': lyrics are sung, and instrumental: true has no singing",
            "remove instrumental: true (a bed with lyrics is vocal), or the lyrics",
        )
    instrumental = music.instrumental if music.instrumental is not None else music.lyrics is None
    settings: dict[str, Any] = {"instrumental": instrumental}
    if music.lyrics is not None:
        settings["lyrics"] = said_as(spec, (*loc, "lyrics"), music.lyrics, saying).strip()
    elif not instrumental:
        settings["lyricsOptimizer"] = True  # a vocal track needs words: the provider writes them
    request["settings"] = {name: value for name, value in settings.items() if name in info.settings}
    length = music.duration or MUSIC_PREVIEW_SECONDS  # what a preview draws
    price = _priced(music.price, spec.storyboard, info.air, info.cost())
    return _sound(
        Music, (music.id, variant, index), info, request, (prompt, length), price, context
    )


def _sound(
    kind: type[Voice] | type[Music],
    item: tuple[str, str, int],
    info: models.ToolInfo,
    request: dict[str, Any],
    said: tuple[str, float],
    price: float | None,
    context: Context,
) -> Voice | Music:
    """A voice or a bed: `item` (its id, variant, index), `said` (its words, its seconds)."""
    item_id, variant, index = item
    words, seconds = said
    return kind(
        key=render_key(request, [], context.renderer, 1),
        shot_id=item_id,
        label=item_id,
        variant=variant,
        shot_vars=(),
        take=1,
        takes=1,
        picked=True,
        model=info.air,
        width=0,
        height=0,
        duration=seconds,
        fps=0,
        prompt=words,
        request=request,
        images=(),
        image_hashes=(),
        price=price,
        index=index,
        audio=True,
    )


# -- finishing: lip-sync, then upscale, of the take a film uses --------------------------


def finished(
    spec: Spec,
    loc: tuple[Any, ...],
    item: ShotSpec,
    take: Node,
    having: tuple[dict[str, Node], Context],
    made: dict[str, Node],
    used: dict[str, Node],
) -> Node:
    """The render a film uses of `take`: the take itself, or it lip-synced to a voice and
    then upscaled, as the shot asks (`having` the variant's voices). Each is made once per
    input (`made`, by the key of the render it starts from and what it asks), however many
    films use it; each one used is put in `used`, by key."""
    voices, context = having
    shot = take
    lipsync, upscale = item.lipsync, item.upscale
    if lipsync is not None and lipsync.voice in voices:
        voice, clip = voices[lipsync.voice], shot
        name = f"lipsync:{clip.key}:{voice.key}:{lipsync.model}"
        shot = _once(made, used, name, lambda: _lipsync(spec, loc, lipsync, clip, voice, context))
    if upscale is not None:
        source = shot
        name = f"upscale:{source.key}:{upscale.model}:{upscale.resolution}"
        shot = _once(made, used, name, lambda: _upscale(spec, loc, upscale, source, context))
    return shot


def _once(
    made: dict[str, Node], used: dict[str, Node], name: str, make: Callable[[], Node]
) -> Node:
    if name not in made:
        made[name] = make()
    used.setdefault(made[name].key, made[name])
    return made[name]


def _lipsync(
    spec: Spec,
    loc: tuple[Any, ...],
    given: LipsyncSpec,
    clip: Node,
    voice: Node,
    context: Context,
) -> Node:
    info = _tool(spec, (*loc, "lipsync"), given.model, "lipsync")
    request = _request(
        info,
        "MP4",
        inputs={
            "video": f"after:{clip.key}:",
            "audios": [{"id": "voice", "source": f"after:{voice.key}:"}],
        },
        providerSettings={info.provider: {"syncMode": LIPSYNC_MODE}},
    )
    places = (("inputs", "video"), ("inputs", "audios", 0, "source"))
    # Billed by the second of the whole voice: its estimate with a margin until it is spoken.
    estimate = info.cost(seconds=voice.duration * VOICE_LENGTH_MARGIN)
    price = _priced(given.price, spec.storyboard, info.air, estimate)
    by_voice = (
        (1, info.price) if _set_price(given.price, spec.storyboard, info.air) is None else None
    )
    inputs = (FrameOf(0, clip.key, clip.label, ""), FrameOf(1, voice.key, voice.label, ""))
    lipsync = _edit(LipSync, clip, info, request, (places, inputs), price, context, voice.key)
    return replace(lipsync, priced_by=by_voice)


STANDARD_RATIOS = (16 / 9, 4 / 3, 1.0, 21 / 9, 3 / 2)  # long side over short


def _upscale(
    spec: Spec, loc: tuple[Any, ...], given: UpscaleSpec, clip: Node, context: Context
) -> Node:
    info = _tool(spec, (*loc, "upscale"), given.model, "upscale")
    short = (info.resolutions or {}).get(given.resolution)
    if short is None:
        raise spec.source.error(
            (*loc, "upscale"),
            f"shot '{clip.shot_id}': {info.air} does not upscale to {given.resolution}",
            f"it upscales to {', '.join(info.resolutions or {})}",
        )
    # The upscaler picks the size it delivers: the film takes the clip at `resolution`.
    width, height = _scaled(clip.width, clip.height, short)
    request = _request(info, "MP4", inputs={"video": f"after:{clip.key}:"})
    estimate = info.cost(seconds=clip.duration)
    price = _priced(given.price, spec.storyboard, info.air, estimate)
    upstream = (FrameOf(0, clip.key, clip.label, ""),)
    places = (("inputs", "video"),)
    upscaled = _edit(Upscale, clip, info, request, (places, upstream), price, context, clip.speaks)
    by_clip = (
        (0, info.price) if _set_price(given.price, spec.storyboard, info.air) is None else None
    )
    return replace(upscaled, width=width, height=height, priced_by=by_clip)


def _scaled(width: int, height: int, short: int) -> tuple[int, int]:
    """A clip's size with its short side at `short`, its shape kept (sides even): a shape
    within half a percent of a standard one is that one (a model's 1366x768 is 16:9, so
    its 2k is 2560x1440, the size the upscaler delivers and platforms take, not 2562)."""
    ratio = max(width, height) / min(width, height)
    exact = next((r for r in STANDARD_RATIOS if abs(ratio - r) <= 0.005 * r), ratio)
    long_side = 2 * round(short * exact / 2)
    return (long_side, short) if width >= height else (short, long_side)


def _edit(
    kind: type[Edit],
    clip: Node,
    info: models.ToolInfo,
    request: dict[str, Any],
    inputs: tuple[tuple[tuple[str | int, ...], ...], tuple[FrameOf, ...]],
    price: float | None,
    context: Context,
    speaks: str = "",
) -> Edit:
    """A lip-sync or an upscale of `clip`: its `inputs` (where each goes in the request,
    and the render it is), keyed once they are known."""
    places, upstream = inputs
    hashes = [""] * len(upstream)
    edited = made_as(
        kind,
        clip,
        label=f"{clip.label}/{kind.kind}",
        model=info.air,
        request=request,
        images=tuple(Path() for _ in upstream),  # known once the inputs are: graph.resolve
        image_hashes=tuple(hashes),
        price=price,
        audio=bool(speaks) or clip.audio,
        after=upstream,
        places=places,
        speaks=speaks,
    )
    return replace(edited, key=render_key(request, hashes, context.renderer, edited.keyed_take))
