"""What the imitation server accepts for each model, written from Runware's published schemas.

Field lists are transcribed from runware-python's `runware/types/task_map.py` (schemas
v20260623192341: each model's `...Params` TypedDict; a `Literal` there is the only values
taken); sizes, frame positions, sound and prices are from shared/runware-protocol.md (the
model pages). Never from storyboard's own catalogue: a wrong field or size in the client's
catalogue must be refused here, as Runware would refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every inference task lists these (task_map.py: every Params class ends with them).
PLATFORM_FIELDS = frozenset(
    {
        "taskType", "taskUUID", "webhookURL", "includeCost", "numberResults", "uploadEndpoint",
        "ttl", "outputType", "outputFormat", "outputQuality", "deliveryMethod", "safety", "model",
    }
)  # fmt: skip

# The providers whose names a providerSettings key may be (the provider pages of the docs);
# any other name is unknownProviderSettingsProvider, another model's is a mismatch.
PROVIDERS = frozenset(
    {
        "minimax", "klingai", "google", "bytedance", "alibaba", "bfl", "pixverse", "vidu",
        "lightricks", "runway", "openai", "ideogram", "sync", "elevenlabs",
    }
)  # fmt: skip

HD, FHD = (1280, 720), (1920, 1080)
HAILUO_SIZES: dict[tuple[int, int], tuple[float, ...]] = {(1366, 768): (6, 10), (1920, 1080): (6,)}
MINIMAX_PROMPT = (2, 2000)  # the MiniMax family's prompt length (the protocol notes)
MINIMAX_SETTINGS = frozenset({"promptOptimizer"})
# Kling 3.0's pages: providerSettings only with reference images and videos; sound is the
# provider's own (native audio), billed at the price with audio.
KLING_NEEDS = ("referenceImages", "referenceVideos")


@dataclass(frozen=True)
class ServedModel:
    task: str  # "videoInference" or "imageInference"
    fields: frozenset[str]  # beyond PLATFORM_FIELDS
    required: frozenset[str] = frozenset()
    # (width, height) -> durations taken at that size; an image model: durations ()
    sizes: dict[tuple[int, int], tuple[float, ...]] | None = None
    size_rule: tuple[int, int, int] | None = None  # multiple, min side, max side
    fps: tuple[int, ...] = ()
    prompt_range: tuple[int, int] = (1, 3000)
    frames: tuple[str, ...] = ()  # frame positions inputs.frameImages may hold
    # The names `inputs` may hold (closed, as every published object is).
    inputs: frozenset[str] = frozenset({"frameImages"})
    size_or_frames: bool = False  # "Provide exactly one of" frame images or width/height
    text_to_video: bool = True
    # "no"; "optional" (asked by `sound_setting` in providerSettings); "yes": every clip has
    # sound, billed with it (a model whose sound no setting the API allows can turn off).
    sound: str = "no"
    sound_setting: str = ""
    # The names providerSettings.<provider> may hold (the provider pages); and the inputs
    # without which providerSettings may not be given at all (Kling 3.0's pages: "When
    # providerSettings is provided, inputs.referenceImages is required", and likewise
    # inputs.referenceVideos).
    settings: frozenset[str] = frozenset()
    settings_need: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()  # the `resolution` Literal of its schema
    price_per_second: float = 0.0
    price_per_second_sound: float = 0.0
    price_table: dict[tuple[int, int], dict[float, float]] | None = None  # per clip
    price_per_image: float = 0.0

    def takes_size(self, width: int, height: int) -> bool:
        if self.size_rule is not None:
            multiple, low, high = self.size_rule
            return all(s % multiple == 0 and low <= s <= high for s in (width, height))
        return (width, height) in (self.sizes or {})

    def price(self, width: int, height: int, duration: float, sound: bool) -> float:
        if self.task == "imageInference":
            return self.price_per_image
        if self.price_table is not None:
            return self.price_table[(width, height)][duration]
        rate = self.price_per_second_sound if sound else self.price_per_second
        return round(rate * duration, 4)


def _video_fields(*extra: str) -> frozenset[str]:
    return frozenset(
        {"inputs", "positivePrompt", "width", "height", "duration", "providerSettings", *extra}
    )


MODELS: dict[str, ServedModel] = {
    # MinimaxHailuo23Params: fps Literal[25]; duration float; no seed, no negativePrompt.
    "minimax:4@1": ServedModel(
        task="videoInference",
        fields=_video_fields("fps"),
        sizes=HAILUO_SIZES,
        fps=(25,),
        prompt_range=MINIMAX_PROMPT,
        frames=("first",),
        settings=MINIMAX_SETTINGS,
        price_table={(1366, 768): {6: 0.28, 10: 0.56}, (1920, 1080): {6: 0.49}},
    ),
    # MinimaxHailuo23FastParams: as 2.3; image-to-video only (the model page). No 10 s price
    # is published: this imitation bills it at twice the 6 s one.
    "minimax:4@2": ServedModel(
        task="videoInference",
        fields=_video_fields("fps"),
        sizes=HAILUO_SIZES,
        fps=(25,),
        prompt_range=MINIMAX_PROMPT,
        frames=("first",),
        text_to_video=False,
        settings=MINIMAX_SETTINGS,
        price_table={(1366, 768): {6: 0.24, 10: 0.48}, (1920, 1080): {6: 0.41}},
    ),
    # MinimaxHailuo02Params: positivePrompt required. No price published: billed as 2.3.
    "minimax:3@1": ServedModel(
        task="videoInference",
        fields=_video_fields("fps"),
        required=frozenset({"positivePrompt"}),
        sizes=HAILUO_SIZES,
        fps=(25,),
        prompt_range=MINIMAX_PROMPT,
        frames=("first",),
        settings=MINIMAX_SETTINGS,
        price_table={(1366, 768): {6: 0.28, 10: 0.56}, (1920, 1080): {6: 0.49}},
    ),
    # KlingaiVideo30ProParams: negativePrompt, duration int; no seed, no fps.
    "klingai:kling-video@3-pro": ServedModel(
        task="videoInference",
        fields=_video_fields("negativePrompt"),
        sizes={size: tuple(range(3, 16)) for size in (FHD, (1440, 1440), (1080, 1920))},
        frames=("first", "last"),
        size_or_frames=True,
        sound="yes",
        settings_need=KLING_NEEDS,
        inputs=frozenset({"frameImages", *KLING_NEEDS}),
        price_per_second=0.112,
        price_per_second_sound=0.168,
    ),
    "klingai:kling-video@3-standard": ServedModel(
        task="videoInference",
        fields=_video_fields("negativePrompt"),
        sizes={size: tuple(range(3, 16)) for size in (HD, (960, 960), (720, 1280))},
        frames=("first", "last"),
        size_or_frames=True,
        sound="yes",
        settings_need=KLING_NEEDS,
        inputs=frozenset({"frameImages", *KLING_NEEDS}),
        price_per_second=0.084,
        price_per_second_sound=0.126,
    ),
    # GoogleVeo31FastParams: positivePrompt required, resolution, duration Literal[4, 6, 7, 8],
    # seed; no negativePrompt, no fps.
    "google:3@3": ServedModel(
        task="videoInference",
        fields=_video_fields("seed", "resolution"),
        required=frozenset({"positivePrompt"}),
        resolutions=("720p", "1080p", "4K"),
        sizes={size: (4, 6, 7, 8) for size in (HD, (720, 1280), FHD, (1080, 1920))},
        frames=("first", "last"),
        size_or_frames=True,
        sound="optional",
        sound_setting="generateAudio",
        # The Google provider page: enhancePrompt (on by default) and generateAudio.
        settings=frozenset({"enhancePrompt", "generateAudio"}),
        price_per_second=0.10,
        price_per_second_sound=0.15,
    ),
    # BytedanceSeedance10ProParams: positivePrompt required, resolution 480p/1080p, seed.
    "bytedance:2@1": ServedModel(
        task="videoInference",
        fields=_video_fields("seed", "resolution"),
        required=frozenset({"positivePrompt"}),
        resolutions=("480p", "1080p"),
        sizes={
            size: (5, 6, 7, 8, 9, 10)
            for size in (
                (1920, 1088),
                (1088, 1920),
                (1440, 1440),
                (864, 480),
                (480, 864),
                (640, 640),
            )
        },
        frames=("first", "last"),
        price_per_second=0.0968,
    ),
    # AlibabaWan26Params: positivePrompt required, negativePrompt, resolution, duration
    # Literal[5, 10, 15], seed. Sound is providerSettings.alibaba.audio (the protocol notes'
    # second audit); prompt rewriting promptExtend (the Alibaba provider page). No price
    # without sound is published: billed the same either way.
    "alibaba:wan@2.6": ServedModel(
        task="videoInference",
        fields=_video_fields("negativePrompt", "seed", "resolution"),
        required=frozenset({"positivePrompt"}),
        resolutions=("720p", "1080p"),
        sizes={
            size: (5, 10, 15)
            for size in (HD, (720, 1280), (960, 960), FHD, (1080, 1920), (1440, 1440))
        },
        frames=("first",),
        sound="optional",
        sound_setting="audio",
        settings=frozenset({"promptExtend", "audio"}),
        inputs=frozenset({"frameImages", "audio"}),  # audio: not with the sound setting
        # $0.10 a second at 720p, $0.15 at 1080p
        price_table={
            size: {d: round((0.10 if min(size) < 1080 else 0.15) * d, 4) for d in (5, 10, 15)}
            for size in (HD, (720, 1280), (960, 960), FHD, (1080, 1920), (1440, 1440))
        },
    ),
    # BflFlux11ProParams: positivePrompt, width, height required; seed; no inputs.
    "bfl:2@1": ServedModel(
        task="imageInference",
        fields=frozenset({"positivePrompt", "width", "height", "seed", "providerSettings"}),
        required=frozenset({"positivePrompt", "width", "height"}),
        size_rule=(32, 256, 1440),
        price_per_image=0.04,
    ),
    # BytedanceSeedream40Params: positivePrompt required; width, height, seed, inputs.
    "bytedance:5@0": ServedModel(
        task="imageInference",
        fields=frozenset(
            {"inputs", "positivePrompt", "width", "height", "seed", "providerSettings"}
        ),
        required=frozenset({"positivePrompt"}),
        sizes={
            s: () for s in ((2048, 2048), (2560, 1440), (1440, 2560), (2304, 1728), (1728, 2304))
        },
        price_per_image=0.03,
    ),
}
