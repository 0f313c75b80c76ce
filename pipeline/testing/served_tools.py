"""What the imitation server takes for speech, music, upscaling and lip-sync, and how it
makes their outputs: written from the published schemas and model pages, never from the
client's catalogue (a wrong field or price there must be refused or billed here as the
provider would).

Sources: runware-python's task_map.py (MinimaxSpeech28Params, MinimaxMusic26Params,
BytedanceVideoUpscalerParams, SyncLipsync2Params: the request fields), the model pages
(speech's `speech` object, lip-sync's `inputs.video` and `inputs.audios` and
`providerSettings.sync.syncMode`, a lip-sync's $0.044 a second of audio, music's $0.15 the
example response reports), and Runware's media-storage page (`mediaStorage` uploads that
return a `mediaUUID`). What no page says (the speech object's field names, the upscaler's
target field and prices, speech's price) is this imitation's own reading, as the client's
is: the two are written apart.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.testing.media import FPS, ffmpeg_binary

PLATFORM = frozenset(
    {
        "taskType", "taskUUID", "webhookURL", "includeCost", "numberResults", "uploadEndpoint",
        "ttl", "outputType", "outputFormat", "outputQuality", "deliveryMethod", "model",
    }
)  # fmt: skip
CHARACTERS_A_SECOND = 14.0  # how fast this imitation's voices speak at speed 1
SONG_SECONDS = 40.0  # a piece of music: the model takes no length
UPSCALE_SHORT_SIDE = {"1080p": 1080, "2k": 1440, "4k": 2160}
SYNC_MODES = ("bounce", "loop", "cut_off", "silence", "remap")


@dataclass(frozen=True)
class ServedTool:
    task: str
    kind: str  # speech, music, upscale, lipsync
    fields: frozenset[str]  # beyond PLATFORM
    required: frozenset[str]
    formats: tuple[str, ...]  # outputFormat's Literal
    rate: float | dict[str, float]  # USD a character, a task, or a second (by target)


TOOLS: dict[str, ServedTool] = {
    "minimax:speech@2.8": ServedTool(
        "audioInference",
        "speech",
        frozenset({"speech", "settings", "audioSettings"}),
        frozenset({"speech"}),
        ("MP3", "WAV", "FLAC", "OGG"),
        0.0001,
    ),
    "minimax:music@2.6": ServedTool(
        "audioInference",
        "music",
        frozenset({"positivePrompt", "negativePrompt", "seed", "settings", "audioSettings"}),
        frozenset(),
        ("MP3", "WAV", "FLAC", "OGG"),
        0.15,
    ),
    "bytedance:50@1": ServedTool(
        "upscale",
        "upscale",
        frozenset({"inputs"}),
        frozenset({"inputs"}),
        ("MP4", "WEBM", "MOV"),
        {"1080p": 0.0072, "2k": 0.0144, "4k": 0.0288},
    ),
    "sync:lipsync-2@1": ServedTool(
        "videoInference",
        "lipsync",
        frozenset({"inputs", "providerSettings", "safety"}),
        frozenset({"inputs"}),
        ("MP4", "WEBM", "MOV"),
        0.044,
    ),
}


class Refused(Exception):
    """A request the API refuses: its code, message and parameter."""

    def __init__(self, code: str, message: str, parameter: str) -> None:
        super().__init__(message)
        self.code, self.message, self.parameter = code, message, parameter


@dataclass(frozen=True)
class Job:
    """What a tool task makes: its kind, the seconds and size of its output, and its
    inputs on disk (a clip, a voice)."""

    kind: str
    seconds: float
    size: tuple[int, int] = (0, 0)
    video: Path | None = None
    audio: Path | None = None
    tone: int = 0  # the words', so other words sound otherwise

    @property
    def audio_only(self) -> bool:
        return self.kind in ("speech", "music")


def check(request: dict[str, Any], tool: ServedTool, media: dict[str, Path]) -> tuple[float, Job]:
    """The published rules of one tool task: its price and what it makes. `media`: the
    uploaded files by mediaUUID."""
    extra = sorted(set(request) - PLATFORM - tool.fields)
    if extra:
        raise Refused("invalidParameter", f"unknown parameter {extra[0]!r}", extra[0])
    for name in sorted(tool.required - set(request)):
        raise Refused("missingParameter", f"{name!r} is required", name)
    if request.get("outputFormat", tool.formats[0]) not in tool.formats:
        raise Refused("invalidOutputFormat", "outputFormat is not taken", "outputFormat")
    return {
        "speech": _speech,
        "music": _music,
        "upscale": _upscale,
        "lipsync": _lipsync,
    }[tool.kind](request, tool, media)


def _speech(request: dict[str, Any], tool: ServedTool, media: dict[str, Path]) -> tuple[float, Job]:
    speech = request["speech"]
    if not isinstance(speech, dict):
        raise Refused("invalidParameter", "speech must be an object", "speech")
    text, voice = speech.get("text"), speech.get("voice")
    if not isinstance(text, str) or not 1 <= len(text) <= 10_000:
        raise Refused("invalidParameter", "speech.text: 1 to 10000 characters", "speech.text")
    if not isinstance(voice, str) or not voice:
        raise Refused("missingParameter", "speech.voice is required", "speech.voice")
    settings = request.get("settings") or {}
    speed = settings.get("speed", 1.0)
    if not isinstance(speed, int | float) or not 0.5 <= speed <= 2:
        raise Refused("invalidParameter", "settings.speed: 0.5 to 2", "settings.speed")
    seconds = round(len(text) / (CHARACTERS_A_SECOND * speed), 3)
    assert isinstance(tool.rate, float)
    tone = int(hashlib.sha256(f"{voice}:{text}".encode()).hexdigest()[:6], 16)
    return round(tool.rate * len(text), 6), Job("speech", max(seconds, 0.3), tone=tone)


def _music(request: dict[str, Any], tool: ServedTool, media: dict[str, Path]) -> tuple[float, Job]:
    prompt = request.get("positivePrompt")
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= 2000:
        raise Refused("invalidParameter", "positivePrompt: 1 to 2000 characters", "positivePrompt")
    assert isinstance(tool.rate, float)
    return tool.rate, Job("music", SONG_SECONDS, tone=len(prompt))


def _upscale(
    request: dict[str, Any], tool: ServedTool, media: dict[str, Path]
) -> tuple[float, Job]:
    inputs = _inputs(request)
    video = _media(inputs.get("video"), media, "inputs.video")
    target = inputs.get("targetResolution", "1080p")
    if target not in UPSCALE_SHORT_SIDE:
        raise Refused("invalidParameter", "targetResolution: 1080p, 2k or 4k", "inputs")
    seconds, width, height = probe(video)
    short = UPSCALE_SHORT_SIDE[target]
    size = (
        (2 * round(width * short / height / 2), short)
        if width >= height
        else (short, 2 * round(height * short / width / 2))
    )
    assert isinstance(tool.rate, dict)
    return round(tool.rate[target] * seconds, 6), Job("upscale", seconds, size, video)


def _lipsync(
    request: dict[str, Any], tool: ServedTool, media: dict[str, Path]
) -> tuple[float, Job]:
    inputs = _inputs(request)
    video = _media(inputs.get("video"), media, "inputs.video")
    audios = inputs.get("audios")
    if not isinstance(audios, list) or len(audios) != 1 or not isinstance(audios[0], dict):
        raise Refused("invalidParameter", "inputs.audios: one audio", "inputs.audios")
    audio = _media(audios[0].get("source"), media, "inputs.audios")
    settings = (request.get("providerSettings") or {}).get("sync", {})
    if set(request.get("providerSettings") or {}) - {"sync"}:
        raise Refused(
            "mismatchProviderSettingsProvider", "providerSettings is not sync's", "providerSettings"
        )
    if settings.get("syncMode", "bounce") not in SYNC_MODES:
        raise Refused("invalidParameter", "syncMode is not one of the modes", "syncMode")
    seconds, width, height = probe(video)
    heard = probe_audio(audio)
    assert isinstance(tool.rate, float)
    # Billed per second of audio, as far as the clip plays it.
    return round(tool.rate * min(heard, seconds), 6), Job(
        "lipsync", seconds, (width, height), video, audio
    )


def _inputs(request: dict[str, Any]) -> dict[str, Any]:
    inputs = request.get("inputs")
    if not isinstance(inputs, dict):
        raise Refused("invalidParameter", "inputs must be an object", "inputs")
    return inputs


def _media(given: Any, media: dict[str, Path], name: str) -> Path:
    if not isinstance(given, str) or given not in media:
        raise Refused("invalidMediaUUID", f"{name}: not an uploaded media UUID", name)
    return media[given]


def probe(video: Path) -> tuple[float, int, int]:
    """A clip's length and size, as ffmpeg reads them."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        seconds = float(container.duration or 0) / 1_000_000
        return round(seconds, 3), stream.codec_context.width, stream.codec_context.height


