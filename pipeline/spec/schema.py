"""The storyboard format: the models a storyboard validates into, and the names and
limits of its values."""

from __future__ import annotations

import difflib
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER, max_length=80)]
# A storyboard's name, as people write it (`café`, `広告`): no control characters or slashes.
NAME = r"^[^\x00-\x1f\x7f-\x9f/\\]+$"
Name = Annotated[str, Field(pattern=NAME, max_length=80)]
Scalar = str | int | float | bool
RESOLUTIONS: dict[str, tuple[int, int]] = {"768p": (1366, 768), "1080p": (1920, 1080)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FrameRef(_Strict):
    """A frame of another render: `{shot: street, frame: last}`, or a still: `{still: key}`.
    `take` and `vars` pick among its takes and matrix variants as a sequence's entries do."""

    shot: Identifier | None = None
    still: Identifier | None = None
    frame: str | float = "last"  # first, last, or seconds into the clip (below its length)
    take: int | None = Field(default=None, ge=1)
    vars: dict[str, Scalar] | None = None

    @field_validator("frame", mode="before")
    @classmethod
    def _frame_time(cls, value: Any) -> str | float:
        if value in ("first", "last"):
            return str(value)
        try:
            seconds = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            seconds = math.nan
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(
                f"frame {value!r} is not a frame: give first, last, or a time in seconds from "
                "0 to under the clip's length"
            )
        return seconds

    @model_validator(mode="after")
    def _one_source(self) -> FrameRef:
        if (self.shot is None) == (self.still is None):
            raise ValueError("name either 'shot' or 'still'")
        return self

    @property
    def name(self) -> str:
        return self.shot or self.still or ""


def _mapping_kind(value: Any) -> str:
    """A mapping is checked as an entry only (its errors name the entry's fields), anything
    else as a name."""
    return "entry" if isinstance(value, dict | BaseModel) else "name"


# A file (or URL), or a frame of another render: a mapping is only ever the latter.
FrameSource = Annotated[
    Annotated[str, Tag("name")] | Annotated[FrameRef, Tag("entry")],
    Discriminator(_mapping_kind),
]


class ShotSettings(_Strict):
    """Fields a shot may set and `defaults:` may give to every shot."""

    model: str | None = None
    resolution: Literal["768p", "1080p"] | None = None
    width: int | None = Field(default=None, gt=0, le=8192)
    height: int | None = Field(default=None, gt=0, le=8192)
    duration: int | None = Field(default=None, gt=0, le=60)
    fps: int | None = Field(default=None, gt=0, le=120)
    prompt_optimizer: bool | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    takes: int | None = Field(default=None, ge=1, le=16)
    first_frame: FrameSource | None = None
    last_frame: FrameSource | None = None
    audio: bool | None = None  # ask for sound where the model makes it optional
    # USD per render, where the catalogue has no price (or the account pays another one).
    price: float | None = Field(default=None, ge=0, le=1000, allow_inf_nan=False)


def _check_axes(value: dict[str, Any], allow_include: bool) -> dict[str, Any]:
    for name, values in value.items():
        if name in ("include", "exclude"):
            if not allow_include:
                raise ValueError(f"'{name}' is only allowed in the storyboard matrix")
            if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
                raise ValueError(f"'{name}' must be a list of mappings of variable to value")
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            raise ValueError(f"matrix variable '{name}' is not a valid name")
        if not isinstance(values, list) or not values:
            raise ValueError(f"matrix variable '{name}' must be a non-empty list of values")
        if not all(isinstance(v, Scalar) for v in values):
            raise ValueError(f"matrix variable '{name}' must list plain values (text or numbers)")
    return value


Price = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]


class UpscaleSpec(_Strict):
    """The picked take upscaled by a video upscaler: `upscale: 1080p`, or the model too."""

    model: str | None = None  # the catalogue's default upscaler
    resolution: Literal["1080p", "2k", "4k"] = "1080p"
    price: Price | None = None


class LipsyncSpec(_Strict):
    """The rendered clip lip-synced to a voice render: `lipsync: {voice: vo}`."""

    voice: Identifier
    model: str | None = None  # the catalogue's default lip-sync model
    price: Price | None = None


