"""Clips -> a sequence file: stream copy when the clips allow it, else one ffmpeg filter graph."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from pipeline import media
from pipeline.errors import MediaError
from pipeline.expand import Sequence

XFADE = {
    "crossfade": "fade",
    "fadeblack": "fadeblack",
    "wipeleft": "wipeleft",
    "wiperight": "wiperight",
}
AUDIO_RATE = 48000
FADE_OUT = 2.0  # seconds of fade at the end of an audio bed


@dataclass(frozen=True)
class ClipInput:
    """A clip file as one sequence uses it."""

    path: Path
    info: media.ClipInfo
    start: float
    end: float
    label: str

    @property
    def length(self) -> float:
        return self.end - self.start

    @property
    def whole(self) -> bool:
        return self.start == 0 and abs(self.end - self.info.duration) <= 1.0 / self.info.fps


@dataclass(frozen=True)
class Assembled:
    info: media.ClipInfo
    method: str  # "copy" or "graph"


def can_copy(sequence: Sequence, clips: list[ClipInput]) -> bool:
    """Stream copy is lossless and fast, and right only when nothing has to change."""
    first = clips[0].info
    return (
        sequence.transition == "cut"
        and sequence.audio is None
        and all(c.whole for c in clips)
        and all(c.info.joinable_with(first) for c in clips)
        and all(c.info.has_audio == first.has_audio for c in clips)
        and (first.width, first.height) == (sequence.width, sequence.height)
        and abs(first.fps - sequence.fps) < 1e-6
    )


def assemble(sequence: Sequence, clips: list[ClipInput], output: Path) -> Assembled:
    """Write `output` atomically and check it: right size, decodes, duration within a frame."""
    output.parent.mkdir(parents=True, exist_ok=True)
    method = "copy" if can_copy(sequence, clips) else "graph"
    with tempfile.TemporaryDirectory(prefix=".join-", dir=output.parent) as workdir:
        temp = Path(workdir) / "out.mp4"
        if method == "copy":
            _concat_copy(clips, temp, Path(workdir))
        else:
            _filter_graph(sequence, clips, temp)
        try:
            info = media.validate(
                temp,
                sequence.width,
                sequence.height,
                sequence.duration,
                decode_all=False,
            )
        except MediaError as exc:
            raise MediaError(
                f"sequence '{sequence.name}': the joined file is wrong: {exc}"
            ) from None
        os.replace(temp, output)
    return Assembled(info, method)


def _concat_copy(clips: list[ClipInput], output: Path, workdir: Path) -> None:
    listing = workdir / "clips.txt"
    lines = ["ffconcat version 1.0"]
    for clip in clips:
        quoted = str(clip.path.resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    media.run_ffmpeg(
        [
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-c",
            "copy",
            "-map",
            "0",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(output),
        ],
        "join clips by stream copy",
    )


def _filter_graph(sequence: Sequence, clips: list[ClipInput], output: Path) -> None:
    """One ffmpeg run: trim, fit, fps, transitions, audio; no frame passes through Python."""
    width, height, fps = sequence.width, sequence.height, sequence.fps
    videos = []
    audios = []
    # ffmpeg-python merges inputs with equal arguments into one node; a shot used twice must
    # be two inputs (decoded twice, not buffered whole for a split), so each gets its own
    # harmless queue size.
    inputs = [ffmpeg.input(str(c.path), thread_queue_size=64 + i) for i, c in enumerate(clips)]
    for clip, source in zip(clips, inputs, strict=True):
        video = source.video.trim(start=clip.start, end=clip.end).setpts("PTS-STARTPTS")
        video = _fit(video, clip, width, height, sequence.fit)
        videos.append(video.filter("fps", fps).filter("format", "yuv420p").filter("settb", "AVTB"))
        if sequence.audio is None:
            audios.append(_clip_audio(clip, source))
    total = sequence.duration
    # Some ffmpeg versions end an xfade chain a frame early or late: hold the last frame,
    # and the output option `t` cuts the film at exactly its length.
    video = _join_video(videos, clips, sequence).filter(
        "tpad", stop_mode="clone", stop_duration=round(2.0 / fps, 6)
    )
    streams: list[Any] = [video]
    if sequence.audio is not None:
        streams.append(_audio_bed(sequence.audio, total))
    elif any(c.info.has_audio for c in clips):
        streams.append(_join_audio(audios, sequence))
    out = ffmpeg.output(
        *streams,
        str(output),
        vcodec="libx264",
        preset=sequence.preset,
        crf=sequence.quality,
        pix_fmt="yuv420p",
        r=fps,
        movflags="+faststart",
        t=round(total, 6),
        f="mp4",
        **(
            {"acodec": "aac", "audio_bitrate": "192k", "ar": AUDIO_RATE} if len(streams) > 1 else {}
        ),
    )
    args = out.get_args(overwrite_output=True)
    media.run_ffmpeg(args, f"join sequence '{sequence.name}'")


def _fit(video: Any, clip: ClipInput, width: int, height: int, fit: str) -> Any:
    if (clip.info.width, clip.info.height) == (width, height):
        return video.filter("setsar", 1)  # already the film's size: no copy of every frame
    if fit == "crop":
        video = video.filter("scale", width, height, force_original_aspect_ratio="increase")
        video = video.filter("crop", width, height)
    else:
        video = video.filter("scale", width, height, force_original_aspect_ratio="decrease")
        video = video.filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2", color="black")
    return video.filter("setsar", 1)


def _join_video(videos: list[Any], clips: list[ClipInput], sequence: Sequence) -> Any:
    if len(videos) == 1:
        return videos[0]
    if sequence.transition == "cut":
        return ffmpeg.concat(*videos, v=1, a=0)
    overlap = sequence.overlap
    joined = videos[0]
    elapsed = clips[0].length
    for video, clip in zip(videos[1:], clips[1:], strict=True):
        offset = elapsed - overlap
        joined = ffmpeg.filter(
            [joined, video],
            "xfade",
            transition=XFADE[sequence.transition],
            duration=overlap,
            offset=round(offset, 6),
        )
        elapsed = offset + clip.length
    return joined


def _clip_audio(clip: ClipInput, source: Any) -> Any:
    """The clip's own sound, or silence of its length, so audio and video stay aligned."""
    if clip.info.has_audio:
        audio = source.audio.filter("atrim", start=clip.start, end=clip.end)
        audio = audio.filter("asetpts", "PTS-STARTPTS")
    else:
        audio = ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi", t=clip.length).audio
    return audio.filter("aresample", AUDIO_RATE).filter(
        "aformat", sample_fmts="fltp", channel_layouts="stereo"
    )


def _join_audio(audios: list[Any], sequence: Sequence) -> Any:
    if len(audios) == 1:
        return audios[0]
    if sequence.transition == "cut":
        return ffmpeg.concat(*audios, v=0, a=1)
    joined = audios[0]
    for audio in audios[1:]:
        joined = ffmpeg.filter([joined, audio], "acrossfade", d=sequence.overlap)
    return joined


def _audio_bed(path: Path, total: float) -> Any:
    """The music bed looped or trimmed to the film's length, normalised, faded out."""
    fade = min(FADE_OUT, total / 4)
    audio = ffmpeg.input(str(path), stream_loop=-1).audio
    return (
        audio.filter("atrim", duration=total)
        .filter("asetpts", "PTS-STARTPTS")
        .filter("loudnorm", I=-16, TP=-1.5, LRA=11)
        .filter("aresample", AUDIO_RATE)
        .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
        .filter("afade", t="out", st=round(total - fade, 6), d=round(fade, 6))
        .filter("apad", whole_dur=round(total, 6))
        .filter("atrim", duration=total)
    )
