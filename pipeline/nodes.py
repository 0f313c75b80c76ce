"""The nodes of a build, as values: renders (one type per kind: clips, stills, voices, music,
upscales, lip-syncs, and the cards films draw), films, and what they use.

Frozen dataclasses rather than pydantic models: a plan builds tens of thousands of these
from values that were validated already, and needs them cheap. Every step reads them;
`expand` makes them, `graph` keys what waits on another render. Code that treats kinds
differently matches over `Node` (each kind's class), which mypy proves complete.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pipeline import hashing

# The key of a render that waits on another's frame starts so: it is known, and can be looked
# up, only once that frame exists.
PENDING = "pending-"
CARD = "card"  # the model of a title or end card: drawn when the film is joined, never paid


class Output(StrEnum):
    """What a render's file holds, as results name it (`videoURL`, `imageURL`, `audioURL`)."""

    VIDEO = "video"
    IMAGE = "image"
    AUDIO = "audio"


@dataclass(frozen=True, slots=True)
class Render:
    """What every render has: one render of an item of the storyboard, in one variant, one
    take. Its key is the digest of its request (the canonical recipe: exactly what is sent)
    and of its inputs' bytes. A render is always one of the kinds below."""

    key: str
    shot_id: str
    label: str
    variant: str
    shot_vars: tuple[tuple[str, Any], ...]
    take: int
    takes: int
    picked: bool
    model: str
    width: int
    height: int
    duration: float  # seconds (a still 0; a voice its estimated length)
    fps: int
    prompt: str
    request: dict[str, Any]
    images: tuple[Path, ...]
    image_hashes: tuple[str, ...]
    price: float | None
    index: int
    audio: bool = False  # its output has sound
    after: tuple[FrameOf, ...] = ()  # inputs that are other renders' outputs
    # Where each input (images, hashes) goes in the request: a path of keys and indexes;
    # none given: the image slots of `inputs.frameImages`, in order.
    places: tuple[tuple[str | int, ...], ...] = ()
    speaks: str = ""  # a lip-synced clip's (and its upscale's): the key of the voice it speaks
    decided: str = ""  # what its decisions file says of it, and where: for `status -v`
    chosen: bool = False  # its take was picked by a person (pick:, a decision), not by default
    # Priced by the length of one input, once it is known: (its slot, USD a second). A
    # lip-sync is billed by the second of the voice it speaks, an upscale of the clip.
    priced_by: tuple[int, float] | None = None

    # Each kind is a subclass that adds no field (but a card's font): declared as a plain
    # class, it shares the fields, methods and checks made once here (a dataclass of each
    # would make them again, a fifth of the time of starting a plan).
    kind: ClassVar[str]  # as commands say it (`plan --json`, the review page)
    output: ClassVar[Output]
    many: ClassVar[str]  # the kind, counted: `status` says "voices 4/4 cached"
    one: ClassVar[str]  # one of them, as `status` says it ("shot" for a clip)

    @property
    def pending(self) -> bool:
        """Whether its key waits on an upstream render's output (an input not known yet)."""
        return not all(self.image_hashes)

    @property
    def waiting(self) -> list[FrameOf]:
        """The inputs it still waits for: upstream renders' outputs not known yet."""
        return [ahead for ahead in self.after if not self.image_hashes[ahead.slot]]

    @property
    def one_render(self) -> str:
        """How --force names this render and no other: its label, and its take when the
        label has several (`hero#2`, `hero/upscale`)."""
        return f"{self.label}#{self.take}" if self.takes > 1 else self.label

    @property
    def base_label(self) -> str:
        """The label of the shot a render is of: `hero` for `hero/upscale` too."""
        return self.label.split("/", 1)[0]

    @property
    def keyed_take(self) -> int:
        """The take its key counts."""
        return self.take

    @property
    def sound(self) -> bool:
        """Whether it renders audio (a voice, music), not a picture."""
        return self.output == Output.AUDIO

    def place(self, slot: int) -> tuple[str | int, ...]:
        """Where the input in `slot` goes in the request."""
        return self.places[slot] if self.places else ("inputs", "frameImages", slot, "image")


