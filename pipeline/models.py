"""The model catalogue: what each video and image model takes and what a render costs.

The facts live in catalogue.yaml (one file of data, with the date it was read and its
sources); this module reads it once into frozen values and answers questions about them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

try:  # libyaml's parser: a quarter of the time of PyYAML's own, the same safe tags
    SAFE_YAML_LOADER: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    SAFE_YAML_LOADER = yaml.SafeLoader

PROMPT_LIMIT = 2000
PROMPT_MINIMUM = 2
VIDEO = "videoInference"
IMAGE = "imageInference"
# What the fields of a request are called in a storyboard, for messages.
FIELD_NAMES = {
    "positivePrompt": "prompt",
    "negativePrompt": "negative_prompt",
    "width": "width",
    "height": "height",
    "duration": "duration",
    "fps": "fps",
    "seed": "seed",
    "inputs": "first_frame",
}

Size = tuple[int, int]


@dataclass(frozen=True)
class FrameLimits:
    """What a model takes as a frame image. MiniMax's published rules (read for its older
    models, assumed for the others): a PNG, JPEG or WebP of at most 20 MB, 300 px or more a
    side."""

    formats: tuple[str, ...] = ("png", "jpeg", "webp")
    max_bytes: int = 20 * 1024 * 1024
    min_side: int = 300

    def problem(self, kind: str, width: int, height: int, size: int) -> str | None:
        if kind not in self.formats:
            return f"is a {kind} image; the model takes {', '.join(self.formats)}"
        if size > self.max_bytes:
            return f"is {size / 1e6:.1f} MB, over the {self.max_bytes / 1e6:.0f} MB the model takes"
        if min(width, height) < self.min_side:
            return f"is {width}x{height} px: the model needs {self.min_side} px or more a side"
        return None


@dataclass(frozen=True)
class SizeRule:
    """Sizes an image model takes by rule: each side a multiple of `multiple` in [min, max]."""

    multiple: int
    smallest: int
    largest: int

    def allows(self, width: int, height: int) -> bool:
        return all(
            side % self.multiple == 0 and self.smallest <= side <= self.largest
            for side in (width, height)
        )

    def describe(self) -> str:
        return f"each side a multiple of {self.multiple} from {self.smallest} to {self.largest}"


@dataclass(frozen=True)
class ModelInfo:
    air: str
    name: str
    task: str  # VIDEO or IMAGE
    provider: str
    fields: frozenset[str]  # request fields beyond the ones every task takes
    # (width, height) -> {duration seconds: USD, None where none is published}; an image
    # model listing its sizes has each at {0: its price}, one with a size rule none
    prices: dict[Size, dict[int, float | None]]
    fps: tuple[int, ...] = ()
    text_to_video: bool = True
    frame_positions: tuple[str, ...] = ()  # "first", "last"
    size_or_frames: bool = False  # frame images or width/height, never both
    needs_prompt: bool = False
    prompt_range: tuple[int, int] = (PROMPT_MINIMUM, PROMPT_LIMIT)
    audio: str = "none"  # none, optional, always
    audio_setting: tuple[str, ...] = ()
    rewrite_setting: tuple[str, ...] = ()  # the provider setting that rewrites prompts
    resolution_with_frames: bool = False  # given frame images, it takes `resolution`
    audio_prices: dict[Size, dict[int, float | None]] | None = None
    size_rule: SizeRule | None = None
    image_price: float | None = None  # USD per still
    frames: FrameLimits = FrameLimits()

    @property
    def is_image(self) -> bool:
        return self.task == IMAGE

    @property
    def accepts_seed(self) -> bool:
        return "seed" in self.fields

    @property
    def accepts_negative_prompt(self) -> bool:
        return "negativePrompt" in self.fields

    @property
    def takes_fps(self) -> bool:
        return "fps" in self.fields

    @property
    def image_to_video(self) -> bool:
        return bool(self.frame_positions)

    def takes_size(self, width: int, height: int) -> bool:
        if self.size_rule is not None:
            return self.size_rule.allows(width, height)
        return (width, height) in self.prices

    def renders(self, width: int, height: int, duration: int) -> bool:
        if self.is_image:
            return self.takes_size(width, height)
        return duration in self.prices.get((width, height), {})

    def price(self, width: int, height: int, duration: int, audio: bool = False) -> float | None:
        if self.is_image:
            return self.image_price if self.takes_size(width, height) else None
        table = self.audio_prices if audio and self.audio_prices is not None else self.prices
        return table.get((width, height), {}).get(duration)

    def allowed_sizes(self) -> str:
        if self.size_rule is not None:
            return self.size_rule.describe()
        parts = []
        for (width, height), durations in self.prices.items():
            if self.is_image:
                parts.append(f"{width}x{height}")
                continue
            parts.append(f"{width}x{height} with {_seconds(sorted(durations))} s")
        return ", ".join(parts)

    def takes(self) -> str:
        """The storyboard fields this model takes, for a message about one it does not."""
        names = [FIELD_NAMES[f] for f in sorted(self.fields) if f in FIELD_NAMES]
        if self.frame_positions:
            names = [n for n in names if n != "first_frame"]
            names += [f"{position}_frame" for position in self.frame_positions]
        if self.audio == "optional":
            names.append("audio")
        if self.rewrite_setting:
            names.append("prompt_optimizer")
        return ", ".join(dict.fromkeys(names))


def _seconds(durations: list[int]) -> str:
    """`6 or 10`, or `3 to 15` for a run of whole seconds."""
    if len(durations) > 3 and durations == list(range(durations[0], durations[-1] + 1)):
        return f"{durations[0]} to {durations[-1]}"
    return " or ".join(str(d) for d in durations)


TOOL_KINDS = ("speech", "music", "upscale", "lipsync")


@dataclass(frozen=True)
class ToolInfo:
    """A model that makes a voice, a piece of music, an upscaled clip or a lip-synced one:
    what it takes, and what it costs per character, second or task."""

    air: str
    name: str
    task: str
    kind: str  # one of TOOL_KINDS
    output: str  # "audio" or "video"
    provider: str
    fields: frozenset[str]
    speech: tuple[str, ...]  # what a voice sets inside `speech`
    settings: tuple[str, ...]  # what a render sets inside `settings`
    price: float  # USD per `per` ("character", "second", "task")
    per: str
    upper_bound: bool = False  # no price is published: `price` is the most it costs
    inferred: str = ""
    text_range: tuple[int, int] = (1, 10_000)
    speech_rate: float | None = None  # characters a second at speed 1
    resolutions: dict[str, int] | None = None  # sizes a film takes it at: name -> short side

    def cost(self, characters: int = 0, seconds: float = 0.0) -> float:
        """What one render costs: by the text's length, the input's length, or per task."""
        amount = {"character": characters, "second": seconds, "task": 1}[self.per]
        return round(self.price * amount, 4)


@dataclass(frozen=True)
class Catalogue:
    read: str
    sources: tuple[str, ...]
    models: dict[str, ModelInfo]
    default_video: str
    default_image: str
    tools: dict[str, ToolInfo]
    default_tools: dict[str, str]  # kind -> the model used when a storyboard names none


def _size(text: str) -> Size:
    width, height = str(text).lower().split("x")
    return int(width), int(height)


def _price_table(
    entry: dict[str, Any], durations: list[int]
) -> dict[Size, dict[int, float | None]]:
    """Per-clip prices by size and duration; a size priced by the second is multiplied out."""
    table: dict[Size, dict[int, float | None]] = {}
    for size, value in entry.items():
        if isinstance(value, dict):
            table[_size(size)] = {
                int(d): (None if p is None else float(p)) for d, p in value.items()
            }
        else:
            table[_size(size)] = {
                d: (None if value is None else round(float(value) * d, 4)) for d in durations
            }
    return table


def _video(air: str, entry: dict[str, Any]) -> ModelInfo:
    durations = [int(d) for d in entry.get("durations", [])]
    audio = entry.get("audio") or "none"
    audio_prices = None
    setting: tuple[str, ...] = ()
    if isinstance(audio, dict):
        audio_prices = _price_table(audio["sizes"], durations)
        setting = tuple(audio["setting"])
        audio = "optional"
    return ModelInfo(
        air=air,
        name=entry["name"],
        task=VIDEO,
        provider=entry["provider"],
        fields=frozenset(entry["fields"]),
        prices=_price_table(entry["sizes"], durations),
        fps=tuple(entry.get("fps", ())),
        text_to_video=entry.get("text_to_video", True),
        frame_positions=tuple(entry.get("frames", ())),
        size_or_frames=entry.get("size_or_frames", False),
        needs_prompt=entry.get("needs_prompt", False),
        prompt_range=tuple(entry.get("prompt", (PROMPT_MINIMUM, PROMPT_LIMIT))),
        audio=audio,
        audio_setting=setting,
        audio_prices=audio_prices,
        rewrite_setting=tuple(entry.get("rewrite", ())),
        resolution_with_frames=entry.get("resolution_with_frames", False),
    )


def _image(air: str, entry: dict[str, Any]) -> ModelInfo:
    sizes = entry["sizes"]
    rule = None
    prices: dict[Size, dict[int, float | None]] = {}
    price = entry.get("price")
    if isinstance(sizes, dict):
        rule = SizeRule(sizes["multiple"], sizes["min"], sizes["max"])
    else:
        prices = {_size(size): {0: price} for size in sizes}
    return ModelInfo(
        air=air,
        name=entry["name"],
        task=IMAGE,
        provider=entry["provider"],
        fields=frozenset(entry["fields"]),
        prices=prices,
        needs_prompt=True,
        prompt_range=tuple(entry.get("prompt", (PROMPT_MINIMUM, PROMPT_LIMIT))),
        size_rule=rule,
        image_price=None if price is None else float(price),
    )


def _tool(air: str, entry: dict[str, Any]) -> ToolInfo:
    return ToolInfo(
        air=air,
        name=entry["name"],
        task=entry["task"],
        kind=entry["kind"],
        output=entry["output"],
        provider=entry["provider"],
        fields=frozenset(entry["fields"]),
        speech=tuple(entry.get("speech", ())),
        settings=tuple(entry.get("settings", ())),
        price=float(entry["price"]),
        per=entry["per"],
        upper_bound=bool(entry.get("upper_bound", False)),
        inferred=" ".join(str(entry.get("inferred", "")).split()),
        text_range=tuple(entry.get("text", (1, 10_000))),
        speech_rate=entry.get("speech_rate"),
        resolutions=entry.get("resolutions"),
    )


@functools.cache
def catalogue() -> Catalogue:
    text = resources.files("pipeline").joinpath("catalogue.yaml").read_text(encoding="utf-8")
    data = yaml.load(text, Loader=SAFE_YAML_LOADER)
    found = {air: _video(air, entry) for air, entry in data["video"].items()}
    found |= {air: _image(air, entry) for air, entry in data["image"].items()}
    return Catalogue(
        read=str(data["read"]),
        sources=tuple(data["sources"]),
        models=found,
        default_video=data["default_video"],
        default_image=data["default_image"],
        tools={air: _tool(air, entry) for air, entry in data["tools"].items()},
        default_tools={kind: data[f"default_{kind}"] for kind in TOOL_KINDS},
    )


def lookup(air: str) -> ModelInfo | None:
    return catalogue().models.get(air)


def default_model(still: bool = False) -> str:
    return catalogue().default_image if still else catalogue().default_video


def tool(air: str) -> ToolInfo | None:
    return catalogue().tools.get(air)


def default_tool(kind: str) -> str:
    return catalogue().default_tools[kind]
