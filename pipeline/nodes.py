"""The nodes of a build, as values: renders (shots, stills, voices, music, upscales and
lip-syncs), films, and what they use.

Frozen dataclasses rather than pydantic models: a plan builds tens of thousands of these
from values that were validated already, and needs them cheap. Every step reads them;
`expand` makes them, `graph` keys what waits on another render.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import hashing

# The key of a render that waits on another's frame starts so: it is known, and can be looked
# up, only once that frame exists.
PENDING = "pending-"
CARD = "card"  # the model of a title or end card: drawn when the film is joined, never paid

# What a render makes. A clip and a still start from frames; an upscale and a lip-sync from
# a clip (and a voice) rendered before them; a voice and music from words alone.
CLIP, STILL, VOICE, MUSIC, UPSCALE, LIPSYNC = (
    "clip",
    "still",
    "voice",
    "music",
    "upscale",
    "lipsync",
)
SOUNDS = (VOICE, MUSIC)  # renders whose output is audio
KIND_NAMES = {
    CLIP: "shots",
    STILL: "stills",
    VOICE: "voices",
    MUSIC: "music",
    UPSCALE: "upscales",
    LIPSYNC: "lip-syncs",
}


@dataclass(frozen=True, slots=True)
class Shot:
    """One render: a shot of the storyboard, in one variant, one take."""

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
    font: Path | None = None  # a card's font (cards are drawn, not rendered)
    kind: str = CLIP
    audio: bool = False  # its clip has sound
    after: tuple[FrameOf, ...] = ()  # inputs that are other renders' outputs
    # Where each input (images, hashes) goes in the request: a path of keys and indexes;
    # none given: the image slots of `inputs.frameImages`, in order.
    places: tuple[tuple[str | int, ...], ...] = ()
    speaks: str = ""  # a lip-synced clip's: the key of the voice render it speaks
    decided: str = ""  # what its decisions file says of it, and where: for `status -v`
    # Priced by the length of one input, once it is known: (its slot, USD a second). A
    # lip-sync is billed by the second of the voice it speaks, an upscale of the clip.
    priced_by: tuple[int, float] | None = None

    @property
    def pending(self) -> bool:
        """Whether its key waits on an upstream render's output (an input not known yet)."""
        return not all(self.image_hashes)

    @property
    def keyed_take(self) -> int:
        """The take its key counts. An upscale is keyed by the bytes it is made of, not by
        which take they are: a take that came out the same as another is upscaled once."""
        return 1 if self.kind == UPSCALE else self.take

    @property
    def base_label(self) -> str:
        """The label of the shot a render is of: `hero` for `hero/upscale` too."""
        return self.label.split("/", 1)[0]

    @property
    def still(self) -> bool:
        return self.kind == STILL

    @property
    def sound(self) -> bool:
        """Whether it renders audio (a voice, music), not a picture."""
        return self.kind in SOUNDS

    def place(self, slot: int) -> tuple[str | int, ...]:
        """Where the input in `slot` goes in the request."""
        return self.places[slot] if self.places else ("inputs", "frameImages", slot, "image")


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


def depends_on(shot: Shot) -> str:
    """What a shot starts from: `street (last)`, `key_art` (a still)."""
    return ", ".join(
        f"{a.label} ({frame_name(a.frame)})" if a.frame != "" else a.label for a in shot.after
    )


@dataclass(frozen=True, slots=True)
class ClipUse:
    """A shot's clip as used in a sequence, trimmed to [start, end) seconds."""

    shot: Shot
    start: float
    end: float
    focus: float | None = None  # where a crop of it keeps its window (else the sequence's)

    @property
    def length(self) -> float:
        return self.end - self.start


SAFE_MARGIN = 0.05  # text stays inside the title-safe area: 5% in from each edge