class Clip(Render):
    """A shot: a video render, from a prompt, maybe from a frame of another render."""

    __slots__ = ()

    kind: ClassVar[str] = "clip"
    output: ClassVar[Output] = Output.VIDEO
    many: ClassVar[str] = "shots"
    one: ClassVar[str] = "shot"


class Still(Render):
    """A keyframe image that shots start from."""

    __slots__ = ()

    kind: ClassVar[str] = "still"
    output: ClassVar[Output] = Output.IMAGE
    many: ClassVar[str] = "stills"
    one: ClassVar[str] = "still"


class Voice(Render):
    """Words spoken by a provider's voice."""

    __slots__ = ()

    kind: ClassVar[str] = "voice"
    output: ClassVar[Output] = Output.AUDIO
    many: ClassVar[str] = "voices"
    one: ClassVar[str] = "voice"


class Music(Render):
    """A piece of music, a film's bed."""

    __slots__ = ()

    kind: ClassVar[str] = "music"
    output: ClassVar[Output] = Output.AUDIO
    many: ClassVar[str] = "music"
    one: ClassVar[str] = "music"


class Upscale(Render):
    """A take made larger by an upscaler (input: the clip)."""

    __slots__ = ()

    kind: ClassVar[str] = "upscale"
    output: ClassVar[Output] = Output.VIDEO
    many: ClassVar[str] = "upscales"
    one: ClassVar[str] = "upscale"

    @property
    def keyed_take(self) -> int:
        """An upscale is keyed by the bytes it is made of, not by which take they are: a
        take that came out the same as another is upscaled once."""
        return 1


class LipSync(Render):
    """A take lip-synced to a voice (inputs: the clip, the voice)."""

    __slots__ = ()

    kind: ClassVar[str] = "lipsync"
    output: ClassVar[Output] = Output.VIDEO
    many: ClassVar[str] = "lip-syncs"
    one: ClassVar[str] = "lip-sync"


@dataclass(frozen=True, slots=True)
class Card(Render):
    """A title or end card: drawn when its film is joined, free. Its request is what it
    shows."""

    font: Path | None = None

    kind: ClassVar[str] = "card"
    output: ClassVar[Output] = Output.VIDEO
    many: ClassVar[str] = "cards"
    one: ClassVar[str] = "card"


# Every kind of node a film is made of; `match` over it is checked complete by mypy.
Node = Clip | Still | Voice | Music | Upscale | LipSync | Card
PAID = (Clip, Still, Voice, Music, Upscale, LipSync)  # the kinds a provider renders
Kind = TypeVar("Kind", bound=Render)


def made_as(kind: type[Kind], render: Render, **changes: Any) -> Kind:
    """A render of another kind made from `render` (an upscale or lip-sync of a clip), its
    fields kept but for `changes`."""
    given = {f.name: getattr(render, f.name) for f in fields(render) if f.name in _FIELDS}
    return kind(**(given | changes))


_FIELDS = frozenset(f.name for f in fields(Render))


@dataclass(frozen=True, slots=True)
class FrameOf:
    """An input of a render that is another render's output: a frame of a clip (`first`,
    `last`, or seconds), or the whole output (`frame` empty: a still, a clip to upscale or
    lip-sync, a voice)."""

    slot: int  # its place among the shot's images
    upstream: str  # that render's key (its pending key while it waits itself)
    label: str
    frame: str | float


def frame_name(at: str | float) -> str:
    """A frame as people and file names say it: `last`, `2.5s`."""
    return at if isinstance(at, str) else f"{at:g}s"