def probe_audio(sound: Path) -> float:
    import av

    with av.open(str(sound)) as container:
        return round(float(container.duration or 0) / 1_000_000, 3)


def make(job: Job, output: Path) -> Path:
    """The task's output: MP3 sound that murmurs (speech) or hums (music) for its length; an
    upscaled clip; a clip that speaks the voice (cut where the clip ends)."""
    args = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y"]
    seconds = f"{job.seconds:.3f}"
    if job.kind == "speech":
        tone = 150 + job.tone % 80
        source = f"sine=frequency={tone}:duration={seconds},tremolo=f=5:d=0.95"
        args += ["-f", "lavfi", "-i", source, "-c:a", "libmp3lame", "-b:a", "96k", "-f", "mp3"]
    elif job.kind == "music":
        source = f"sine=frequency={100 + job.tone % 60}:duration={seconds},volume=0.4"
        args += ["-f", "lavfi", "-i", source, "-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"]
    elif job.kind == "upscale":
        width, height = job.size
        args += ["-i", str(job.video), "-vf", f"scale={width}:{height},setsar=1"]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "32", "-r", str(FPS)]
        args += ["-c:a", "aac", "-movflags", "+faststart", "-f", "mp4"]
    else:
        args += ["-i", str(job.video), "-i", str(job.audio), "-map", "0:v", "-map", "1:a"]
        args += ["-af", f"apad=whole_dur={seconds}", "-t", seconds]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "32", "-r", str(FPS)]
        args += ["-c:a", "aac", "-movflags", "+faststart", "-f", "mp4"]
    subprocess.run([*args, str(output)], check=True, timeout=300)
    return output
