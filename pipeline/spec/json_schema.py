"""The storyboard format as JSON Schema, for editors: generated from the models that
validate a storyboard (spec/schema.py), with a description of every field, so that an
editor completes the fields, flags a misspelt one and shows what each means on hover."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pipeline.cache.files import write_atomic
from pipeline.errors import UserError
from pipeline.project import file_kind
from pipeline.spec import schema

SCHEMA_ID = "https://storyboard.dev/schema/storyboard-1.json"
SCHEMA_FILE = "storyboard.schema.json"  # where `init` writes it, at the project root

# What each field means, by "Model.field", else by field name alone (the same meaning
# wherever the name is used). A test fails when a field of the models has none.
DESCRIPTIONS: dict[str, str] = {
    # -- the storyboard ---------------------------------------------------------------------
    "Storyboard.version": "The storyboard format's version: 1.",
    "Storyboard.name": "The storyboard's name: its lock, films and cache entries are named "
    "after it (`build/<name>/`).",
    "Storyboard.renderer": "The renderer of a plain `storyboard build`: runware (paid "
    "renders, the default) or preview (local animatics). `--preview` picks preview anyway.",
    "Storyboard.budget": "USD: a build estimated above this is refused before anything is "
    "sent, and new renders stop before passing it (as `--max-cost`).",
    "Storyboard.prices": "USD per render of a model, by model id, for models the catalogue "
    "has no price for (or when the account pays another one).",
    "Storyboard.templates": "The folder (or folders) of the Jinja prompt templates, relative "
    "to the project root (default: templates/). Never outside the project.",
    "Storyboard.defaults": "Settings every shot and still takes unless it gives its own: "
    "model, resolution, duration...",
    "Storyboard.vars": "Values every template sees: text, numbers, lists and mappings "
    "(`{{ brand.name }}`).",
    "Storyboard.matrix": "Variables whose every combination is a variant of the storyboard "
    "(`lang: [en, fr]`): each shot and film is made once per variant whose prompt or text "
    "differs. `include:` and `exclude:` add and remove combinations.",
    "Storyboard.shots": "The shots: each one paid render of a video model per variant and "
    "take (cached by the content of its request).",
    "Storyboard.stills": "Keyframe images rendered by an image model, that shots start or "
    "end on (`first_frame: {still: id}`).",
    "Storyboard.voices": "Speech renders: a text spoken by a voice, used as a film's "
    "voice-over or a shot's lip-sync.",
    "Storyboard.music": "Music renders, used as a film's bed (`audio: {music: id}`).",
    "Storyboard.sequences": "The films: shots (and cards) joined in order by ffmpeg, with "
    "transitions, text, sound and every format asked for.",
    # -- a shot -----------------------------------------------------------------------------
    "model": "The model, as Runware names it (minimax:4@1 is MiniMax Hailuo 2.3); the "
    "catalogue's default when not given.",
    "resolution": "768p (1366x768) or 1080p (1920x1080), instead of width and height.",
    "width": "Width in pixels (instead of resolution).",
    "height": "Height in pixels (instead of resolution).",
    "ShotSettings.duration": "Seconds of video: what the model takes (Hailuo 2.3: 6 or 10 at "
    "768p, 6 at 1080p).",
    "fps": "Frames per second (where the model takes it).",
    "prompt_optimizer": "Let the provider rewrite the prompt (off unless true: the prompt "
    "you wrote is the one rendered).",
    "seed": "A seed, for models that take one (Hailuo takes none: its takes differ).",
    "negative_prompt": "What the render should not show, for models that take it.",
    "takes": "How many renders of the shot to make (1 to 16); `pick:` or the decisions file "
    "says which one the films use.",
    "first_frame": "The picture the clip starts from: an image file (relative to the "
    "storyboard), or a frame of another render: {shot: id, frame: last} or {still: id}.",
    "last_frame": "The picture the clip ends on, for models that take one: a file or "
    "{shot: id} or {still: id}.",
    "ShotSettings.audio": "Ask for sound where the model makes it optional.",
    "price": "USD per render, where the catalogue has no price (or the account pays another one).",
    "ShotSpec.id": "The shot's id: letters, digits, `_`, `.`, `-`; sequences name it.",
    "ShotSpec.template": "A Jinja template file (under templates/) that writes the prompt, "
    "instead of `prompt:`.",
    "ShotSpec.prompt": "The prompt, itself a Jinja template over vars and the matrix "
    "(`a {{ product }} on a table`).",
    "ShotSpec.vars": "Values this shot's template sees, over the storyboard's vars: text, "
    "numbers, lists and mappings, and templates themselves (`{{ flavours[flavour_id] }}` "
    "keeps the mapping it names).",
    "ShotSpec.matrix": "Variables of this shot alone: each combination is another render.",
    "ShotSpec.pick": "The take the films use (1 by default); the decisions file's pick wins.",
    "ShotSpec.upscale": "Upscale the picked take: 1080p, 2k, 4k, or {model, resolution, "
    "price}. A paid render of its own.",
    "ShotSpec.lipsync": "Lip-sync the clip to a voice render: {voice: id}. A paid render of "
    "its own.",
    # -- frames, upscales, lip-syncs --------------------------------------------------------
    "FrameRef.shot": "The shot whose render the frame is taken from.",
    "FrameRef.still": "The still whose image is used.",
    "FrameRef.frame": "Which frame: first, last, or a time in seconds into the clip.",
    "FrameRef.take": "Which take of that shot (default: its picked one).",
    "FrameRef.vars": "The matrix values of the variant to take it from (default: this variant's).",
    "UpscaleSpec.model": "The upscaler (default: the catalogue's).",
    "UpscaleSpec.resolution": "The size films take the upscaled clip at: 1080p, 2k or 4k "
    "(the upscaler picks the size it delivers; the film scales it to this).",
    "LipsyncSpec.voice": "The id of the voice render the lips follow.",
    "LipsyncSpec.model": "The lip-sync model (default: the catalogue's).",
    # -- sequences --------------------------------------------------------------------------
    "SequenceSpec.id": "The film's id: its file is build/<storyboard>/<id>.mp4 (with the "
    "variant and format in the name when there are several).",
    "SequenceSpec.shots": "What the film shows, in order: shot ids, {shot, take, vars, in, "
    "out, focus} entries, and cards ({card: Title, duration: 2}).",
    "SequenceSpec.transition": "How one clip gives way to the next: {type, duration}.",
    "fit": "How a clip of another shape fills the frame: pad (bars), crop, or blur (the clip "
    "over a blurred copy of itself).",
    "focus": "Where a crop keeps its window: left, center, right, or 0 (left edge) to 1 "
    "(right edge).",
    "SequenceSpec.formats": "Social formats, each a film of its own: 16:9, 9:16, 1:1, 4:5 "
    "(width:height, the short side the film's) or an exact size such as 1080x1350; or "
    "{format, fit, focus}.",
    "SequenceSpec.platforms": "Platforms to deliver for, each a film of its own: tiktok, "
    "reels, shorts, youtube, meta-feed; or {platform, fit, focus}. Each sets the film's "
    "size, keeps text, cards and the logo out of the platform's interface, refuses a film "
    "longer than it takes, and encodes and levels the sound as it asks (docs: delivery).",
    "SequenceSpec.loudness": "The film's integrated loudness in LUFS (-70 to -5), or a "
    "standard: ebu-r128 (-23) or atsc-a85 (-24). Measured and normalised in two passes, true "
    "peak at most -1 dBTP; -16 when not given (a platform's: -14).",
    "SequenceSpec.captions": "Write caption files beside each film (<film>.srt and "
    "<film>.vtt): the voice-over's words in sentences, timed over the voice, and the "
    "subtitle file's cues.",
    "PlatformSpec.platform": "tiktok, reels, shorts, youtube or meta-feed.",
    "SequenceSpec.resolution": "The film's size: 768p or 1080p (default: its largest clip's).",
    "SequenceSpec.width": "The film's width in pixels (with height, instead of resolution).",
    "SequenceSpec.height": "The film's height in pixels (with width, instead of resolution).",
    "SequenceSpec.fps": "The film's frame rate (default: its clips').",
    "SequenceSpec.audio": "A sound bed: a file (may be a template: score-{{ lang }}.m4a) or "
    "{music: id}.",
    "SequenceSpec.quality": "x264 CRF of the film when it is encoded: 0 (lossless) to 51; "
    "lower is better (20).",
    "SequenceSpec.preset": "x264 preset: faster encodes, or smaller files (veryfast).",
    "SequenceSpec.text": "Text drawn on the film: titles, lower thirds, captions.",
    "SequenceSpec.logo": "An image over the whole film: a logo, a watermark.",
    "SequenceSpec.subtitles": "Subtitles burned in: an SRT or WebVTT file (may be a "
    "template), or {file, position, size, color, box, font}.",
    "SequenceSpec.voice": "The voice-over: a file (may be a template) or {voice: id}.",
    "SequenceSpec.voice_start": "Seconds into the film at which the voice-over starts.",
    "Transition.type": "cut, crossfade, fadeblack, wipeleft or wiperight.",
    "Transition.duration": "Seconds each transition lasts (0 to 5).",
    "FormatSpec.format": "16:9, 9:16, 1:1, 4:5 (width:height) or an exact size: 1080x1350.",
    "SequenceShot.shot": "The shot's id.",
    "SequenceShot.take": "Which take (default: the picked one).",
    "SequenceShot.vars": "The matrix values of the variant to use (default: the film's own).",
    "SequenceShot.in": "Seconds into the clip where its use starts.",
    "SequenceShot.out": "Seconds into the clip where its use ends.",
    # -- cards, text, subtitles, logos ------------------------------------------------------
    "CardSpec.card": "The card's words: a Jinja template over vars and the matrix.",
    "CardSpec.duration": "Seconds the card is on screen (0.5 to 30).",
    "CardSpec.background": "The card's colour (when it has no image).",
    "CardSpec.image": "An image behind the words (relative to the storyboard), instead of "
    "the colour.",
    "color": "A colour: a name ffmpeg knows (white, navy, gold...), #RRGGBB or 0xRRGGBB, "
    "with an optional opacity: black@0.5.",
    "size": "Height of the letters, as a fraction of the frame's height.",
    "font": "A font file of the project (relative to the storyboard) or a family name "
    "fontconfig knows; the bundled font when not given.",
    "TextSpec.text": "The words: a Jinja template over vars and the matrix.",
    "TextSpec.shot": "Drawn while this shot is on screen (instead of start and end).",
    "TextSpec.start": "Seconds into the film where the text appears.",
    "TextSpec.end": "Seconds into the film where it goes.",
    "position": "Where on the frame: top-left, top, top-right, left, center, right, "
    "bottom-left, bottom, bottom-right.",
    "TextSpec.offset": "[x, y] moved from the position, as fractions of the frame's width "
    "and height.",
    "box": "A box behind the text, in this colour.",
    "TextSpec.shadow": "A shadow under the letters.",
    "TextSpec.fade": "Seconds of fade in and out.",
    "SubtitleSpec.file": "The SRT or WebVTT file (relative to the storyboard; may be a "
    "template: subs/{{ lang }}.srt).",
    "LogoSpec.image": "The image: PNG (with its transparency), JPEG or WebP.",
    "LogoSpec.size": "Its height, as a fraction of the frame's height.",
    "LogoSpec.opacity": "0 (invisible) to 1 (opaque).",
    # -- voices and music -------------------------------------------------------------------
    "VoiceSpec.id": "The voice render's id, as sequences and lip-syncs name it.",
    "VoiceSpec.text": "What is said: a Jinja template over vars and the matrix.",
    "VoiceSpec.voice": "The provider's voice id (may be a template).",
    "VoiceSpec.model": "The speech model (default: the catalogue's).",
    "VoiceSpec.speed": "0.5 to 2 times the voice's pace.",
    "VoiceSpec.volume": "The voice's loudness (above 0, up to 10; 1 is its own).",
    "VoiceSpec.pitch": "Semitones up or down (-12 to 12).",
    "VoiceSpec.emotion": "happy, sad, angry, fearful, disgusted, surprised, calm, fluent or "
    "whisper (Runware's list).",
    "MusicSpec.id": "The music render's id, as sequences name it.",
    "MusicSpec.prompt": "What the music is: a Jinja template over vars and the matrix.",
    "MusicSpec.model": "The music model (default: the catalogue's).",
    "MusicSpec.instrumental": "No singing (true by default; false by default with lyrics). A "
    "vocal bed without lyrics has the provider write them (lyricsOptimizer).",
    "MusicSpec.lyrics": "The words sung (1 to 3,500 characters, with section tags such as "
    "[verse]): a Jinja template over vars and the matrix. Not with instrumental: true.",
    "MusicSpec.seed": "A seed: the same request and seed give the same piece.",
    "MusicSpec.duration": "Seconds of the piece a film keeps (default: all of it).",
    "VoiceRef.voice": "The id of a voice render.",
    "MusicRef.music": "The id of a music render.",
}


def _describe(model: type[BaseModel], field: str) -> str | None:
    for owner in model.__mro__:
        found = DESCRIPTIONS.get(f"{owner.__name__}.{field}")
        if found:
            return found
    return DESCRIPTIONS.get(field)


def _models() -> dict[str, type[BaseModel]]:
    """Every model of the format by name (as JSON Schema's $defs names them)."""
    found: dict[str, type[BaseModel]] = {}
    for value in vars(schema).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
            found[value.__name__] = value
    return found


def storyboard_schema() -> dict[str, Any]:
    """The JSON Schema of a storyboard (draft 2020-12), every field described."""
    made = schema.Storyboard.model_json_schema(by_alias=True, mode="validation")
    models = _models()
    for name, body in [("Storyboard", made), *made.get("$defs", {}).items()]:
        model = models.get(name)
        if model is None:
            continue
        if model.__doc__ and not body.get("description"):
            body["description"] = " ".join(model.__doc__.split())
        for field, prop in body.get("properties", {}).items():
            text = _describe(model, field) or _describe(model, _python_name(model, field))
            if text:
                prop["description"] = text
    # Read before the models see the storyboard: its parts in other files, merged in.
    made["properties"]["include"] = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "YAML files of the project holding parts of the storyboard (shared "
        "defaults, vars, shot libraries), merged in: later files override earlier ones, and "
        "the storyboard overrides them all.",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "storyboard",
        **made,
        "description": "A storyboard of the storyboard build tool: shots rendered by AI video "
        "models, joined into films.",
    }


