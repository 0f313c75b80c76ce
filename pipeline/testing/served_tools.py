"""What the imitation server takes for speech, music, upscaling and lip-sync, and how it
makes their outputs: written from shared/runware-protocol.md ("Other task types on the same
endpoint"), never from the client's catalogue: a wrong field, value or price there must be
refused or billed here as Runware would.

Runware's published schemas close their objects, so every object here is closed at every
level: a key the protocol notes do not list is `unknownParameter` (at submit, not billed).
The rules, each as the notes give it:

- speech (MiniMax Speech 2.8): `speech` holds text, voice, speed 0.5-2, volume (0, 10],
  pitch -12..12 (whole), emotion (happy, sad, angry, fearful, disgusted, surprised, calm,
  fluent, whisper), tone, language; `settings` holds languageBoost, turbo and
  textNormalization only; `audioSettings` (sampleRate, bitrate, channels) only with MP3 or OGG.
- music (MiniMax Music 2.6): positivePrompt (at most 2,000), negativePrompt, seed (echoed),
  `settings` with instrumental, lyrics (1-3,500) and lyricsOptimizer. A vocal track needs
  lyrics or lyricsOptimizer: true; lyrics with instrumental: true is refused. No duration.
- upscale (ByteDance video upscaler): `inputs.video` only; no target size is published, the
  service picks 1080p, 2K or 4K from the input. Billed at fal's per-second rates (Runware
  publishes none).
- lip-sync (Sync Lipsync 2): `inputs.video`, `inputs.audios` [{id, source}];
  `providerSettings.sync` with syncMode, temperature, activeSpeakerDetection, segments.
  Billed $0.044 a second of the whole audio.

What the notes leave open (speech's price, how long a voice speaks, how the upscaler picks
its size) is this imitation's own choice, made apart from the client's.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.testing.media import FPS, ffmpeg_binary

# The task fields every one of these models lists (task_map.py's Params, as the notes cite
# them), beyond its own; `routing` is not in the notes, so it is refused.
COMMON = frozenset(
    {
        "taskType", "taskUUID", "model", "webhookURL", "includeCost", "uploadEndpoint", "ttl",
        "outputType", "outputFormat", "deliveryMethod",
    }
)  # fmt: skip
CHARACTERS_A_SECOND = 13.0  # how fast this imitation's voices speak at speed 1
SONG_SECONDS = 40.0  # a piece of music: the model takes no length
EMOTIONS = (
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
    "calm",
    "fluent",
    "whisper",
)
SYNC_MODES = ("bounce", "loop", "cut_off", "silence", "remap")
# The upscaler's tiers by short side, and fal's price a second at 30 fps for each.
UPSCALE_TIERS = ((1080, 0.0072), (1440, 0.0144), (2160, 0.0288))
SPEECH_RATE = {False: 0.0001, True: 0.00006}  # USD a character: HD, Turbo (MiniMax's own)
MUSIC_PRICE = 0.15  # Runware's example results report it
LIPSYNC_RATE = 0.044  # USD a second of audio


@dataclass(frozen=True)
class ServedTool:
    task: str
    kind: str  # speech, music, upscale, lipsync
    fields: frozenset[str]  # beyond COMMON
    required: frozenset[str]
    formats: tuple[str, ...]  # outputFormat's values
    output_types: tuple[str, ...] = ("URL",)  # what this imitation delivers


TOOLS: dict[str, ServedTool] = {
    "minimax:speech@2.8": ServedTool(
        "audioInference",
        "speech",
        frozenset({"speech", "settings", "audioSettings", "numberResults"}),
        frozenset({"speech"}),
        ("MP3", "WAV", "FLAC", "OGG"),
    ),
    "minimax:music@2.6": ServedTool(
        "audioInference",
        "music",
        frozenset(
            {
                "positivePrompt",
                "negativePrompt",
                "seed",
                "settings",
                "audioSettings",
                "numberResults",
            }
        ),
        frozenset(),
        ("MP3", "WAV", "FLAC", "OGG"),
    ),
    # The upscaler lists no numberResults and no safety.
    "bytedance:50@1": ServedTool(
        "upscale",
        "upscale",
        frozenset({"inputs", "outputQuality"}),
        frozenset({"inputs"}),
        ("MP4", "WEBM", "MOV"),
    ),
    "sync:lipsync-2@1": ServedTool(
        "videoInference",
        "lipsync",
        frozenset({"inputs", "providerSettings", "numberResults", "outputQuality", "safety"}),
        frozenset({"inputs"}),
        ("MP4", "WEBM", "MOV"),
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
    seed: int | None = None  # the seed asked for, echoed in the result

    @property
    def audio_only(self) -> bool:
        return self.kind in ("speech", "music")


Media = dict[str, Path]


def check(request: dict[str, Any], tool: ServedTool, media: Media) -> tuple[float, Job]:
    """The published rules of one tool task: its price and what it makes. `media`: the
    uploaded files by mediaUUID."""
    _closed(request, COMMON | tool.fields, "")
    for name in sorted(tool.required - set(request)):
        raise Refused("missingParameter", f"{name!r} is required", name)
    if request.get("deliveryMethod") != "async":
        raise Refused("invalidParameter", "this imitation answers async only", "deliveryMethod")
    if request.get("outputFormat", tool.formats[0]) not in tool.formats:
        raise Refused("invalidOutputFormat", "outputFormat is not taken", "outputFormat")
    if request.get("outputType", "URL") not in tool.output_types:
        raise Refused("invalidParameter", "this imitation delivers URLs only", "outputType")
    quality = request.get("outputQuality", 95)
    if not _whole(quality) or not 20 <= quality <= 99:
        raise Refused("invalidParameter", "outputQuality: 20 to 99", "outputQuality")
    makers: dict[str, Callable[[dict[str, Any], Media], tuple[float, Job]]] = {
        "speech": _speech,
        "music": _music,
        "upscale": _upscale,
        "lipsync": _lipsync,
    }
    return makers[tool.kind](request, media)


def _closed(value: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    """`value` as an object whose keys are all `allowed`; else the refusal Runware gives."""
    if not isinstance(value, dict):
        raise Refused("invalidParameter", f"{where or 'the task'} must be an object", where)
    for name in sorted(value):
        if name not in allowed:
            at = f"{where}.{name}" if where else name
            raise Refused("unknownParameter", f"unknown parameter '{at}'", at)
    return value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any, low: int, high: int, where: str) -> str:
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise Refused("invalidParameter", f"{where}: {low} to {high} characters", where)
    return value


def _audio_settings(request: dict[str, Any]) -> None:
    given = request.get("audioSettings")
    if given is None:
        return
    settings = _closed(given, frozenset({"sampleRate", "bitrate", "channels"}), "audioSettings")
    if request.get("outputFormat", "MP3") not in ("MP3", "OGG"):
        raise Refused(
            "invalidParameter", "audioSettings apply to MP3 and OGG only", "audioSettings"
        )
    for name, value in settings.items():
        if not _whole(value) or value <= 0:
            raise Refused("invalidParameter", f"audioSettings.{name}", f"audioSettings.{name}")


def _speech(request: dict[str, Any], media: Media) -> tuple[float, Job]:
    fields = frozenset({"text", "voice", "speed", "volume", "pitch", "emotion", "tone", "language"})
    speech = _closed(request["speech"], fields, "speech")
    text = _text(speech.get("text"), 1, 10_000, "speech.text")
    voice = speech.get("voice")
    if not isinstance(voice, str) or not voice or not voice.isprintable() or len(voice) > 256:
        raise Refused("invalidParameter", "speech.voice: a voice id", "speech.voice")
    speed = speech.get("speed", 1.0)
    if not _number(speed) or not 0.5 <= speed <= 2:
        raise Refused("invalidParameter", "speech.speed: 0.5 to 2", "speech.speed")
    volume = speech.get("volume", 1.0)
    if not _number(volume) or not 0 < volume <= 10:
        raise Refused("invalidParameter", "speech.volume: over 0, at most 10", "speech.volume")
    pitch = speech.get("pitch", 0)
    if not _whole(pitch) or not -12 <= pitch <= 12:
        raise Refused("invalidParameter", "speech.pitch: a whole -12 to 12", "speech.pitch")
    if "emotion" in speech and speech["emotion"] not in EMOTIONS:
        raise Refused(
            "invalidParameter", f"speech.emotion: {', '.join(EMOTIONS)}", "speech.emotion"
        )
    for name in ("language", "tone"):
        if name in speech and not isinstance(speech[name], str | list):
            raise Refused("invalidParameter", f"speech.{name}", f"speech.{name}")
    settings = _closed(
        request.get("settings", {}),
        frozenset({"languageBoost", "turbo", "textNormalization"}),
        "settings",
    )
    for name in ("turbo", "textNormalization"):
        if name in settings and not isinstance(settings[name], bool):
            raise Refused("invalidParameter", f"settings.{name}: a boolean", f"settings.{name}")
    if "languageBoost" in settings and not isinstance(settings["languageBoost"], str):
        raise Refused("invalidParameter", "settings.languageBoost", "settings.languageBoost")
    _audio_settings(request)
    seconds = round(len(text) / (CHARACTERS_A_SECOND * speed), 3)
    tone = int(hashlib.sha256(f"{voice}:{text}".encode()).hexdigest()[:6], 16)
    price = round(SPEECH_RATE[settings.get("turbo") is True] * len(text), 6)
    return price, Job("speech", max(seconds, 0.3), tone=tone)


def _music(request: dict[str, Any], media: Media) -> tuple[float, Job]:
    prompt = request.get("positivePrompt")
    if prompt is not None:
        _text(prompt, 1, 2000, "positivePrompt")
    if "negativePrompt" in request:
        _text(request["negativePrompt"], 1, 2000, "negativePrompt")
    seed = request.get("seed")
    if seed is not None and (not _whole(seed) or not 0 <= seed < 2**32):
        raise Refused("invalidParameter", "seed: a whole number", "seed")
    settings = _closed(
        request.get("settings", {}),
        frozenset({"instrumental", "lyrics", "lyricsOptimizer"}),
        "settings",
    )
    for name in ("instrumental", "lyricsOptimizer"):
        if name in settings and not isinstance(settings[name], bool):
            raise Refused("invalidParameter", f"settings.{name}: a boolean", f"settings.{name}")
    lyrics = settings.get("lyrics")
    if lyrics is not None:
        _text(lyrics, 1, 3500, "settings.lyrics")
    if settings.get("instrumental") is True and lyrics is not None:
        raise Refused(
            "invalidParameter", "an instrumental track takes no lyrics", "settings.lyrics"
        )
    vocal = settings.get("instrumental") is not True
    if vocal and lyrics is None and settings.get("lyricsOptimizer") is not True:
        raise Refused(
            "missingParameter",
            "a vocal track needs settings.lyrics or settings.lyricsOptimizer: true",
            "settings.lyrics",
        )
    _audio_settings(request)
    words = f"{prompt or ''}:{lyrics or ''}:{seed}"
    tone = int(hashlib.sha256(words.encode()).hexdigest()[:6], 16)
    return MUSIC_PRICE, Job("music", SONG_SECONDS, tone=tone, seed=seed)


def _upscale(request: dict[str, Any], media: Media) -> tuple[float, Job]:
    inputs = _closed(request["inputs"], frozenset({"video"}), "inputs")
    video = _media(inputs.get("video"), media, "inputs.video")
    seconds, width, height = probe(video)
    short_side, rate = next(
        ((side, rate) for side, rate in UPSCALE_TIERS if side > min(width, height)),
        UPSCALE_TIERS[-1],
    )
    size = (
        (2 * round(width * short_side / height / 2), short_side)
        if width >= height
        else (short_side, 2 * round(height * short_side / width / 2))
    )
    return round(rate * seconds, 6), Job("upscale", seconds, size, video)


def _lipsync(request: dict[str, Any], media: Media) -> tuple[float, Job]:
    inputs = _closed(request["inputs"], frozenset({"video", "audios"}), "inputs")
    video = _media(inputs.get("video"), media, "inputs.video")
    audios = inputs.get("audios")
    if not isinstance(audios, list) or len(audios) != 1:
        raise Refused("invalidParameter", "inputs.audios: one audio", "inputs.audios")
    audio = _closed(audios[0], frozenset({"id", "source"}), "inputs.audios[0]")
    if not isinstance(audio.get("id"), str):
        raise Refused("missingParameter", "inputs.audios[0].id", "inputs.audios[0].id")
    sound = _media(audio.get("source"), media, "inputs.audios[0].source")
    given = request.get("providerSettings", {})
    provider = _closed(given, frozenset({"sync"}), "providerSettings")
    sync = _closed(
        provider.get("sync", {}),
        frozenset({"syncMode", "temperature", "activeSpeakerDetection", "segments"}),
        "providerSettings.sync",
    )
    if sync.get("syncMode", "bounce") not in SYNC_MODES:
        raise Refused(
            "invalidParameter", "syncMode is not one of the modes", "providerSettings.sync.syncMode"
        )
    temperature = sync.get("temperature", 0.5)
    if not _number(temperature) or not 0 <= temperature <= 1:
        raise Refused(
            "invalidParameter", "temperature: 0 to 1", "providerSettings.sync.temperature"
        )
    seconds, width, height = probe(video)
    heard = probe_audio(sound)
    # Billed per second of the whole audio, whatever part of it the clip keeps.
    return round(LIPSYNC_RATE * heard, 6), Job("lipsync", seconds, (width, height), video, sound)


def _media(given: Any, media: Media, name: str) -> Path:
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
    # What was asked is written into the sound's tag: other words never give the same bytes
    # (two voices may share a tone and a length).
    tagged = ["-metadata", f"comment={job.tone:x}"]
    if job.kind == "speech":
        tone = 150 + job.tone % 80
        source = f"sine=frequency={tone}:duration={seconds},tremolo=f=5:d=0.95"
        args += ["-f", "lavfi", "-i", source, *tagged, "-c:a", "libmp3lame", "-b:a", "96k"]
        args += ["-f", "mp3"]
    elif job.kind == "music":
        source = f"sine=frequency={100 + job.tone % 60}:duration={seconds},volume=0.4"
        args += ["-f", "lavfi", "-i", source, *tagged, "-c:a", "libmp3lame", "-b:a", "128k"]
        args += ["-f", "mp3"]
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