def _upscale_shorthand(value: Any) -> Any:
    return {"resolution": value} if isinstance(value, str) else value


class ShotSpec(ShotSettings):
    id: Identifier
    template: str | None = None
    prompt: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, Any] | None = None
    pick: int | None = Field(default=None, ge=1)
    upscale: Annotated[
        UpscaleSpec | None,
        BeforeValidator(
            _upscale_shorthand,
            json_schema_input_type=Literal["1080p", "2k", "4k"] | UpscaleSpec | None,
        ),
    ] = None
    lipsync: LipsyncSpec | None = None

    @field_validator("matrix")
    @classmethod
    def _matrix_axes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_axes(value, allow_include=False)

    @model_validator(mode="after")
    def _prompt_source(self) -> ShotSpec:
        if self.template is not None and self.prompt is not None:
            raise ValueError("give either 'template' or 'prompt', not both")
        if self.template is None and self.prompt is None and self.first_frame is None:
            raise ValueError("a shot needs a 'template' or a 'prompt' (or a 'first_frame')")
        if self.pick is not None and self.pick > (self.takes or 1):
            raise ValueError(f"pick {self.pick} is more than the shot's {self.takes or 1} takes")
        return self


# Fields only a video has: a still refuses them by name.
VIDEO_ONLY = (
    "duration", "fps", "first_frame", "last_frame", "audio", "prompt_optimizer", "upscale",
    "lipsync",
)  # fmt: skip


class StillSpec(ShotSpec):
    """A keyframe image rendered by an image model, that shots may start from."""

    @model_validator(mode="after")
    def _no_video_fields(self) -> StillSpec:
        for name in VIDEO_ONLY:
            if getattr(self, name) is not None:
                raise ValueError(f"a still has no '{name}'")
        if self.template is None and self.prompt is None:
            raise ValueError("a still needs a 'template' or a 'prompt'")
        return self


class Transition(_Strict):
    type: Literal["cut", "crossfade", "fadeblack", "wipeleft", "wiperight"] = "cut"
    duration: float = Field(default=0.5, ge=0, le=5)


# Where a crop keeps its window: a side, or x from 0 (left edge) to 1 (right edge).
Focus = (
    Literal["left", "center", "right"] | Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
)
FOCUS = {"left": 0.0, "center": 0.5, "right": 1.0}
# 16:9, 9:16, 1:1, 4:5 (the short side is the film's) or an exact size: 1080x1350.
FORMAT = r"^([1-9][0-9]?:[1-9][0-9]?|[1-9][0-9]{1,3}x[1-9][0-9]{1,3})$"


# What each pattern of the format accepts, in words: (what a value is, what to write).
# What one entry of each list of the storyboard is called in a message.
ITEM_WORDS = {
    "shots": "shot",
    "stills": "still",
    "voices": "voice",
    "music": "music",
    "sequences": "sequence",
}

PATTERN_WORDS = {
    IDENTIFIER: ("an id", "letters, digits, '_', '.' and '-', starting with a letter or digit"),
    NAME: ("a name", "text without slashes or control characters"),
    FORMAT: (
        "a format",
        "a ratio with a colon (16:9, 9:16, 1:1, 4:5) or a size in pixels with an x (1080x1350)",
    ),
}


def focus_x(focus: str | float) -> float:
    return FOCUS[focus] if isinstance(focus, str) else float(focus)


class FormatSpec(_Strict):
    """One format of a sequence's film, with its own way to reframe the clips."""

    format: str = Field(pattern=FORMAT)
    fit: Literal["pad", "crop", "blur"] | None = None
    focus: Focus | None = None


FormatEntry = Annotated[
    Annotated[Annotated[str, Field(pattern=FORMAT)], Tag("name")]
    | Annotated[FormatSpec, Tag("entry")],
    Discriminator(_mapping_kind),
]


# The platforms a sequence can be delivered for (pipeline/platforms.py holds their figures;
# tests/test_delivery.py checks both name the same).
PlatformName = Literal["tiktok", "reels", "shorts", "youtube", "meta-feed"]


