"""Storyboard YAML -> validated Storyboard, with every error located as path:line:col."""

from __future__ import annotations

import contextlib
import difflib
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import Diagnostic, Problems, SpecError, did_you_mean
from pipeline.models import SAFE_YAML_LOADER
from pipeline.project import (
    ROOT_HINT,
    FileMissing,
    OutsideProject,
    TooLarge,
    find_in,
    project_file,
    project_folder,
    project_root,
    read_bounded,
)

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)]
# A storyboard's name, as people write it (`café`, `広告`): no control characters or slashes.
Name = Annotated[str, Field(pattern=r"^[^\x00-\x1f\x7f-\x9f/\\]+$", max_length=80)]
Scalar = str | int | float | bool
RESOLUTIONS: dict[str, tuple[int, int]] = {"768p": (1366, 768), "1080p": (1920, 1080)}

# Limits of a storyboard file: far above any real one, low enough that a hostile one is
# refused in a moment (an alias tree of a few hundred bytes can stand for billions of values).
MAX_YAML_BYTES = 4_000_000
MAX_NODES = 250_000  # values as written
MAX_VALUES = 500_000  # values once aliases are expanded
MAX_ALIAS_VALUES = 100_000  # of those, values that aliases repeat
MAX_DEPTH = 64
_TAG = "tag:yaml.org,2002:"
_MAP = f"{_TAG}map"
_SEQ = f"{_TAG}seq"
_PLAIN_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null")}
# Fields where YAML 1.1's yes/no/on/off mean a boolean; anywhere else they are refused.
BOOLEAN_FIELDS = frozenset({"prompt_optimizer"})
# Fields whose `16:9` is an aspect ratio, not YAML 1.1's sexagesimal number 969.
RATIO_FIELDS = frozenset({"formats", "format"})
_TRUTHS = {"true", "false"}


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


class ShotSpec(ShotSettings):
    id: Identifier
    template: str | None = None
    prompt: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, Any] | None = None
    pick: int | None = Field(default=None, ge=1)

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
VIDEO_ONLY = ("duration", "fps", "first_frame", "last_frame", "audio", "prompt_optimizer")


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


class SequenceSpec(_Strict):
    id: Identifier
    shots: list[SequenceEntry] = Field(min_length=1)
    transition: Transition = Transition()
    fit: Literal["pad", "crop", "blur"] | None = None  # pad; crop for other formats
    focus: Focus = "center"
    formats: list[FormatEntry] | None = Field(default=None, min_length=1, max_length=8)
    resolution: Literal["768p", "1080p"] | None = None
    width: int | None = Field(default=None, gt=0, le=8192)
    height: int | None = Field(default=None, gt=0, le=8192)
    fps: int | None = Field(default=None, gt=0, le=120)
    audio: str | None = None
    quality: int = Field(default=20, ge=0, le=51)
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
    ] = "veryfast"
    text: list[TextSpec] = Field(default_factory=list, max_length=50)
    logo: LogoSpec | None = None
    subtitles: SubtitleEntry | None = None  # a file, or a file and how it looks
    voice: str | None = Field(default=None, min_length=1)  # may be a template: vo-{{ lang }}.m4a
    voice_start: float = Field(default=0.0, ge=0)  # seconds into the film


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
    sequences: list[SequenceSpec] = Field(default_factory=list)

    @field_validator("matrix")
    @classmethod
    def _matrix_axes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_axes(value, allow_include=True)