def box_padding(size: int, box: str | None) -> int:
    """How far a text's box reaches out around it, in pixels."""
    return max(size // 3, 2) if box is not None else 0


@dataclass(frozen=True, slots=True)
class TextLayer:
    """Text drawn on a film, as one variant says it, over a span of the film."""

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
    font: Path

    def settings(self, font_sha: str) -> dict[str, Any]:
        """What the film's key counts of it: the font by its bytes, not its path."""
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "position": self.position,
            "offset": list(self.offset),
            "size": self.size,
            "color": self.color,
            "box": self.box,
            "shadow": self.shadow,
            "fade": self.fade,
            "font": font_sha,
        }


@dataclass(frozen=True, slots=True)
class Logo:
    """An image drawn over the whole film."""

    image: Path
    position: str
    size: float  # its height, of the frame's height
    opacity: float


@dataclass(frozen=True, slots=True)
class Sequence:
    id: str
    variant: str
    uses: tuple[ClipUse, ...]
    transition: str
    transition_duration: float
    fit: str
    width: int
    height: int
    fps: int
    audio: Path | None
    quality: int
    preset: str
    key: str
    index: int
    settings: dict[str, Any]  # how its clips are joined, as its key counts them
    texts: tuple[TextLayer, ...] = ()
    logo: Logo | None = None
    voice: Path | None = None  # a voice-over, mixed over the bed, which ducks under it
    voice_start: float = 0.0
    # A generated voice or bed: the render, whose file is known once it is made (then
    # `voice`, `audio`); where the voice is named, for the error when it is too long.
    voice_render: Shot | None = None
    bed_render: Shot | None = None
    voice_at: str = ""
    bed_length: float | None = None  # seconds of the bed kept (then silence); None: all
    focus: float = 0.5  # where a crop keeps its window: 0 left, 1 right
    format: str = ""  # of `formats:`, as written (16:9, 1080x1350); "" for the one film

    def clips(self) -> list[dict[str, Any]]:
        return clip_list(self.uses)

    def renders(self) -> list[Shot]:
        """The renders the film is made of: its clips (not its cards), voice and bed."""
        made = [use.shot for use in self.uses if use.shot.model != CARD]
        return made + [s for s in (self.voice_render, self.bed_render) if s is not None]

    @property
    def spoken_in_clips(self) -> bool:
        """Whether its voice is in its lip-synced clips already: it is not mixed again."""
        voice = self.voice_render
        return voice is not None and any(use.shot.speaks == voice.key for use in self.uses)

    @property
    def name(self) -> str:
        parts = [self.id, self.variant, self.format.replace(":", "x")]
        return "--".join(part for part in parts if part)

    @property
    def overlap(self) -> float:
        return 0.0 if self.transition == "cut" else self.transition_duration

    @property
    def duration(self) -> float:
        return sum(use.length for use in self.uses) - self.overlap * (len(self.uses) - 1)


@dataclass(frozen=True)
class Expansion:
    """A storyboard expanded for one renderer: every render of every variant (a render
    shared by variants once for each), every film, and what was said on the way."""

    renderer: str
    shots: tuple[Shot, ...]
    sequences: tuple[Sequence, ...]
    variants: tuple[str, ...]
    warnings: tuple[str, ...]


def clip_list(uses: Iterable[ClipUse]) -> list[dict[str, Any]]:
    """A film's clips in order, as its key counts them: each clip's key and trim (and its
    focus, where it has its own)."""
    return [
        {"key": u.shot.key, "in": u.start, "out": u.end}
        | ({"focus": u.focus} if u.focus is not None else {})
        for u in uses
    ]


def film_key(uses: Iterable[ClipUse], settings: dict[str, Any]) -> str:
    """A film's key: its clips (keys and trims) in order, and how they are joined."""
    return hashing.sequence_key(clip_list(uses), settings)


def render_key(request: dict[str, Any], hashes: list[str], renderer: str, take: int) -> str:
    """A render's key; marked pending while one of its images is not known yet."""
    key = hashing.shot_key(request, hashes, renderer, take)
    return key if all(hashes) else f"{PENDING}{key}"


def unique_shots(shots: tuple[Shot, ...] | list[Shot]) -> list[Shot]:
    """One shot per key, in order of first appearance: what actually gets rendered."""
    seen: dict[str, Shot] = {}
    for shot in shots:
        seen.setdefault(shot.key, shot)
    return list(seen.values())