class PlatformSpec(_Strict):
    """One platform a sequence's film is delivered for, with its own way to reframe the
    clips."""

    platform: PlatformName
    fit: Literal["pad", "crop", "blur"] | None = None
    focus: Focus | None = None


PlatformEntry = Annotated[
    Annotated[PlatformName, Tag("name")] | Annotated[PlatformSpec, Tag("entry")],
    Discriminator(_mapping_kind),
]
# Loudness standards by name: integrated LUFS (EBU R 128; ATSC A/85), the names `Loudness`
# takes.
LOUDNESS_STANDARDS = {"ebu-r128": -23.0, "atsc-a85": -24.0}
LOUDNESS_HINT = "write integrated LUFS from -70 to -5 (-14), or ebu-r128 (-23) or atsc-a85 (-24)"
Loudness = (
    Annotated[float, Field(ge=-70, le=-5, allow_inf_nan=False)] | Literal["ebu-r128", "atsc-a85"]
)


class SequenceShot(_Strict):
    """One use of a shot in a sequence, optionally trimmed to [in, out) seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    shot: Identifier
    take: int | None = Field(default=None, ge=1)
    vars: dict[str, Scalar] | None = None
    start: float = Field(default=0.0, ge=0, alias="in")
    end: float | None = Field(default=None, gt=0, alias="out")
    focus: Focus | None = None  # where a crop of this clip keeps its window

    @model_validator(mode="after")
    def _trim_order(self) -> SequenceShot:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"'out' ({self.end}) must be after 'in' ({self.start})")
        return self


# A colour as ffmpeg names it (a name, #RRGGBB or 0xRRGGBB), with an optional @opacity.
COLOUR = r"^([A-Za-z]{3,30}|#[0-9A-Fa-f]{6}|0x[0-9A-Fa-f]{6})(@(0(\.\d+)?|1(\.0+)?))?$"
COLOUR_HINT = (
    "a name ffmpeg knows (white, black, navy, gold...: `ffmpeg -colors` lists them), #RRGGBB "
    "or 0xRRGGBB, with an optional opacity: black@0.5"
)
# The colour names ffmpeg knows (`ffmpeg -colors`: libavutil's table, matched without case);
# any other name fails the join after the clips are paid for. `gray`, not `grey`.
FFMPEG_COLOURS = frozenset(
    """
    aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue
    blueviolet brown burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk
    crimson cyan darkblue darkcyan darkgoldenrod darkgray darkgreen darkkhaki darkmagenta
    darkolivegreen darkorange darkorchid darkred darksalmon darkseagreen darkslateblue
    darkslategray darkturquoise darkviolet deeppink deepskyblue dimgray dodgerblue firebrick
    floralwhite forestgreen fuchsia gainsboro ghostwhite gold goldenrod gray green
    greenyellow honeydew hotpink indianred indigo ivory khaki lavender lavenderblush
    lawngreen lemonchiffon lightblue lightcoral lightcyan lightgoldenrodyellow lightgreen
    lightgrey lightpink lightsalmon lightseagreen lightskyblue lightslategray lightsteelblue
    lightyellow lime limegreen linen magenta maroon mediumaquamarine mediumblue mediumorchid
    mediumpurple mediumseagreen mediumslateblue mediumspringgreen mediumturquoise
    mediumvioletred midnightblue mintcream mistyrose moccasin navajowhite navy oldlace olive
    olivedrab orange orangered orchid palegoldenrod palegreen paleturquoise palevioletred
    papayawhip peachpuff peru pink plum powderblue purple red rosybrown royalblue
    saddlebrown salmon sandybrown seagreen seashell sienna silver skyblue slateblue
    slategray snow springgreen steelblue tan teal thistle tomato turquoise violet wheat
    white whitesmoke yellow yellowgreen
    """.split()  # noqa: SIM905 (140 names read best as words)
)


def _known_colour(value: str | None) -> str | None:
    """A colour whose name ffmpeg knows; a name it does not is refused now, not at the join."""
    if value is None:
        return None
    name = value.split("@", 1)[0]
    if name.startswith(("#", "0x")) or name.lower() in FFMPEG_COLOURS:
        return value
    close = difflib.get_close_matches(name.lower(), FFMPEG_COLOURS, n=1)
    guess = f": did you mean '{close[0]}'?" if close else ""
    raise ValueError(f"'{value}' is not a colour ffmpeg knows{guess}")


Colour = Annotated[str, Field(pattern=COLOUR), AfterValidator(_known_colour)]


class CardSpec(_Strict):
    """A title or end card: words on a colour or an image, for a duration. Not a render:
    drawn by ffmpeg when the film is joined."""

    card: str = Field(min_length=1, max_length=2000)  # a Jinja template over vars and matrix
    duration: float = Field(default=3.0, ge=0.5, le=30)
    background: Colour = "black"
    image: str | None = Field(default=None, min_length=1)  # instead of the colour
    color: Colour = "white"
    size: float = Field(default=0.08, gt=0, le=0.5)  # of the frame's height
    font: str | None = Field(default=None, min_length=1, max_length=500)


def _entry_kind(value: Any) -> str:
    if isinstance(value, CardSpec) or (isinstance(value, dict) and "card" in value):
        return "card"
    return "entry" if isinstance(value, dict | SequenceShot) else "name"


# A mapping is checked as an entry only, so its errors name the entry's fields.
SequenceEntry = Annotated[
    Annotated[Identifier, Tag("name")]
    | Annotated[SequenceShot, Tag("entry")]
    | Annotated[CardSpec, Tag("card")],
    Discriminator(_entry_kind),
]


ANCHORS = (
    "top-left",
    "top",
    "top-right",
    "left",
    "center",
    "right",
    "bottom-left",
    "bottom",
    "bottom-right",
)
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")


def is_font_file(name: str) -> bool:
    """A font named by file (else by family, as fontconfig knows it)."""
    return "/" in name or name.lower().endswith(FONT_SUFFIXES)


def is_templated(name: str) -> bool:
    """A name that is a template: said per variant, checked when it is."""
    return "{{" in name or "{%" in name


class TextSpec(_Strict):
    """Text drawn on a film: a title, a lower third, a caption, an end card's words."""

    text: str = Field(min_length=1, max_length=2000)  # a Jinja template over vars and matrix
    shot: Identifier | None = None  # drawn while this shot is on screen
    start: float | None = Field(default=None, ge=0)  # or from..until, in seconds of the film
    end: float | None = Field(default=None, gt=0)
    position: Literal[ANCHORS] = "bottom"  # type: ignore[valid-type]
    offset: tuple[
        Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)],
        Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)],
    ] = (0.0, 0.0)  # of the frame's width and height
    size: float = Field(default=0.06, gt=0, le=0.5)  # of the frame's height
    color: Colour = "white"
    box: Colour | None = None  # a box behind the text
    shadow: bool = True
    fade: float = Field(default=0.3, ge=0, le=5)  # seconds in and out
    font: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _span(self) -> TextSpec:
        if self.shot is not None and (self.start is not None or self.end is not None):
            raise ValueError("give either 'shot' or 'start'/'end', not both")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"'end' ({self.end}) must be after 'start' ({self.start})")
        return self


