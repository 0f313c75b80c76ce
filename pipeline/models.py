"""The model catalogue: what each video model accepts and what a clip costs."""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_LIMIT = 2000


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