@dataclass(frozen=True)
class SourceMap:
    """Where each value of a storyboard came from (its file, line and column), so later steps
    can point at it; values of included files point into those files."""

    path: Path
    root: yaml.Node | None
    texts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # lines of each file
    # Where items of a section that did not validate were left out: (section, i) of the
    # storyboard read is (section, kept[section][i]) of the file.
    kept: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def original(self, loc: tuple[Any, ...]) -> tuple[Any, ...]:
        """`loc` of the storyboard read, as the file spells it (items left out counted)."""
        if len(loc) > 1 and loc[0] in self.kept and isinstance(loc[1], int):
            kept = self.kept[loc[0]]
            if 0 <= loc[1] < len(kept):
                return (loc[0], kept[loc[1]], *loc[2:])
        return loc

    def node(self, loc: tuple[Any, ...]) -> yaml.Node | None:
        """The node at `loc`, or None when the file does not spell it out."""
        node = self.root
        for step in self.original(loc):
            child = _child(node, step) if node is not None else None
            if child is None:
                return None
            node = child[1]
        return node

    def where(self, loc: tuple[Any, ...], at_key: bool = False) -> tuple[Path, int, int]:
        """File, line and column (1-based) of the value at `loc`, or of its nearest parent."""
        node = self.root
        if node is None:
            return self.path, 1, 1
        mark = node.start_mark
        for step in self.original(loc):
            child = _child(node, step)
            if child is None:
                continue  # pydantic adds union member names to locations: skip them
            key_node, node = child
            mark = key_node.start_mark if at_key and key_node is not None else node.start_mark
        return self._file(mark), mark.line + 1, mark.column + 1

    def position(self, loc: tuple[Any, ...], at_key: bool = False) -> tuple[int, int]:
        _, line, col = self.where(loc, at_key)
        return line, col

    def text_lines(self, loc: tuple[Any, ...]) -> tuple[Path, tuple[tuple[int, int], ...]]:
        """The file of the text at `loc`, and the (line, column) there of each of its lines,
        so that an error on line k of an inline template points at the file's line: exact
        for `|` blocks, where lines are kept; in folded and plain text a blank line starts
        the next line."""
        node = self.node(loc)
        path, line, col = self.where(loc)
        lines = self.texts.get(str(path), ())
        if not isinstance(node, yaml.ScalarNode) or not lines:
            return path, ((line, col),)
        first, last = node.start_mark.line, min(node.end_mark.line, len(lines) - 1)
        if node.style == "|":
            kept = tuple((i + 1, _indent(lines[i]) + 1) for i in range(first + 1, last + 1))
            return path, kept or ((line, col),)
        if node.style == ">":
            first += 1
            if first > last:
                return path, ((line, col),)
            col = _indent(lines[first]) + 1
        starts = [(first + 1, col)]
        for index in range(first + 1, last + 1):
            if not lines[index].strip():
                after = next((i for i in range(index + 1, last + 1) if lines[i].strip()), index)
                starts.append((after + 1, _indent(lines[after]) + 1))
        return path, tuple(starts)

    def error(
        self,
        loc: tuple[Any, ...],
        message: str,
        hint: str | None = None,
        at_key: bool = False,
        code: str = "invalid",
    ) -> SpecError:
        return SpecError.of([self.diagnostic(loc, message, hint, at_key, code)])

    def diagnostic(
        self,
        loc: tuple[Any, ...],
        message: str,
        hint: str | None = None,
        at_key: bool = False,
        code: str = "invalid",
    ) -> Diagnostic:
        path, line, col = self.where(loc, at_key)
        return Diagnostic(code, str(path), line, col, message, hint)

    def _file(self, mark: Any) -> Path:
        return Path(mark.name) if str(mark.name) in self.texts else self.path

    def first(self, *locs: tuple[Any, ...]) -> tuple[Any, ...]:
        """The first of `locs` that the file actually spells out (for inherited settings)."""
        for loc in locs:
            if self.has(loc):
                return loc
        return locs[-1]

    def has(self, loc: tuple[Any, ...]) -> bool:
        return self.node(loc) is not None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _child(node: yaml.Node, step: Any) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in _pairs(node, 0):
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(step):
                return key_node, value_node
    elif (
        isinstance(node, yaml.SequenceNode)
        and isinstance(step, int)
        and 0 <= step < len(node.value)
    ):
        return None, node.value[step]
    return None


def _pairs(node: yaml.MappingNode, depth: int) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    """A mapping's keys as written, then the ones it merges in (`<<: *base`), as YAML reads
    them: a value merged in points at the line where it is written."""
    merged = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            merged.append(value_node)
        else:
            yield key_node, value_node
    for value_node in merged:
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if isinstance(source, yaml.MappingNode) and depth < MAX_DEPTH:
                yield from _pairs(source, depth + 1)


@dataclass(frozen=True)
class Spec:
    """A loaded storyboard: the validated model, its file, and where its values came from."""

    storyboard: Storyboard
    path: Path
    source: SourceMap
    template_dirs: tuple[Path, ...]
    root: Path  # the project: everything the storyboard reads is inside it
    files: dict[str, Path] = field(default_factory=dict)  # each file it names, checked
    problems: tuple[Diagnostic, ...] = ()  # what is wrong with it, in the order found
    failed: frozenset[str] = frozenset()  # ids of the items a problem is found in

    @property
    def folder(self) -> Path:
        return self.path.parent


def load(path: Path | str) -> Spec:
    """Read, parse and validate a storyboard and what it includes; its problems, every one
    found, are one SpecError."""
    spec = read(path)
    if spec.problems:
        raise SpecError.of(list(spec.problems))
    return spec


def loads(text: str, path: Path | str = "storyboard.yaml") -> Spec:
    """`load`, of a storyboard given as text (as if it were the file `path`: what it names
    is found beside that)."""
    spec = _read(Path(path), text)
    if spec.problems:
        raise SpecError.of(list(spec.problems))
    return spec


def read(path: Path | str) -> Spec:
    """The storyboard at `path` with the problems found in it (`Spec.problems`): a shot,
    still or sequence that does not validate is left out, so that the rest is checked too.
    Raises SpecError only when nothing more can be checked: a file that is no YAML mapping,
    or a mistake outside shots, stills and sequences."""
    return _read(Path(path), None)


def _read(path: Path, given: str | None) -> Spec:
    """The storyboard of `path`, or of the text `given` as that file."""
    texts: dict[str, tuple[str, ...]] = {}
    node = _parse(path, texts, given)
    root = project_root(path)
    if isinstance(node, yaml.MappingNode):
        node = _Including(root, texts).resolve(path, node, (path.resolve(),))
    source = SourceMap(path, node, texts)
    problems = Problems()
    builder = _Builder(path, frozenset(texts), problems=problems)
    data = builder.build(node, "", 0) if node is not None else None
    if not isinstance(data, dict):
        shape = "a storyboard must be a YAML mapping (version:, name:, shots: ...)"
        problems.add(source.error((), shape))
        problems.raise_any()
    storyboard, kept, dropped = _validated(source, data, problems)
    source = replace(source, kept=kept)
    template_dirs = _template_dirs(source, storyboard, root, problems)
    files = _check_references(storyboard, source, template_dirs, root, dropped, problems)
    found = tuple(problems.found)
    failed = frozenset(problems.failed | dropped)
    return Spec(storyboard, path, source, template_dirs, root, files, found, failed)