class SubtitleSpec(_Strict):
    """Subtitles burned in from an SRT or WebVTT file (a template: subs/{{ lang }}.srt)."""

    file: str = Field(min_length=1)
    position: Literal[ANCHORS] = "bottom"  # type: ignore[valid-type]
    size: float = Field(default=0.045, gt=0, le=0.5)
    color: Colour = "white"
    box: Colour | None = "black@0.55"
    font: str | None = Field(default=None, min_length=1, max_length=500)


SubtitleEntry = Annotated[
    Annotated[str, Field(min_length=1), Tag("name")] | Annotated[SubtitleSpec, Tag("entry")],
    Discriminator(_mapping_kind),
]


class LogoSpec(_Strict):
    """An image over the whole film: a logo, a watermark."""

    image: str = Field(min_length=1)  # PNG (with its transparency), JPEG or WebP
    position: Literal[ANCHORS] = "top-right"  # type: ignore[valid-type]
    size: float = Field(default=0.1, gt=0, le=1)  # its height, of the frame's height
    opacity: float = Field(default=1.0, gt=0, le=1)


class VoiceSpec(_Strict):
    """A speech render: the text spoken by a provider's voice, one render per variant that
    says it differently (both are templates over the vars and the matrix)."""

    id: Identifier
    text: str = Field(min_length=1, max_length=10_000)
    voice: str = Field(min_length=1, max_length=200)  # the provider's voice id
    model: str | None = None  # the catalogue's default speech model
    speed: float | None = Field(default=None, ge=0.5, le=2)
    volume: float | None = Field(default=None, gt=0, le=10)
    pitch: int | None = Field(default=None, ge=-12, le=12)
    # Runware's list (its ComfyUI node); `neutral` is not on it.
    emotion: (
        Literal[
            "happy",
            "sad",
            "angry",
            "fearful",
            "disgusted",
            "surprised",
            "calm",
            "fluent",
            "whisper",
        ]
        | None
    ) = None
    price: Price | None = None