def schema_text() -> str:
    """The schema as `storyboard schema` prints it and `init` writes it."""
    return json.dumps(storyboard_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path) -> None:
    """Write the schema as the regular file `path`, new or replacing one. A folder, a
    device, a named pipe or a link there is refused (never written through, nor replaced),
    and so is a folder that does not exist: it is not made."""
    try:
        mode: int | None = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UserError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise UserError(
            f"{path}: is {file_kind(mode)}; schema -o writes a regular file",
            "name a new file, or a file to replace",
        )
    if not path.parent.is_dir():
        raise UserError(
            f"{path}: the folder {path.parent} does not exist", "make it first, or name another"
        )
    try:
        write_atomic(path, schema_text())
    except OSError as exc:
        raise UserError(f"{path}: cannot be written ({exc.strerror or exc})") from None


def _python_name(model: type[BaseModel], field: str) -> str:
    """A field the storyboard spells by its alias (`in`) by its name in the model (`start`)."""
    return next((n for n, i in model.model_fields.items() if i.alias == field), field)


def undescribed() -> list[str]:
    """The fields of the format with no description (a test keeps this empty)."""
    made = storyboard_schema()
    missing = []
    for name, body in [("Storyboard", made), *made.get("$defs", {}).items()]:
        for field, prop in body.get("properties", {}).items():
            if not prop.get("description"):
                missing.append(f"{name}.{field}")
    return missing