def placed(request: dict[str, Any], place: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A copy of `request` with `value` at `place`, the containers on the way copied."""
    top: dict[str, Any] = dict(request)
    node: Any = top
    for step in place[:-1]:
        child = node[step]
        child = dict(child) if isinstance(child, dict) else list(child)
        node[step] = child
        node = child
    node[place[-1]] = value
    return top


def depends_on(shot: Node) -> str:
    """What a shot starts from: `street (last)`, `key_art` (a still)."""
    return ", ".join(
        f"{a.label} ({frame_name(a.frame)})" if a.frame != "" else a.label for a in shot.after
    )


@dataclass(frozen=True, slots=True)
class ClipUse:
    """A shot's clip as used in a sequence, trimmed to [start, end) seconds."""

    shot: Node
    start: float
    end: float
    focus: float | None = None  # where a crop of it keeps its window (else the sequence's)

    @property
    def length(self) -> float:
        return self.end - self.start

    @property
    def named(self) -> tuple[str, str]:
        """How messages name it (its take, when the shot has several), and the shot to
        render again if its clip is damaged."""
        shot = self.shot
        return shot.label + (f" take {shot.take}" if shot.takes > 1 else ""), shot.shot_id


SAFE_MARGIN = 0.05  # text stays inside the title-safe area: 5% in from each edge
LOUDNESS = -16.0  # integrated LUFS a film's sound is brought to unless it says otherwise
TRUE_PEAK = -1.0  # dBTP: no film's sound peaks above it


@dataclass(frozen=True, slots=True)
class SafeArea:
    """Where text, cards and the logo may be drawn: how far in from each edge, as fractions
    of the frame's width (left, right) and height (top, bottom). A platform's interface
    (buttons, captions, the progress bar) covers more than the 5% title-safe margin."""

    left: float = SAFE_MARGIN
    top: float = SAFE_MARGIN
    right: float = SAFE_MARGIN
    bottom: float = SAFE_MARGIN

    def inside(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The safe area of a `width` x `height` frame in pixels: left, top, right, bottom."""
        return (
            math.ceil(self.left * width),
            math.ceil(self.top * height),
            math.floor((1 - self.right) * width),
            math.floor((1 - self.bottom) * height),
        )


TITLE_SAFE = SafeArea()  # the 5% margin every film keeps, unless a platform asks for more


@dataclass(frozen=True, slots=True)
class Encoding:
    """A platform's encoder settings, as it publishes them (pipeline/platforms.py): H.264 at
    an average bitrate instead of a constant quality, its profile, keyframe interval and
    B-frames, and AAC's bitrate."""

    video_kbps: int
    audio_kbps: int
    profile: str  # x264's: high
    gop: int  # frames from one keyframe to the next (closed GOPs); 0: x264's choice
    bframes: int  # consecutive B-frames; -1: x264's choice


@dataclass(frozen=True, slots=True)
class CaptionCue:
    """A subtitle file's cue as the caption files carry it: seconds of the film, words."""

    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class Captions:
    """What a film's caption files (`<film>.srt`, `<film>.vtt`) say: the voice-over's words,
    a cue each, timed over the voice render's measured length from where it starts; and the
    cues of its subtitle file."""

    said: tuple[str, ...]  # the voice-over's words in cues, in order
    voice: str  # the key of the voice render they are timed over ("" when none)
    at: float  # where the voice starts in the film
    cues: tuple[CaptionCue, ...]


def box_padding(size: int, box: str | None) -> int:
    """How far a text's box reaches out around it, in pixels."""
    return max(size // 3, 2) if box is not None else 0


@dataclass(frozen=True, slots=True)
class TextLayer:
    """Text drawn on a film, as one variant says it, over a span of the film. Its font is
    named by the digest of its bytes (the file is the film's `files[font]`)."""

    text: str
    start: float  # seconds of the film
    end: float
    position: str  # one of spec.ANCHORS
    offset: tuple[float, float]  # of the frame's width and height
    size: float  # of the frame's height
    color: str
    box: str | None
    shadow: bool
    fade: float
    font: str


@dataclass(frozen=True, slots=True)
class Logo:
    """An image drawn over the whole film, named by the digest of its bytes."""

    image: str
    position: str
    size: float  # its height, of the frame's height
    opacity: float


@dataclass(frozen=True, slots=True)
class SoundUse:
    """A bed or a voice-over as a film plays it: a render of the storyboard (known by its
    key), or a file (by the digest of its bytes)."""

    render: Node | None
    digest: str = ""  # a file's
    at: float = 0.0  # a voice: where it starts in the film
    length: float | None = None  # a bed: seconds of it kept (then silence); None: all of it

    @property
    def source(self) -> str:
        return self.render.key if self.render is not None else self.digest


# -- the recipe of a film: what `assemble` executes, and all its key counts --------------


@dataclass(frozen=True, slots=True)
class Piece:
    """One clip or card of a film as it is joined (OpenTimelineIO's clip and its source
    range): the render it shows, by key, and the span of it used."""

    source: str
    start: float
    end: float
    to_end: bool  # it runs to the clip's end: the clip's whole delivered length is used
    focus: float | None  # where a crop keeps its window (else the film's)
    speaks: bool  # a lip-synced clip: its sound is a voice, kept over any bed
    drawn: bool  # a card, encoded when joined: its stream is never copied as it is


@dataclass(frozen=True, slots=True)
class Sound:
    """A bed or a voice-over as it is mixed: its render's key or its file's digest."""

    source: str
    at: float = 0.0
    length: float | None = None


@dataclass(frozen=True, slots=True)
class JoinRecipe:
    """The exact join instructions of a film, as plain data: the one thing `assemble` reads
    (with the files they name, by key or digest). A film's key is its digest, so nothing
    reaches the join without reaching the key."""

    pieces: tuple[Piece, ...]
    transition: str  # "cut", or an ffmpeg xfade
    overlap: float  # seconds each transition takes (0 for a cut)
    width: int
    height: int
    fps: int
    fit: str  # pad, crop or blur: how a clip of another shape fills the frame
    focus: float  # where a crop keeps its window: 0 left, 1 right
    bed: Sound | None
    voice: Sound | None  # None too when the film's lip-synced clips speak it
    texts: tuple[TextLayer, ...]
    logo: Logo | None
    quality: int  # x264's crf
    preset: str
    loudness: float  # integrated LUFS its sound is measured and brought to
    safe: SafeArea  # where its text, cards and logo are kept
    encoding: Encoding | None  # a platform's settings, else x264 at `quality`
    captions: Captions | None  # written beside it: `<film>.srt`, `<film>.vtt`

    @property
    def duration(self) -> float:
        return sum(p.end - p.start for p in self.pieces) - self.overlap * (len(self.pieces) - 1)

    def data(self) -> dict[str, Any]:
        """The recipe as JSON data: what the lock keeps, so that a change is said in words."""
        return _plain(self)

    def digest(self) -> str:
        return hashing.film_key(self.data())


def _plain(value: Any) -> Any:
    """`dataclasses.asdict` without its deep copy of every leaf (a recipe's leaves are
    immutable, and a film's recipe is made for every film of every plan)."""
    if hasattr(type(value), "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class Film:
    """One film: a sequence of the storyboard in one variant and format. Its recipe is
    made here from what it is made of (`join_recipe`), its key is the recipe's digest, and
    `assemble` is given the recipe alone: a field that reaches the join reaches the key."""

    id: str
    variant: str
    index: int
    uses: tuple[ClipUse, ...]  # its clips and cards, in order
    transition: str
    overlap: float
    width: int
    height: int
    fps: int
    fit: str
    quality: int
    preset: str
    focus: float = 0.5  # where a crop keeps its window: 0 left, 1 right
    bed: SoundUse | None = None
    voice: SoundUse | None = None  # mixed over the bed, which ducks under it
    texts: tuple[TextLayer, ...] = ()
    logo: Logo | None = None
    format: str = ""  # of `formats:`, as written (16:9, 1080x1350); "" for the one film
    # The files its recipe names by digest (sound files, fonts, the logo), where they are.
    files: Mapping[str, Path] = field(default_factory=dict)
    voice_at: str = ""  # where a generated voice is named: for the error when it is too long
    loudness_at: str = ""  # where its loudness target is said: for the error when it misses
    loudness: float = LOUDNESS  # integrated LUFS: the sequence's, its platform's, or -16
    safe: SafeArea = TITLE_SAFE
    encoding: Encoding | None = None
    captions: Captions | None = None
    recipe: JoinRecipe = field(init=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        recipe = join_recipe(self)
        object.__setattr__(self, "recipe", recipe)
        object.__setattr__(self, "key", recipe.digest())

    def renders(self) -> list[Node]:
        """The renders the film is made of: its clips (not its cards), voice and bed."""
        made = [use.shot for use in self.uses if not isinstance(use.shot, Card)]
        sounds = (self.voice, self.bed)
        return made + [s.render for s in sounds if s is not None and s.render is not None]

    @property
    def spoken_in_clips(self) -> bool:
        """Whether its voice is in its lip-synced clips already: it is not mixed again."""
        voice = self.voice.render if self.voice is not None else None
        return voice is not None and any(use.shot.speaks == voice.key for use in self.uses)

    @property
    def name(self) -> str:
        parts = [self.id, self.variant, self.format.replace(":", "x")]
        return "--".join(part for part in parts if part)

    @property
    def duration(self) -> float:
        return self.recipe.duration


def join_recipe(film: Film) -> JoinRecipe:
    """What joining `film` takes, as plain data: each piece by its render's key, sounds by
    key or digest, the rest as the join uses it."""
    pieces = tuple(
        Piece(
            source=use.shot.key,
            start=use.start,
            end=use.end,
            to_end=use.end >= use.shot.duration,
            focus=use.focus,
            speaks=bool(use.shot.speaks),
            drawn=isinstance(use.shot, Card),
        )
        for use in film.uses
    )
    voice = film.voice
    mixed = Sound(voice.source, at=voice.at) if voice and not film.spoken_in_clips else None
    bed = Sound(film.bed.source, length=film.bed.length) if film.bed is not None else None
    return JoinRecipe(
        pieces=pieces,
        transition=film.transition,
        overlap=film.overlap,
        width=film.width,
        height=film.height,
        fps=film.fps,
        fit=film.fit,
        focus=film.focus,
        bed=bed,
        voice=mixed,
        texts=film.texts,
        logo=film.logo,
        quality=film.quality,
        preset=film.preset,
        loudness=film.loudness,
        safe=film.safe,
        encoding=film.encoding,
        captions=film.captions,
    )


@dataclass(frozen=True)
class Expansion:
    """A storyboard expanded for one renderer: every render of every variant (a render
    shared by variants once for each), every film, and what was said on the way."""

    renderer: str
    shots: tuple[Node, ...]
    sequences: tuple[Film, ...]
    variants: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def shot_count(self) -> int:
        """The shots and stills once per variant: what a person counts as shots (their
        takes, the voices, the music and the renders that finish a take are not)."""
        return len({(s.base_label, s.variant) for s in self.shots if isinstance(s, Clip | Still)})


def render_key(request: dict[str, Any], hashes: list[str], renderer: str, take: int) -> str:
    """A render's key; marked pending while one of its images is not known yet."""
    key = hashing.shot_key(request, hashes, renderer, take)
    return key if all(hashes) else f"{PENDING}{key}"


def unique_shots(shots: tuple[Node, ...] | list[Node]) -> list[Node]:
    """One shot per key, in order of first appearance: what actually gets rendered."""
    seen: dict[str, Node] = {}
    for shot in shots:
        seen.setdefault(shot.key, shot)
    return list(seen.values())