class MusicSpec(_Strict):
    """A music render: a bed from a prompt (a template). The model writes a whole piece;
    `duration` is how much of it a film keeps (its length when not given)."""

    id: Identifier
    prompt: str = Field(min_length=1, max_length=2000)
    model: str | None = None  # the catalogue's default music model
    instrumental: bool | None = None  # None: true without lyrics, false with them
    lyrics: str | None = Field(default=None, min_length=1, max_length=3500)
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    duration: float | None = Field(default=None, gt=0, le=600)
    price: Price | None = None


class VoiceRef(_Strict):
    """A voice render used in a sequence: `voice: {voice: vo}`."""

    voice: Identifier


class MusicRef(_Strict):
    """A music render used as a sequence's bed: `audio: {music: bed}`."""

    music: Identifier


class SequenceSpec(_Strict):
    id: Identifier
    shots: list[SequenceEntry] = Field(min_length=1)
    transition: Transition = Transition()
    fit: Literal["pad", "crop", "blur"] | None = None  # pad; crop for other formats
    focus: Focus = "center"
    formats: list[FormatEntry] | None = Field(default=None, min_length=1, max_length=8)
    platforms: list[PlatformEntry] | None = Field(default=None, min_length=1, max_length=5)
    resolution: Literal["768p", "1080p"] | None = None
    width: int | None = Field(default=None, gt=0, le=8192)
    height: int | None = Field(default=None, gt=0, le=8192)
    fps: int | None = Field(default=None, gt=0, le=120)
    audio: str | MusicRef | None = None  # a file (may be a template), or a music render
    quality: int = Field(default=20, ge=0, le=51)
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
    ] = "veryfast"
    text: list[TextSpec] = Field(default_factory=list, max_length=50)
    logo: LogoSpec | None = None
    subtitles: SubtitleEntry | None = None  # a file, or a file and how it looks
    # a file (may be a template: vo-{{ lang }}.m4a), or a voice render: {voice: vo}
    voice: Annotated[str, Field(min_length=1)] | VoiceRef | None = None
    voice_start: float = Field(default=0.0, ge=0)  # seconds into the film
    loudness: Loudness | None = None  # integrated LUFS, or a standard: -16 when not given
    captions: bool = False  # `<film>.srt` and `<film>.vtt` beside each film


class Storyboard(_Strict):
    version: Literal[1]
    name: Name
    renderer: Literal["runware", "preview"] = "runware"
    budget: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    # USD per render of a model, for models the catalogue has no price for.
    prices: dict[str, Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    templates: str | list[str] | None = None
    defaults: ShotSettings = ShotSettings()
    vars: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, Any] | None = None
    shots: list[ShotSpec] = Field(min_length=1)
    stills: list[StillSpec] = Field(default_factory=list)
    voices: list[VoiceSpec] = Field(default_factory=list)
    music: list[MusicSpec] = Field(default_factory=list)
    sequences: list[SequenceSpec] = Field(default_factory=list)

    @field_validator("matrix")
    @classmethod
    def _matrix_axes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_axes(value, allow_include=True)
