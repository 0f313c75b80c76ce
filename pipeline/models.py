"""The model catalogue: what each video model accepts and what a clip costs."""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_LIMIT = 2000
PROMPT_MINIMUM = 2


@dataclass(frozen=True)
class FrameLimits:
    """What a model takes as a first frame. MiniMax's published rules (read for its older
    models, assumed for 2.3): a PNG, JPEG or WebP of at most 20 MB, 300 px or more a side."""

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
class ModelInfo:
    air: str
    name: str
    # (width, height) -> {duration seconds: price in USD, or None where none is published}
    prices: dict[tuple[int, int], dict[int, float | None]]
    fps: tuple[int, ...]
    text_to_video: bool
    image_to_video: bool
    # request fields beyond the ones every videoInference takes
    accepts_seed: bool = False
    accepts_negative_prompt: bool = False
    provider: str = ""
    frames: FrameLimits = FrameLimits()
    prompt_range: tuple[int, int] = (PROMPT_MINIMUM, PROMPT_LIMIT)

    def renders(self, width: int, height: int, duration: int) -> bool:
        return duration in self.prices.get((width, height), {})

    def price(self, width: int, height: int, duration: int) -> float | None:
        return self.prices.get((width, height), {}).get(duration)

    def allowed_sizes(self) -> str:
        parts = []
        for (width, height), durations in self.prices.items():
            seconds = " or ".join(str(d) for d in sorted(durations))
            parts.append(f"{width}x{height} with {seconds} s")
        return ", ".join(parts)


CATALOGUE: dict[str, ModelInfo] = {
    "minimax:4@1": ModelInfo(
        air="minimax:4@1",
        name="MiniMax Hailuo 2.3",
        prices={(1366, 768): {6: 0.28, 10: 0.56}, (1920, 1080): {6: 0.49}},
        fps=(25,),
        text_to_video=True,
        image_to_video=True,
        provider="minimax",
    ),
    # List prices inferred from the discounted ones seen ($0.19 / $0.33 at 20% off). The Fast
    # model's page allows 10 s at 768p and publishes no price for it: a budget needs `price:`.
    "minimax:4@2": ModelInfo(
        air="minimax:4@2",
        name="MiniMax Hailuo 2.3 Fast",
        prices={(1366, 768): {6: 0.24, 10: None}, (1920, 1080): {6: 0.41}},
        fps=(25,),
        text_to_video=False,
        image_to_video=True,
        provider="minimax",
    ),
}

DEFAULT_MODEL = "minimax:4@1"


def lookup(air: str) -> ModelInfo | None:
    return CATALOGUE.get(air)