def _validated(
    source: SourceMap, data: dict[str, Any], problems: Problems
) -> tuple[Storyboard, dict[str, tuple[int, ...]], frozenset[str]]:
    """The storyboard without the shots, stills and sequences that do not validate, which
    of the file's items are kept, and the ids of those left out; each problem is added.
    Raises when a problem is outside those items (nothing else can be trusted then)."""
    try:
        return Storyboard.model_validate(data), {}, frozenset()
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    problems.found.extend(_diagnostics(source, errors, problems))
    bad: dict[str, set[int]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        if len(loc) < 2 or loc[0] not in LIST_FIELDS or not isinstance(loc[1], int):
            problems.raise_any()
        bad.setdefault(loc[0], set()).add(loc[1])
    kept: dict[str, tuple[int, ...]] = {}
    dropped: set[str] = set()
    trimmed = dict(data)
    for section, indexes in bad.items():
        items = data[section]
        kept[section] = tuple(i for i in range(len(items)) if i not in indexes)
        trimmed[section] = [items[i] for i in kept[section]]
        dropped.update(_item_id(items[i]) for i in indexes)
    try:
        storyboard = Storyboard.model_validate(trimmed)
    except ValidationError:  # no shot is left to check the rest against
        raise SpecError.of(problems.found) from None
    return storyboard, kept, frozenset(dropped - {""})


def _item_id(item: Any) -> str:
    """The id a shot, still or sequence that did not validate was given, else ""."""
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else ""


def find_storyboards(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Storyboards under `paths` (files given are taken as they are), and the YAML files that
    could not be read to tell. A file is a storyboard when it parses to a mapping with
    `version` and `shots`; hidden folders and build outputs are skipped."""
    found: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    for root in paths:
        if root.is_file():
            found.append(root)
            continue
        for path in sorted(root.rglob("*.y*ml")):
            parts = path.relative_to(root).parts
            if any(p.startswith(".") or p in ("build", "node_modules") for p in parts):
                continue
            try:
                text = _read_text(path)
                _check_shape(path, text)
                node = _compose(path, text)
            except SpecError as exc:
                unreadable.append((path, exc.render().splitlines()[0]))
                continue
            if isinstance(node, yaml.MappingNode):
                keys = {k.value for k, _ in _pairs(node, 0) if isinstance(k, yaml.ScalarNode)}
                if {"version", "shots"} <= keys:
                    found.append(path)
    return found, unreadable


def _read_text(path: Path, limit: int = MAX_YAML_BYTES) -> str:
    """The storyboard's text: a regular file of at most `limit` bytes, in UTF-8."""
    try:
        data = read_bounded(path, limit, path.name)
    except FileMissing:
        raise SpecError(path, 1, 1, "storyboard file not found") from None
    except TooLarge:
        raise SpecError(path, 1, 1, f"larger than {limit:,} bytes: not a storyboard") from None
    except OutsideProject as exc:
        raise SpecError(path, 1, 1, f"{exc}: not a storyboard") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(path, 1, 1, f"not UTF-8 text ({exc.reason})") from None


def _yaml_error(path: Path, exc: yaml.YAMLError) -> SpecError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return SpecError(path, line, col, f"invalid YAML: {problem}")
    return SpecError(path, 1, 1, f"invalid YAML: {exc}")


def _check_shape(path: Path, text: str) -> None:
    """Refuse, before building anything, a document nested too deep or with too many values:
    libyaml's composer recurses once per level and slows down with deep nesting."""
    depth = nodes = 0
    try:
        for event in yaml.parse(text, Loader=SAFE_YAML_LOADER):
            if isinstance(event, yaml.NodeEvent):
                nodes += 1
                if nodes > MAX_NODES:
                    raise _event_error(path, event, f"more than {MAX_NODES:,} values")
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _event_error(path, event, f"nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None


def _event_error(path: Path, event: yaml.Event, problem: str) -> SpecError:
    return _at_mark(path, event.start_mark, f"the storyboard has {problem}")


def _compose(path: Path, text: str) -> yaml.Node | None:
    try:
        return yaml.compose(_Named(text, str(path)), Loader=SAFE_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None


class _Named(io.StringIO):
    """A YAML file's text under its name: the marks of its nodes carry the name, so a value
    of an included file is located in that file."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def _parse(
    path: Path, texts: dict[str, tuple[str, ...]], given: str | None = None
) -> yaml.Node | None:
    text = _read_text(path) if given is None else given
    if len(text) > MAX_YAML_BYTES:
        raise SpecError(path, 1, 1, f"larger than {MAX_YAML_BYTES:,} bytes: not a storyboard")
    _check_shape(path, text)
    texts[str(path)] = tuple(text.splitlines())
    return _compose(path, text)


MAX_INCLUDES = 32
# The most YAML a storyboard and everything it includes may hold together: each file is
# parsed once, however often it is included.
MAX_TOTAL_YAML_CHARACTERS = 8_000_000
# Fields an included file adds to: its shots and sequences come first; its vars, defaults,
# prices and matrix are overridden key by key by the storyboard's.
LIST_FIELDS = frozenset({"shots", "stills", "sequences"})
MAP_FIELDS = frozenset({"vars", "defaults", "prices", "matrix"})


@dataclass
class _Including:
    """`include:` (a file, or a list of files): YAML files inside the project holding parts
    of a storyboard (shared defaults, vars, shot libraries). Later files override earlier
    ones, and the storyboard overrides them all."""

    root: Path
    texts: dict[str, tuple[str, ...]]
    count: int = 0
    resolved: dict[Path, yaml.MappingNode] = field(default_factory=dict)  # by file, once
    held: int = 0  # characters of YAML read so far, the storyboard's included

    def __post_init__(self) -> None:
        self.held = sum(_characters(lines) for lines in self.texts.values())

    def resolve(
        self, path: Path, node: yaml.MappingNode, chain: tuple[Path, ...]
    ) -> yaml.MappingNode:
        found = next(
            (
                (k, v)
                for k, v in node.value
                if isinstance(k, yaml.ScalarNode) and k.value == "include"
            ),
            None,
        )
        if found is None:
            return node
        key_node, value_node = found
        rest = yaml.MappingNode(
            _MAP, [p for p in node.value if p[0] is not key_node], node.start_mark, node.end_mark
        )
        merged: yaml.MappingNode | None = None
        for name_node in self._names(path, value_node):
            included = self._included(path, name_node, chain)
            merged = included if merged is None else _merge(merged, included, top_level=True)
        return rest if merged is None else _merge(merged, rest, top_level=True)

    def _names(self, path: Path, node: yaml.Node) -> list[yaml.Node]:
        names = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for name in names:
            if not isinstance(name, yaml.ScalarNode) or name.tag != f"{_TAG}str":
                raise _node_error(path, name, "include: takes a file name, or a list of them")
        return list(names)

    def _included(
        self, path: Path, name_node: yaml.Node, chain: tuple[Path, ...]
    ) -> yaml.MappingNode:
        name = str(name_node.value)
        try:
            file = project_file(name, path.parent, self.root)
        except FileMissing as exc:
            hint = f"relative to {path.parent}/"
            raise _node_error(path, name_node, f"include: {exc}", hint) from None
        except OutsideProject as exc:
            hint = ROOT_HINT.format(root=self.root)
            raise _node_error(path, name_node, f"include: {exc}", hint) from None
        if file in chain:
            loop = " -> ".join(p.name for p in (*chain, file))
            raise _node_error(path, name_node, f"include: a loop ({loop})")
        self.count += 1
        if self.count > MAX_INCLUDES:
            raise _node_error(path, name_node, f"include: more than {MAX_INCLUDES} files")
        if file in self.resolved:  # included before, by another file: parsed once
            return self.resolved[file]
        shown = path.parent / name  # as the storyboard spells it, for messages
        node = _parse(shown, self.texts)
        self.held += _characters(self.texts[str(shown)])
        if self.held > MAX_TOTAL_YAML_CHARACTERS:
            raise _node_error(
                path,
                name_node,
                f"include: the storyboard and its includes hold over "
                f"{MAX_TOTAL_YAML_CHARACTERS:,} characters of YAML",
            )
        if not isinstance(node, yaml.MappingNode):
            raise _node_error(
                path, name_node, f"include: '{name}' is not a YAML mapping (vars:, shots: ...)"
            )
        self.resolved[file] = self.resolve(shown, node, (*chain, file))
        return self.resolved[file]


def _characters(lines: tuple[str, ...]) -> int:
    return sum(len(line) + 1 for line in lines)


def _merge(base: yaml.MappingNode, top: yaml.MappingNode, top_level: bool) -> yaml.MappingNode:
    """`base` with `top` over it, as an include reads: key by key, `top` winning; at the top
    level shots and sequences are joined and vars, defaults, prices and matrix merged."""
    for mapping in (base, top):
        _refuse_duplicates(mapping)
    over = {k.value: (k, v) for k, v in top.value if isinstance(k, yaml.ScalarNode)}
    pairs = []
    for key_node, value_node in base.value:
        name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if name not in over:
            pairs.append((key_node, value_node))
            continue
        top_key, top_value = over[name]
        kinds = type(value_node), type(top_value)
        if top_level and name in LIST_FIELDS and kinds == (yaml.SequenceNode,) * 2:
            joined = yaml.SequenceNode(
                _SEQ,
                [*value_node.value, *top_value.value],
                top_value.start_mark,
                top_value.end_mark,
            )
            pairs.append((top_key, joined))
        elif top_level and name in MAP_FIELDS and kinds == (yaml.MappingNode,) * 2:
            pairs.append((top_key, _merge(value_node, top_value, top_level=False)))
        else:
            pairs.append((top_key, top_value))
        del over[name]
    pairs += [(k, v) for k, v in top.value if not isinstance(k, yaml.ScalarNode) or k.value in over]
    return yaml.MappingNode(_MAP, pairs, top.start_mark, top.end_mark)


def _refuse_duplicates(mapping: yaml.MappingNode) -> None:
    """A key given twice is an error before mappings are merged (merging would hide it)."""
    seen: set[str] = set()
    for key_node, _ in mapping.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:
                path = Path(key_node.start_mark.name)
                raise _node_error(path, key_node, f"duplicate key '{key_node.value}'")
            seen.add(key_node.value)


def _node_error(path: Path, node: yaml.Node, message: str, hint: str | None = None) -> SpecError:
    return _at_mark(path, node.start_mark, message, hint)


def _at_mark(
    path: Path | str, mark: Any, message: str, hint: str | None = None, code: str = "yaml"
) -> SpecError:
    """An error at a YAML mark (0-based) as path:line:col (1-based)."""
    return SpecError(path, mark.line + 1, mark.column + 1, message, hint, code)


_MERGE = f"{_TAG}merge"
_TIMESTAMP = f"{_TAG}timestamp"
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")
_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")


@dataclass
class _Builder:
    """Plain Python values from YAML nodes. Problems added to `problems`, the value read as
    best it can be: duplicate keys (the first kept), keys that are not text (left out),
    tags other than YAML's plain ones (null), and the values YAML 1.1 reads as something
    else than they look (`no` as false; kept as the text). Raised: recursive aliases and
    aliases that expand past the limits."""

    path: Path
    files: frozenset[str] = frozenset()  # the files the nodes come from (includes)
    problems: Problems = field(default_factory=lambda: Problems())
    values: int = 0
    repeated: int = 0
    seen: set[int] = field(default_factory=set)
    active: set[int] = field(default_factory=set)
    constructor: yaml.constructor.SafeConstructor = field(
        default_factory=yaml.constructor.SafeConstructor
    )

    def build(self, node: yaml.Node, name: str, depth: int) -> Any:
        """The value of `node`, the value of the field `name` (for what YAML 1.1 means)."""
        self._count(node, depth)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in self.active:
                raise self._error(node, "recursive YAML alias")
            if node.tag != (_MAP if isinstance(node, yaml.MappingNode) else _SEQ):
                self.problems.add(self._tag_error(node))
                return None
            self.active.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, depth)
                return [self.build(item, name, depth + 1) for item in node.value]
            finally:
                self.active.discard(id(node))
        return self._scalar(node, name)

    def _count(self, node: yaml.Node, depth: int) -> None:
        self.values += 1
        if id(node) in self.seen:
            self.repeated += 1
        else:
            self.seen.add(id(node))
        if depth > MAX_DEPTH:
            raise self._error(node, f"aliases nest values deeper than {MAX_DEPTH} levels")
        if self.values > MAX_VALUES or self.repeated > MAX_ALIAS_VALUES:
            raise self._error(
                node,
                f"YAML aliases expand to more than {min(MAX_VALUES, MAX_ALIAS_VALUES):,} values",
                "an alias repeats what its anchor holds: aliases of aliases multiply",
            )

    def _mapping(self, node: yaml.MappingNode, depth: int) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in self._merge_sources(value_node):
                    for key, value in self.build(source, "<<", depth + 1).items():
                        merged.setdefault(key, value)  # the first source given wins
                continue
            key = self.build(key_node, "", depth + 1)
            if not isinstance(key, str | int | float | bool) or key is None:
                self.problems.add(self._error(key_node, "mapping keys must be plain text"))
                continue
            if key in result:
                self.problems.add(self._error(key_node, f"duplicate key '{key}'", code="key"))
                continue
            result[key] = self.build(value_node, str(key), depth + 1)
        return {**merged, **result}

    def _merge_sources(self, node: yaml.Node) -> list[yaml.Node]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not all(isinstance(s, yaml.MappingNode) for s in sources):
            raise self._error(
                node, "a merge key (<<) takes a mapping, such as *base, or a list of them"
            )
        return list(sources)

    def _scalar(self, node: yaml.Node, name: str) -> Any:
        tag, text = node.tag, str(node.value)
        if tag == _TIMESTAMP:
            return text  # a date stays text: templates get no date objects to call
        if tag not in _PLAIN_TAGS:
            self.problems.add(self._tag_error(node))
            return None
        if not getattr(node, "style", None):  # plain (None, or "" from libyaml): YAML guesses
            if name in RATIO_FIELDS and _SEXAGESIMAL.match(text):
                return text
            problem = self._guess_problem(node, tag, text, name)
            if problem is not None:
                self.problems.add(problem)
                return text
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            raise self._error(node, f"invalid YAML value: {str(exc).splitlines()[0]}") from None

    def _guess_problem(self, node: yaml.Node, tag: str, text: str, name: str) -> SpecError | None:
        if tag == f"{_TAG}bool" and text.lower() not in _TRUTHS and name not in BOOLEAN_FIELDS:
            meaning = str(self.constructor.construct_object(node)).lower()
            return self._error(
                node,
                f"'{text}' is read by YAML 1.1 as the boolean {meaning}, not as the text '{text}'",
                f"write '{text}' in quotes for the text, or {meaning} for a boolean",
                "yaml-1.1",
            )
        if tag in (f"{_TAG}int", f"{_TAG}float") and (
            _SEXAGESIMAL.match(text) or _OCTAL.match(text)
        ):
            number = self.constructor.construct_object(node)
            return self._error(
                node,
                f"'{text}' is read by YAML 1.1 as the number {number}",
                f"write '{text}' in quotes for the text, or {number} for the number",
                "yaml-1.1",
            )
        return None

    def _tag_error(self, node: yaml.Node) -> SpecError:
        if node.tag == _MERGE:
            return self._error(
                node, "'<<' merges a mapping in, as a key: `<<: *base`", code="yaml-tag"
            )
        if node.tag == "!include":
            return self._error(
                node,
                "YAML tag '!include' is not supported",
                "write `include: [file.yaml]` "
                "at the top of the storyboard: its vars, defaults, shots... are merged in",
                "yaml-tag",
            )
        return self._error(
            node,
            f"YAML tag '{node.tag}' is not supported",
            "a storyboard holds text, numbers, true/false, null, lists and mappings only",
            "yaml-tag",
        )

    def _error(
        self, node: yaml.Node, message: str, hint: str | None = None, code: str = "yaml"
    ) -> SpecError:
        mark = node.start_mark
        path = mark.name if mark.name in self.files else self.path
        return _at_mark(path, mark, message, hint, code)


def _diagnostics(source: SourceMap, errors: list[Any], problems: Problems) -> list[Diagnostic]:
    """Pydantic's errors as located diagnostics, the field spelled as in the YAML: one per
    place and kind (a union reports each member's complaint about one value), none where
    reading the YAML already found a problem."""
    said = problems.places()
    found: dict[tuple[str, int, int, str], Diagnostic] = {}
    for error in errors:
        diagnostic = _diagnostic(source, error)
        place = (diagnostic.path, diagnostic.line, diagnostic.col)
        if place not in said:
            found.setdefault((*place, diagnostic.code), diagnostic)
    return list(found.values())


def _diagnostic(source: SourceMap, error: Any) -> Diagnostic:
    loc = tuple(error["loc"])
    field = _field_name(source, loc)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        allowed = _allowed_fields(loc)
        message = f"unknown field '{loc[-1]}'" + did_you_mean(str(loc[-1]), allowed)
        hint = "allowed here: " + ", ".join(allowed)
        return source.diagnostic(
            loc, f"{_field_name(source, loc[:-1])}: {message}", hint, True, "unknown-field"
        )
    code = "invalid-value"
    if error["type"] == "missing":
        message = f"missing required field '{loc[-1]}'"
        field = _field_name(source, loc[:-1])
        code = "missing-field"
    if loc[-1] in ("color", "box", "background") and error["type"] in (
        "string_pattern_mismatch",
        "value_error",
    ):
        said = message.removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch":
            said = f"{error['input']!r} is not a colour"
        return source.diagnostic(loc, f"{field}: {said}", COLOUR_HINT, code="colour")
    message = message.removeprefix("Value error, ")
    prefix = f"{field}: " if field else ""
    return source.diagnostic(loc, f"{prefix}{message}", code=code)


def _field_name(source: SourceMap, loc: tuple[Any, ...]) -> str:
    """`shots[2].duration`: the path of a field as a person reads the YAML."""
    text = ""
    node = source.root
    for step in source.original(loc):
        child = _child(node, step) if node is not None else None
        if child is None:
            continue
        node = child[1]
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    """The fields allowed where the unknown one at `loc` was found."""
    model: type[BaseModel] = Storyboard
    for step in loc[:-1]:
        field = model.model_fields.get(str(step)) if not isinstance(step, int) else None
        if field is not None:
            model = next(_models_in(field.annotation), model)
    return sorted(info.alias or name for name, info in model.model_fields.items())


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _models_in(arg)


def _template_dirs(
    source: SourceMap, storyboard: Storyboard, root: Path, problems: Problems
) -> tuple[Path, ...]:
    """The folders templates come from: the ones `templates:` names, inside the project; else
    templates/ beside the storyboard or above it. The storyboard's own folder is not one
    unless named: a `.env` or a key file beside a storyboard is no template. A folder
    refused fails every item: any prompt or text may include a template from it."""
    folder = source.path.parent
    named = storyboard.templates
    if named is None:
        found = []
        for name in ("templates", "../templates"):
            with contextlib.suppress(OutsideProject):
                found.append(project_folder(name, folder, root))
        return tuple(dict.fromkeys(found))
    names = [named] if isinstance(named, str) else named
    dirs = []
    items = (*storyboard.shots, *storyboard.stills, *storyboard.sequences)
    for index, name in enumerate(names):
        loc = ("templates",) if isinstance(named, str) else ("templates", index)
        try:
            dirs.append(project_folder(name, folder, root))
        except OutsideProject as exc:
            hint = ROOT_HINT.format(root=root)
            error = source.error(loc, f"templates: {exc}", hint, code="file")
            problems.add(error, {item.id for item in items})
    return tuple(dict.fromkeys(dirs))


def _check_references(
    storyboard: Storyboard,
    source: SourceMap,
    dirs: tuple[Path, ...],
    root: Path,
    dropped: frozenset[str],
    problems: Problems,
) -> dict[str, Path]:
    """Cross-field rules pydantic cannot see: unique ids, known shots, files that exist inside
    the project; each problem found is added, with the items it fails. Returns each file
    named, resolved. An id of an item that did not validate (`dropped`) is known: naming it
    is not a second mistake."""
    ids = _check_ids(storyboard, source, problems)
    found: set[str] = set()  # templates looked up once: many shots share one
    for loc, shot in _items(storyboard):
        if shot.template is None or shot.id in problems.failed or shot.template in found:
            continue
        try:
            _find_template(source, (*loc, "template"), shot.template, dirs, root)
            found.add(shot.template)
        except SpecError as exc:
            problems.add(exc, {shot.id})
    _check_frame_refs(storyboard, source, ids, dropped, problems)
    files = _check_files(storyboard, source, root, problems)
    for loc, message in _size_problems(storyboard):
        problems.add(source.error(loc, message, code="size"), owners(storyboard, loc))
    shot_ids = _ids_in(ids, "shots")
    for s_index, sequence in enumerate(storyboard.sequences):
        for e_index, entry in enumerate(sequence.shots):
            if isinstance(entry, CardSpec):
                continue
            shot_id = entry if isinstance(entry, str) else entry.shot
            if shot_id not in shot_ids and shot_id not in dropped:
                error = source.error(
                    ("sequences", s_index, "shots", e_index),
                    f"sequence '{sequence.id}' names unknown shot '{shot_id}'"
                    + did_you_mean(shot_id, shot_ids),
                    f"shots: {', '.join(shot_ids)}",
                    code="unknown-shot",
                )
                problems.add(error, {sequence.id})
    return files


def _items(storyboard: Storyboard) -> Iterator[tuple[tuple[str, int], ShotSpec]]:
    """Each shot and still, where it is written."""
    for section, items in (("shots", storyboard.shots), ("stills", storyboard.stills)):
        for index, item in enumerate(items):
            yield (section, index), item


def _check_ids(
    storyboard: Storyboard, source: SourceMap, problems: Problems
) -> dict[str, tuple[str, int]]:
    """Where each shot and still id is first written (they share one name space), and
    sequence ids unique too: a second use fails both items."""
    ids: dict[str, tuple[str, int]] = {}
    for (section, index), shot in _items(storyboard):
        if shot.id in ids:
            first, line, _ = source.where((*ids[shot.id], "id"))
            error = source.error(
                (section, index, "id"),
                f"duplicate {section[:-1]} id '{shot.id}'",
                f"first defined at {first}:{line}",
                code="duplicate-id",
            )
            problems.add(error, {shot.id})
            continue
        ids[shot.id] = (section, index)
    sequence_ids: dict[str, int] = {}
    for index, sequence in enumerate(storyboard.sequences):
        if sequence.id in sequence_ids:
            first, line, _ = source.where(("sequences", sequence_ids[sequence.id], "id"))
            error = source.error(
                ("sequences", index, "id"),
                f"duplicate sequence id '{sequence.id}'",
                f"first defined at {first}:{line}",
                code="duplicate-id",
            )
            problems.add(error, {sequence.id})
        sequence_ids.setdefault(sequence.id, index)
    return ids


def _check_files(
    storyboard: Storyboard, source: SourceMap, root: Path, problems: Problems
) -> dict[str, Path]:
    """Each file the storyboard names, resolved inside the project; a URL only for a frame."""
    folder = source.path.parent
    files: dict[str, Path] = {}
    for loc, name in file_fields(storyboard):
        failing = owners(storyboard, loc)
        if is_url(name):
            if not name.startswith("https://") or loc[-1] not in ("first_frame", "last_frame"):
                message = f"'{name}': only a frame image may be a URL, and only https://"
                problems.add(source.error(loc, message, code="url"), failing)
            continue  # downloaded when the storyboard is planned (cache/inputs.py)
        try:
            files[name] = project_file(name, folder, root)
        except FileMissing as exc:
            hint = f"paths are relative to {folder}/"
            problems.add(source.error(loc, str(exc), hint, code="file"), failing)
        except OutsideProject as exc:
            hint = ROOT_HINT.format(root=root)
            problems.add(source.error(loc, str(exc), hint, code="file"), failing)
    return files


def owners(storyboard: Storyboard, loc: tuple[Any, ...]) -> set[str]:
    """The ids of the items a value at `loc` belongs to: `defaults` belong to every shot."""
    if loc[0] == "defaults":
        return {shot.id for shot in storyboard.shots}
    items = {"shots": storyboard.shots, "stills": storyboard.stills}.get(loc[0])
    if items is None and loc[0] == "sequences":
        items = storyboard.sequences
    if items is None or len(loc) < 2 or not isinstance(loc[1], int):
        return set()
    return {items[loc[1]].id}


def frame_refs(storyboard: Storyboard) -> Iterator[tuple[tuple[Any, ...], str, FrameRef]]:
    """Where a shot starts or ends on another render's frame: (where, shot id, reference)."""
    for index, shot in enumerate(storyboard.shots):
        for name in ("first_frame", "last_frame"):
            given = getattr(shot, name) or getattr(storyboard.defaults, name)
            if isinstance(given, FrameRef):
                field = ("shots", index, name) if getattr(shot, name) else ("defaults", name)
                yield field, shot.id, given


def _check_frame_refs(
    storyboard: Storyboard,
    source: SourceMap,
    ids: dict[str, tuple[str, int]],
    dropped: frozenset[str],
    problems: Problems,
) -> None:
    """Every frame named comes from a shot or still that exists, and no shot waits, through
    others, on itself."""
    edges: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    for loc, shot_id, ref in frame_refs(storyboard):
        wanted = "shots" if ref.shot is not None else "stills"
        if ref.name in dropped:
            problems.failed.add(shot_id)  # what it starts from has its own problem
            continue
        if ids.get(ref.name, ("",))[0] != wanted:
            known = _ids_in(ids, wanted)
            error = source.error(
                loc,
                f"shot '{shot_id}' starts from unknown {wanted[:-1]} '{ref.name}'"
                + did_you_mean(ref.name, known),
                f"{wanted}: {', '.join(known) or '(none)'}",
                code=f"unknown-{wanted[:-1]}",
            )
            problems.add(error, {shot_id})
            continue
        if ref.still is not None and isinstance(ref.frame, float):
            message = f"shot '{shot_id}': a still has no time: remove 'frame'"
            problems.add(source.error(loc, message), {shot_id})
        edges.setdefault(shot_id, []).append((ref.name, loc))
    cycle = _cycle(edges)
    if cycle:
        names, loc = cycle
        error = source.error(
            loc,
            f"shots wait on each other's frames: {' -> '.join(names)}",
            "a shot can start from a frame of a shot that does not depend on it",
            code="cycle",
        )
        problems.add(error, set(names))


def _ids_in(ids: dict[str, tuple[str, int]], section: str) -> list[str]:
    """The ids of one section ("shots" or "stills"), in the order written."""
    return [name for name, (where, _) in ids.items() if where == section]


def _cycle(
    edges: dict[str, list[tuple[str, tuple[Any, ...]]]],
) -> tuple[list[str], tuple[Any, ...]] | None:
    """A cycle of the graph, as the ids around it and where its last edge is written."""
    done: set[str] = set()
    for start in edges:
        path: list[str] = []
        on_path: dict[str, int] = {}
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, turn = stack.pop()
            if turn == 0:
                if node in done:
                    continue
                on_path[node] = len(path)
                path.append(node)
            targets = edges.get(node, [])
            if turn < len(targets):
                stack.append((node, turn + 1))
                target, loc = targets[turn]
                if target in on_path:
                    return [*path[on_path[target] :], target], loc
                if target not in done:
                    stack.append((target, 0))
                continue
            done.add(node)
            on_path.pop(node, None)
            path.pop()
    return None


def _find_template(
    source: SourceMap, loc: tuple[Any, ...], name: str, dirs: tuple[Path, ...], root: Path
) -> None:
    try:
        found = find_in(dirs, name, root)
    except OutsideProject as exc:
        hint = ROOT_HINT.format(root=root)
        raise source.error(loc, f"template {exc}", hint, code="template") from None
    if found is None:
        looked = ", ".join(str(d) for d in dirs) or "(no templates folder found)"
        hint = f"looked in: {looked}"
        above = (source.path.parent / ".." / "templates").resolve()
        if not above.is_relative_to(root) and (above / name).is_file():
            hint = (
                f"{above} is outside the project {root}: make the folder that holds both "
                "the project (`git init`, or `mkdir .storyboard` there)"
            )
        known = [str(p.relative_to(d)) for d in dirs for p in d.rglob("*.j2") if p.is_file()]
        message = f"template '{name}' not found" + did_you_mean(name, known)
        raise source.error(loc, message, hint, code="template")


def is_url(name: str) -> bool:
    return name.startswith(("https://", "http://"))


def file_fields(storyboard: Storyboard) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Where the storyboard names a file (first frames, audio beds), and the name."""
    for name in ("first_frame", "last_frame"):
        given = getattr(storyboard.defaults, name)
        if isinstance(given, str):
            yield ("defaults", name), given
        for index, shot in enumerate(storyboard.shots):
            given = getattr(shot, name)
            if isinstance(given, str):
                yield ("shots", index, name), given
    for index, sequence in enumerate(storyboard.sequences):
        yield from _sequence_files(index, sequence)


def _sequence_files(index: int, sequence: SequenceSpec) -> list[tuple[tuple[Any, ...], str]]:
    """The files a sequence names, but for names that are templates (checked per variant)."""
    at: tuple[Any, ...] = ("sequences", index)
    named: list[tuple[tuple[Any, ...], str]] = []
    if sequence.audio is not None:
        named.append(((*at, "audio"), sequence.audio))
    if sequence.voice is not None:
        named.append(((*at, "voice"), sequence.voice))
    if sequence.logo is not None:
        named.append(((*at, "logo", "image"), sequence.logo.image))
    subtitles = sequence.subtitles
    if isinstance(subtitles, str):
        named.append(((*at, "subtitles"), subtitles))
    elif subtitles is not None:
        named.append(((*at, "subtitles", "file"), subtitles.file))
        if subtitles.font is not None and is_font_file(subtitles.font):
            named.append(((*at, "subtitles", "font"), subtitles.font))
    for layer, text in enumerate(sequence.text):
        if text.font is not None and is_font_file(text.font):
            named.append(((*at, "text", layer, "font"), text.font))
    for number, entry in enumerate(sequence.shots):
        if isinstance(entry, CardSpec):
            if entry.image is not None:
                named.append(((*at, "shots", number, "image"), entry.image))
            if entry.font is not None and is_font_file(entry.font):
                named.append(((*at, "shots", number, "font"), entry.font))
    return [(loc, name) for loc, name in named if not is_templated(name)]


def _size_problems(storyboard: Storyboard) -> Iterator[tuple[tuple[Any, ...], str]]:
    """`resolution` and `width`/`height` are two spellings of one thing: one at a time, in pairs."""
    groups: list[tuple[tuple[Any, ...], Any]] = [(("defaults",), storyboard.defaults)]
    groups += [(("shots", i), shot) for i, shot in enumerate(storyboard.shots)]
    groups += [(("stills", i), still) for i, still in enumerate(storyboard.stills)]
    groups += [(("sequences", i), seq) for i, seq in enumerate(storyboard.sequences)]
    for loc, item in groups:
        if item.resolution is not None and (item.width is not None or item.height is not None):
            yield (*loc, "resolution"), "give either 'resolution' or 'width'/'height', not both"
        if (item.width is None) != (item.height is None):
            missing = "height" if item.height is None else "width"
            yield loc, f"'width' and 'height' go together: '{missing}' is missing"
