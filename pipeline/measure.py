"""What a picture and a sound measure, frame by frame, while they are decoded anyway: the
figures the quality check (qc.py) reads. Measuring judges nothing: qc.py holds the rules.

A video frame is measured on its luma plane, sampled on a grid about 80 points wide (a
1080p frame of a real render takes about 20 ms to decode; sampling it, a tenth of one), each
sample's luma turned into relative luminance (WCAG 2's definition: sRGB decoded to linear
light). A sound is measured in the blocks its decoder gives (about 20 ms): each block's
level in dBFS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLES_ACROSS = 80  # sample points across a frame's width (a point every 24 px at 1080p)
BLACK_LUMA = 0.10  # a sample is black at or under 10% of the luma range (ffmpeg blackdetect)
CHANGE_FLOOR = 0.01  # a sample's luminance changed when it moved this much or more
QUIET_DB = -120.0  # the level said of a block of digital silence
SILENCE = -70.0  # LUFS: EBU R 128's absolute gate; what ebur128 says of silence
FLOOR = -99.0  # what a measure of -inf is kept as (a record is JSON: it has no -inf)


@dataclass(frozen=True)
class Watch:
    """What a check measures of a file: its picture, its sound."""

    picture: bool = False
    sound: bool = False


@dataclass(frozen=True)
class Picture:
    """A video's frames, measured: one figure per frame for each."""

    fps: float
    times: tuple[float, ...]  # when each frame starts, in seconds
    black: tuple[float, ...]  # the share of its samples that are black
    change: tuple[float, ...]  # mean absolute luma difference from the frame before (0..1)
    luminance: tuple[float, ...]  # mean relative luminance (0..1)
    area: tuple[float, ...]  # the share of samples whose luminance changed since the frame before


@dataclass(frozen=True)
class Heard:
    """A sound's decoded blocks, measured: where each starts, how long it is, its level."""

    times: tuple[float, ...]
    lengths: tuple[float, ...]
    levels: tuple[float, ...]  # RMS, dBFS
    found: bool = True  # False: the file has no sound at all


@dataclass(frozen=True)
class Loudness:
    """A sound's loudness as EBU R 128 measures it (ffmpeg's `ebur128`): integrated (LUFS),
    true peak (dBTP), loudness range (LU), and the gate of the integrated measure (LUFS)."""

    integrated: float
    true_peak: float
    range: float
    threshold: float

    def figures(self, target: float) -> dict[str, float]:
        """As `build --json` and `status --json` say it: the target, and what it measures."""
        return {
            "target": target,
            "integrated": self.integrated,
            "true_peak": self.true_peak,
            "range": self.range,
        }

    @property
    def silent(self) -> bool:
        """Nothing above the absolute gate (-70 LUFS): there is no loudness to bring to a
        target."""
        return self.integrated <= SILENCE


@dataclass(frozen=True)
class Signals:
    """Everything a check measured of one file (None: not measured)."""

    picture: Picture | None = None
    sound: Heard | None = None


class PictureWatcher:
    """Measures each frame it is shown (`see`), as a clip is decoded for another reason."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.black: list[float] = []
        self.change: list[float] = []
        self.luminance: list[float] = []
        self.area: list[float] = []
        self._last_luma: Any = None
        self._last_light: Any = None

    def see(self, frame: Any) -> None:
        import numpy as np

        samples, full_range = _luma_samples(frame)
        luma = samples.astype(np.int16)  # one copy, out of the decoder's frame
        low, span = (0, 255) if full_range else (16, 219)
        light = _light_table(full_range)[samples]
        self.times.append(float(frame.time or 0.0))
        self.black.append(float(np.count_nonzero(luma <= low + BLACK_LUMA * span)) / luma.size)
        self.luminance.append(float(light.mean()))
        if self._last_luma is None or self._last_luma.shape != luma.shape:
            self.change.append(1.0)
            self.area.append(0.0)
        else:
            moved = np.abs(luma - self._last_luma)
            self.change.append(float(moved.mean()) / 255.0)
            changed = np.abs(light - self._last_light) >= CHANGE_FLOOR
            self.area.append(float(np.count_nonzero(changed)) / luma.size)
        self._last_luma = luma
        self._last_light = light

    def picture(self, fps: float) -> Picture:
        return Picture(
            fps,
            tuple(self.times),
            tuple(self.black),
            tuple(self.change),
            tuple(self.luminance),
            tuple(self.area),
        )


def _luma_samples(frame: Any) -> tuple[Any, bool]:
    """A frame's luma on a coarse grid, as 8-bit values, and whether it is full range."""
    import numpy as np

    name = frame.format.name
    step = max(1, frame.width // SAMPLES_ACROSS)
    if name in EIGHT_BIT_YUV:
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        return rows[: frame.height : step, : frame.width : step], name.startswith("yuvj")
    # Rare in delivered video (RGB, 10-bit): converted to 8-bit grey first.
    grey = frame.reformat(format="gray")
    plane = grey.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
    return rows[: grey.height : step, : grey.width : step], True


EIGHT_BIT_YUV = frozenset(
    ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21")
)

_TABLES: dict[bool, Any] = {}


def _light_table(full_range: bool) -> Any:
    """Relative luminance of each 8-bit luma value: the value as sRGB, decoded to linear
    light (as WCAG 2 defines relative luminance; a grey's luma is its R, G and B)."""
    table = _TABLES.get(full_range)
    if table is None:
        import numpy as np

        low, span = (0, 255) if full_range else (16, 219)
        values = np.clip((np.arange(256, dtype=np.float64) - low) / span, 0.0, 1.0)
        linear = np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)
        table = _TABLES[full_range] = linear.astype(np.float32)
    return table


def ready() -> None:
    """Load what measuring takes (numpy, the luminance tables) ahead of the first frame."""
    _light_table(full_range=False)
    _light_table(full_range=True)


class SoundListener:
    """Measures each block of sound it is shown (`hear`)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.lengths: list[float] = []
        self.levels: list[float] = []

    def hear(self, frame: Any) -> None:
        import numpy as np

        rate = frame.sample_rate or 1
        samples = frame.to_ndarray()
        scale = FULL_SCALE.get(samples.dtype.kind + str(samples.dtype.itemsize), 1.0)
        values = samples.astype(np.float64)
        if samples.dtype.kind == "u":
            values -= scale
        power = float(np.mean(np.square(values / scale))) if values.size else 0.0
        self.times.append(float(frame.time or 0.0))
        self.lengths.append(frame.samples / rate)
        self.levels.append(10 * math.log10(power) if power > 0 else QUIET_DB)

    def sound(self) -> Heard:
        return Heard(tuple(self.times), tuple(self.lengths), tuple(self.levels))


# What full scale is for each sample type (kind + bytes): floats are -1..1 already.
FULL_SCALE = {"i2": 32768.0, "i4": 2147483648.0, "u1": 128.0, "f4": 1.0, "f8": 1.0}


def listen(path: Path) -> Heard:
    """The sound of a file, measured (decoded for this alone: sound decodes fast). A file
    without sound is measured as none found."""
    import av

    listener = SoundListener()
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return Heard((), (), (), found=False)
        for frame in container.decode(container.streams.audio[0]):
            listener.hear(frame)
    return listener.sound()
