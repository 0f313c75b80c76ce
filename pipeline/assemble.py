"""A film's recipe -> its file: stream copy when the clips allow it, else one ffmpeg filter
graph. Only the recipe (nodes.JoinRecipe) says what is joined, and the files it names, by key
or digest, are given beside it: whatever reaches the join is in the film's key."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg

from pipeline import media
from pipeline.cache.clips import ClipRecord
from pipeline.cache.files import remove_left_behind
from pipeline.errors import MediaError
from pipeline.hashing import sha256_file
from pipeline.measure import Loudness
from pipeline.nodes import TRUE_PEAK, JoinRecipe, Logo, Piece, SafeArea, TextLayer, box_padding

XFADE = {
    "crossfade": "fade",
    "fadeblack": "fadeblack",
    "wipeleft": "wipeleft",
    "wiperight": "wiperight",
}
AUDIO_RATE = 48000
AUDIO_KBPS = 192
FADE_OUT = 2.0  # seconds of fade at the end of an audio bed
SOURCE_LOUDNESS = -16.0  # LUFS each voice and bed is brought to before they are mixed
AIM = TRUE_PEAK - 0.5  # dBTP the gain may bring the highest peak to: AAC adds a little
LIMIT = 10 ** ((TRUE_PEAK - 1.0) / 20)  # the limiter's sample peak: true peaks stay under
TOLERANCE = 1.0  # LU: a film whose sound measures further from its target fails
LIMITER_PASSES = 4  # at most, to bring a limited sound back up to its target


@dataclass(frozen=True)
class ClipInput:
    """A clip file as one sequence uses it."""

    path: Path
    info: media.ClipInfo
    start: float
    end: float
    label: str
    focus: float | None = None  # its own crop window (else the sequence's)
    speaks: bool = False  # a lip-synced clip: its sound is a voice, kept over any bed

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
    loudness: Loudness | None = None  # its sound as made (None: it has none)


def can_copy(recipe: JoinRecipe, clips: list[ClipInput]) -> bool:
    """Stream copy is lossless and fast, and right only when nothing has to change."""
    first = clips[0].info
    return (
        recipe.transition == "cut"
        and recipe.bed is None
        and recipe.voice is None
        and not recipe.texts
        and recipe.logo is None
        and recipe.encoding is None  # a platform's encoder settings: the picture is encoded
        # a card is encoded here, not by the provider: its stream cannot share the film's
        and not any(piece.drawn for piece in recipe.pieces)
        and all(c.whole for c in clips)
        and all(c.info.joinable_with(first) for c in clips)
        and (first.width, first.height) == (recipe.width, recipe.height)
        and abs(first.fps - recipe.fps) < 1e-6
    )


def film_length(recipe: JoinRecipe, clips: list[ClipInput]) -> float:
    """Seconds of the film made of these clips: each as used, minus the transitions."""
    return sum(c.length for c in clips) - recipe.overlap * (len(clips) - 1)


def assemble(
    recipe: JoinRecipe,
    clips: list[ClipInput],
    files: Mapping[str, Path],
    output: Path,
    name: str,
) -> Assembled:
    """Write `output` atomically and check it: right size, decodes, duration within a frame.
    `clips`: the recipe's pieces, checked (`clip_input`); `files`: the other files it names
    (a bed, a voice, fonts, a logo), by key or digest; `name` says the film in messages."""
    method = "copy" if can_copy(recipe, clips) else "graph"
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(
            prefix=f".join-{os.getpid()}-", dir=output.parent
        ) as workdir:
            temp = Path(workdir) / "out.mp4"
            if method == "copy":
                loudness = _copied(recipe, clips, temp, name)
            else:
                loudness = _filter_graph(recipe, clips, _FileOf(files, name), temp)
            try:
                info = media.validate(
                    temp,
                    recipe.width,
                    recipe.height,
                    film_length(recipe, clips),
                    decode_all=False,
                )
            except MediaError as exc:
                raise MediaError(f"sequence '{name}': the joined file is wrong: {exc}") from None
            os.replace(temp, output)
    except OSError as exc:
        raise MediaError(
            f"sequence '{name}': cannot write {exc.filename or output.parent} "
            f"({exc.strerror or exc})"
        ) from None
    return Assembled(info, method, loudness)


def clip_input(
    path: Path,
    piece: Piece,
    record: ClipRecord,
    checked: dict[str, media.ClipInfo],
    named: tuple[str, str],
) -> ClipInput:
    """A cached clip checked against its record (once per build) before it goes into a film;
    `named`: how messages name it, and the shot to render again when it is damaged."""
    label, shot_id = named
    info = checked.get(record.key)
    if info is None:
        info = _checked(path, record, label, shot_id)
        checked[record.key] = info
    # A clip delivered a frame longer or shorter than asked is used as it is: a piece that
    # runs to the clip's end takes the whole clip, a trim never reaches past the clip's end.
    end = info.duration if piece.to_end else min(piece.end, info.duration)
    return ClipInput(path, info, piece.start, end, label, piece.focus, piece.speaks)


def _checked(path: Path, record: ClipRecord, label: str, shot_id: str) -> media.ClipInfo:
    problem = None
    if not path.exists():
        problem = "its file is gone"
    elif path.stat().st_size != record.bytes or sha256_file(path) != record.sha256:
        problem = "its file does not match the checksum recorded when it was rendered"
    if problem is None:
        try:
            return media.probe(path)
        except MediaError as exc:
            problem = exc.message
    raise MediaError(
        f"the clip of shot '{label}' is damaged: {problem}",
        f"render it again: storyboard build SPEC --force {shot_id}",
    )


def clean_work_folders(folder: Path) -> None:
    """Remove the work folders of joins that were killed on the way (their pid is in the
    name)."""
    remove_left_behind(folder, r"^\.join-(?P<pid>\d+)-")


def time_limit(length: float) -> float:
    """Seconds a join may take: far more than x264 needs, so only a hung ffmpeg is stopped."""
    return 120.0 + 20.0 * length


def _concat_copy(clips: list[ClipInput], output: Path) -> None:
    """Move the clips' packets one after another into one file, with no decoding.

    Done in-process with libav rather than with ffmpeg's concat demuxer, which decodes
    frames of every input to learn its pixel format (15 ms a 1080p clip, three times the
    cost of the copy itself); the pixel format is already known here. One clip is open at
    a time, so a film of any length stays under the open-file limit.
    """
    import av

    try:
        options = _index_first([c.info.packets for c in clips])
        with av.open(str(output), "w", format="mp4", options=options) as sink:
            targets: dict[str, Any] = {}
            start, audio_end = Fraction(0), None
            for clip in clips:
                # skip_frame=all: opening the clip probes no frame by decoding it.
                with av.open(str(clip.path), options={"skip_frame": "all"}) as source:
                    streams = media.film_streams(source)
                    if not targets:
                        targets = {s.type: sink.add_stream_from_template(s) for s in streams}
                    start, audio_end = _copy_packets(
                        source, streams, targets, sink, start, audio_end
                    )
    except (av.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise MediaError(f"could not join the clips by stream copy: {exc}") from None


def _index_first(packets: list[int]) -> dict[str, str]:
    """mp4 options that put the index (moov) before the media, for players that stream.

    Reserving the room up front saves `+faststart`'s second pass over the whole file. 64
    bytes a packet is more than the index ever takes (size, time, offset, chunk, key and
    reorder entries), so the room is never short. A clip that does not say how many packets
    it holds gets faststart.
    """
    if min(packets, default=0) <= 0:
        return {"movflags": "+faststart"}
    return {"moov_size": str(64 * sum(packets) + 65536)}


def _copy_packets(
    source: Any,
    chosen: list[Any],
    targets: dict[str, Any],
    sink: Any,
    start: Fraction,
    audio_end: Fraction | None,
) -> tuple[Fraction, Fraction | None]:
    """Copy one clip's packets shifted to `start` (s); returns where its video and audio end.

    The next clip starts where this one's video ends, so the film's length is the sum of
    the clips' lengths. Audio may run a packet past the video: a packet that would overlap
    the sound already written is dropped (at most one audio frame, about 20 ms, at a cut).
    Times are integer ticks of each stream's time base: a Fraction per packet would cost
    more than the copy itself.
    """
    video, audio = chosen[0], (chosen[1] if len(chosen) > 1 else None)
    shift = {s.index: round(start / s.time_base) for s in chosen}
    video_end = shift[video.index]
    audio_floor = None
    if audio is not None and audio_end is not None:
        audio_floor = math.ceil(audio_end / audio.time_base)
    for packet in source.demux(*chosen):
        if packet.dts is None:  # the demuxer's end-of-stream marker
            continue
        index = packet.stream_index
        packet.pts += shift[index]
        packet.dts += shift[index]
        packet_end = packet.pts + packet.duration
        if index == video.index:
            video_end = max(video_end, packet_end)
            packet.stream = targets["video"]
        elif audio_floor is not None and packet.pts < audio_floor:
            continue
        else:
            audio_floor = packet_end
            packet.stream = targets["audio"]
        sink.mux(packet)
    if audio is not None and audio_floor is not None:
        audio_end = audio_floor * audio.time_base
    return video_end * video.time_base, audio_end


@dataclass(frozen=True)
class _FileOf:
    """The files a recipe names, by key or digest; one it names that is not given is a fault
    of the caller, said as the film's."""

    files: Mapping[str, Path]
    name: str

    def __call__(self, source: str) -> Path:
        found = self.files.get(source)
        if found is None:
            raise MediaError(f"sequence '{self.name}': no file given for {source[:12]}")
        return found


def _filter_graph(
    recipe: JoinRecipe, clips: list[ClipInput], file_of: _FileOf, output: Path
) -> Loudness | None:
    """The film by ffmpeg filter graphs: trim, fit, fps, transitions, text and logo in one
    run, the sound in others beside it; no frame passes through Python. The loudness of its
    sound, as made (None: it has none)."""
    width, height, fps = recipe.width, recipe.height, recipe.fps
    videos = []
    audios = []
    # ffmpeg-python merges inputs with equal arguments into one node; a shot used twice must
    # be two inputs (decoded twice, not buffered whole for a split), so each gets its own
    # harmless queue size.
    inputs = [ffmpeg.input(str(c.path), thread_queue_size=64 + i) for i, c in enumerate(clips)]
    for clip, source in zip(clips, inputs, strict=True):
        video = source.video.trim(start=clip.start, end=clip.end).setpts("PTS-STARTPTS")
        focus = clip.focus if clip.focus is not None else recipe.focus
        video = _fit(video, clip, (width, height), recipe.fit, focus)
        videos.append(video.filter("fps", fps).filter("format", "yuv420p").filter("settb", "AVTB"))
        audios.append(_clip_audio(clip, source, keep=recipe.bed is None or clip.speaks))
    total = film_length(recipe, clips)
    # Some ffmpeg versions end an xfade chain a frame early or late: hold the last frame,
    # and the output option `t` cuts the film at exactly its length.
    video = _join_video(videos, clips, recipe).filter(
        "tpad", stop_mode="clone", stop_duration=round(2.0 / fps, 6)
    )
    if recipe.logo is not None:
        video = _logo_over(video, recipe.logo, file_of(recipe.logo.image), recipe)
    if recipe.texts:
        video = _draw_texts(video, recipe.texts, (output.parent / "text.cmd", file_of), recipe)
    sound = _sound(recipe, clips, audios, file_of, total)
    name = file_of.name
    if sound is None:
        _encoded(video, output, recipe, total, name)
        return None
    # Both passes over the sound (mixed and measured; levelled, encoded and measured again)
    # run while the picture is encoded; then the two are put together, each copied: no frame
    # is encoded twice, and only that copy waits on the sound.
    picture = output.with_name("picture.mp4")
    with ThreadPoolExecutor(max_workers=1) as encoder:
        encoding = encoder.submit(_encoded, video, picture, recipe, total, name)
        encoded, loudness = _film_sound(sound, output.parent, recipe, (name, total))
        encoding.result()
    _put_together(picture, encoded, output, (name, total))
    return loudness


def _copied(recipe: JoinRecipe, clips: list[ClipInput], output: Path, name: str) -> Loudness | None:
    """The clips joined by stream copy into `output`; when they have sound, that sound
    levelled (and encoded again: the only stream encoded) and put back with the picture."""
    if not any(c.info.has_audio for c in clips):
        _concat_copy(clips, output)
        return None
    joined = output.with_name("joined.mp4")
    _concat_copy(clips, joined)
    total = film_length(recipe, clips)
    sound = ffmpeg.input(str(joined)).audio
    encoded, loudness = _film_sound(sound, output.parent, recipe, (name, total))
    _put_together(joined, encoded, output, (name, total))
    return loudness


def _encoded(video: Any, output: Path, recipe: JoinRecipe, total: float, name: str) -> None:
    """The film's picture, encoded into `output`, `total` seconds exactly."""
    out = ffmpeg.output(
        video,
        str(output),
        **_video_encoding(recipe),
        r=recipe.fps,
        movflags="+faststart",
        t=round(total, 6),
        f="mp4",
    )
    args = out.get_args(overwrite_output=True)
    media.run_ffmpeg(args, f"join sequence '{name}'", time_limit(total))


def _sound(
    recipe: JoinRecipe, clips: list[ClipInput], audios: list[Any], file_of: _FileOf, total: float
) -> Any | None:
    """The film's sound, mixed: the bed (with lip-synced clips' speech over it) or the
    clips' own sound, and the voice-over over either; None when it has none."""
    sound = None
    if recipe.bed is not None:
        sound = _audio_bed(file_of(recipe.bed.source), total, recipe.bed.length)
        if any(c.speaks and c.info.has_audio for c in clips):
            sound = _spoken_over(sound, _join_audio(audios, recipe))
    elif any(c.info.has_audio for c in clips):
        sound = _join_audio(audios, recipe)
    if recipe.voice is not None:
        sound = _voice_over(sound, file_of(recipe.voice.source), recipe.voice.at, total)
    return sound


def _video_encoding(recipe: JoinRecipe) -> dict[str, Any]:
    """x264 at the sequence's quality (CRF), or at a platform's bitrate, profile, keyframe
    interval and B-frames; always 4:2:0, which every player and platform takes."""
    settings: dict[str, Any] = {"vcodec": "libx264", "preset": recipe.preset, "pix_fmt": "yuv420p"}
    given = recipe.encoding
    if given is None:
        return settings | {"crf": recipe.quality}
    settings |= {"b:v": f"{given.video_kbps}k", "profile:v": given.profile}
    if given.gop:
        settings |= {"g": given.gop, "keyint_min": given.gop}
    if given.bframes >= 0:
        settings["bf"] = given.bframes
    return settings


def _audio_encoding(recipe: JoinRecipe) -> dict[str, Any]:
    """AAC-LC at 48 kHz (a mix is stereo; a copied film's sound keeps its channels): at a
    platform's bitrate, else 192 kbps."""
    kbps = recipe.encoding.audio_kbps if recipe.encoding is not None else AUDIO_KBPS
    return {"acodec": "aac", "audio_bitrate": f"{kbps}k", "ar": AUDIO_RATE}


def _mixed_down(sound: Any, mix: Path, name: str, total: float) -> Loudness:
    """The first pass: the film's sound mixed into `mix` (32-bit float: nothing clips before
    the gain) and measured on the way (`ebur128`: the measure alone, where loudnorm's own
    first pass also normalises a copy at 192 kHz, several times the work)."""
    split = sound.filter_multi_output("asplit")
    kept = ffmpeg.output(split.stream(0), str(mix), acodec="pcm_f32le", f="wav")
    heard = ffmpeg.output(split.stream(1).filter("ebur128", peak="true"), "-", f="null")
    args = ffmpeg.merge_outputs(kept, heard).get_args(overwrite_output=True)
    report = media.ffmpeg_report(args, f"mix the sound of sequence '{name}'", time_limit(total))
    return media.loudness_said(report)


def _levelled(mix: Path, measured: Loudness, recipe: JoinRecipe, name: str) -> Any:
    """The second pass: the mixed sound brought linearly to the film's loudness by the gain
    its measure asks for (what loudnorm's linear mode does, at the film's own 48 kHz), as the
    join takes it. Where that gain would lift a peak over the ceiling, a limiter holds the peaks instead
    (`_limited`: loudnorm would fall back to its dynamic mode there, which misses the target
    on a film of a few seconds). Silence is left as it is."""
    sound = ffmpeg.input(str(mix)).audio
    if measured.silent:
        return sound
    gain = recipe.loudness - measured.integrated
    if measured.true_peak + gain > AIM:
        return ffmpeg.input(str(_limited(mix, gain, recipe, name))).audio
    return sound.filter("volume", volume=f"{gain:.2f}dB", precision="float")


def _limited(mix: Path, gain: float, recipe: JoinRecipe, name: str) -> Path:
    """The sound at `gain` with its peaks held under the ceiling, in a file beside `mix`. A
    limiter takes loudness with the peaks it holds, so the result is measured, and the gain
    raised by what it lacks, until it is on target (a few passes over the sound alone)."""
    limited = mix.with_name("limited.wav")
    for _ in range(LIMITER_PASSES):
        sound = (
            ffmpeg.input(str(mix))
            .audio.filter("volume", volume=f"{gain:.2f}dB", precision="float")
            .filter("alimiter", limit=round(LIMIT, 4), level="false", latency="true")
        )
        measured = _mixed_down(sound, limited, name, recipe.duration)
        if abs(measured.integrated - recipe.loudness) <= TOLERANCE / 4:
            break
        gain += recipe.loudness - measured.integrated
    return limited


def _film_sound(
    sound: Any, folder: Path, recipe: JoinRecipe, said: tuple[str, float]
) -> tuple[Path, Loudness]:
    """The film's sound in two passes over it alone: mixed into a file and measured; then
    brought to the film's loudness and encoded (AAC), and measured again as the film will
    carry it, a sound off its target refused (`_on_target`). The encoded file and its
    loudness."""
    name, total = said
    mix = folder / "mix.wav"
    levelled = _levelled(mix, _mixed_down(sound, mix, name, total), recipe, name)
    encoded = folder / "sound.m4a"
    out = ffmpeg.output(levelled, str(encoded), f="mp4", **_audio_encoding(recipe))
    args = out.get_args(overwrite_output=True)
    media.run_ffmpeg(args, f"level the sound of sequence '{name}'", time_limit(total))
    return encoded, _on_target(encoded, recipe, name)


def _put_together(picture: Path, sound: Path, output: Path, said: tuple[str, float]) -> None:
    """The film: its encoded picture and sound, each copied as it is, `total` seconds."""
    name, total = said
    out = ffmpeg.output(
        ffmpeg.input(str(picture)).video,
        ffmpeg.input(str(sound)).audio,
        str(output),
        c="copy",
        movflags="+faststart",
        t=round(total, 6),
        f="mp4",
    )
    args = out.get_args(overwrite_output=True)
    media.run_ffmpeg(
        args, f"put the sound of sequence '{name}' with its picture", time_limit(total)
    )


def _on_target(sound: Path, recipe: JoinRecipe, name: str) -> Loudness:
    """A film's sound measured as encoded; one more than TOLERANCE from its target, or
    peaking above the ceiling, is refused (a silent one has no loudness to miss)."""
    measured = media.measure_loudness(sound, f"measure the sound of sequence '{name}'")
    if measured.silent:
        return measured
    off = measured.integrated - recipe.loudness
    if abs(off) > TOLERANCE or measured.true_peak > TRUE_PEAK:
        raise OffTarget(
            f"sequence '{name}': its sound measures {measured.integrated:.1f} LUFS, true peak "
            f"{measured.true_peak:.1f} dBTP, {abs(off):.1f} LU from its target of "
            f"{recipe.loudness:g} LUFS (within {TOLERANCE:g} LU, true peak at most "
            f"{TRUE_PEAK:g} dBTP): a sound of silence and a few loud moments cannot be brought "
            "that far without crushing them; check its voice and bed, or lower its `loudness:`"
        )
    return measured


class OffTarget(MediaError):
    """A film's sound that, levelled, still misses its loudness target or its peak ceiling."""


def failure(exc: MediaError, loudness_at: str) -> str:
    """What a failed join says: a sound off its target also says where the target is set
    (`specs/x.yaml:12`)."""
    return (
        f"{loudness_at}: {exc.message}"
        if isinstance(exc, OffTarget) and loudness_at
        else exc.message
    )


def _fit(video: Any, clip: ClipInput, size: tuple[int, int], fit: str, focus: float) -> Any:
    """A clip brought to the film's size: padded, cropped around its focus (0 keeps the
    left edge, 1 the right), or fitted whole on a blurred, cropped copy of itself."""
    width, height = size
    if (clip.info.width, clip.info.height) == (width, height):
        return video.filter("setsar", 1)  # already the film's size: no copy of every frame
    if fit == "crop":
        video = _cropped(video, width, height, focus)
    elif fit == "blur":
        split = video.filter_multi_output("split")
        back, front = split.stream(0), split.stream(1)
        back = _cropped(back, width, height, 0.5).filter("gblur", sigma=max(width, height) / 40)
        front = front.filter("scale", width, height, force_original_aspect_ratio="decrease")
        video = ffmpeg.overlay(back, front, x="(W-w)/2", y="(H-h)/2")
    else:
        video = video.filter("scale", width, height, force_original_aspect_ratio="decrease")
        video = video.filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2", color="black")
    return video.filter("setsar", 1)


def _cropped(video: Any, width: int, height: int, focus: float) -> Any:
    video = video.filter("scale", width, height, force_original_aspect_ratio="increase")
    return video.filter("crop", width, height, f"(iw-{width})*{focus}", "(ih-oh)/2")


def _join_video(videos: list[Any], clips: list[ClipInput], recipe: JoinRecipe) -> Any:
    if len(videos) == 1:
        return videos[0]
    if recipe.transition == "cut":
        return ffmpeg.concat(*videos, v=1, a=0)
    spans = _frame_spans(clips, recipe)
    if spans is None:
        return _xfade_chain(videos, clips, recipe)
    return _xfade_segments(videos, spans, recipe)


def _anchor(position: str) -> tuple[str, str]:
    """`bottom-left` -> (bottom, left); `top` -> (top, center); `left` -> ("", left)."""
    vertical, _, horizontal = position.rpartition("-")
    if not vertical and horizontal in ("top", "bottom"):
        return horizontal, "center"
    return vertical, horizontal


def _logo_over(video: Any, logo: Logo, file: Path, recipe: JoinRecipe) -> Any:
    """The logo (its image `file`) at its anchor inside the safe area, at its size and
    opacity, over the whole film (an image input repeats its one frame to the end)."""
    image = ffmpeg.input(str(file)).video
    image = image.filter("scale", -2, max(2 * round(logo.size * recipe.height / 2), 2))
    image = image.filter("format", "rgba")
    if logo.opacity < 1:
        image = image.filter("colorchannelmixer", aa=logo.opacity)
    safe = recipe.safe
    vertical, horizontal = _anchor(logo.position)
    x = {"left": f"{safe.left}*W", "right": f"W-w-{safe.right}*W"}.get(
        horizontal, f"({safe.left}*W+(1-{safe.right})*W-w)/2"
    )
    y = {"top": f"{safe.top}*H", "bottom": f"H-h-{safe.bottom}*H"}.get(
        vertical, f"({safe.top}*H+(1-{safe.bottom})*H-h)/2"
    )
    # overlay's own yuv420 blend: "auto" may choose a wider format and convert every frame
    return ffmpeg.overlay(video, image, x=x, y=y)


def _draw_texts(
    video: Any,
    layers: tuple[TextLayer, ...],
    where: tuple[Path, Callable[[str], Path]],
    recipe: JoinRecipe,
) -> Any:
    """Every text layer (and subtitle cue) drawn over the film, each from its `start` to its
    `end`, faded in and out, kept inside the safe area whatever its offset.

    Layers of one font that never show at once share one drawtext filter (a track), which a
    `sendcmd` filter sets to each layer in turn: a film with 5,000 subtitle cues is one or
    two filters, not 5,000 (each of which would load the font and see every frame: 1.5 GB and
    20 s for a 6 s film). Each command sets the layer's whole drawing (`reinit`), which every
    ffmpeg since 4 takes.
    """
    commands, file_of = where
    tracks = _tracks(layers)
    lines = []
    for number, (_, track) in enumerate(tracks):
        target = f"drawtext@text{number}"
        for layer in track:
            options = ":".join(
                f"{name}={_quoted(str(value))}"
                for name, value in _text_options(layer, recipe.height, recipe.safe)
            )
            lines.append(
                f"{layer.start:.6f}-{layer.end:.6f} [enter] {target} reinit {_quoted(options)}, "
                f"[enter] {target} enable 1, [leave] {target} enable 0;"
            )
    commands.write_text("\n".join(lines) + "\n", encoding="utf-8")
    video = video.filter("sendcmd", f=str(commands))
    for number, (font, _) in enumerate(tracks):
        # Drawn by the commands only: "." until the first one comes, and hidden till then.
        video = video.filter(
            f"drawtext@text{number}",
            fontfile=str(file_of(font)),
            text=".",
            expansion="none",
            enable="0",
        )
    return video


def _tracks(layers: tuple[TextLayer, ...]) -> list[tuple[str, list[TextLayer]]]:
    """Layers shared out among as few drawtext filters as may draw them: one font each (by
    its digest), and no two layers of one filter on screen at once (spans are [start, end))."""
    tracks: list[tuple[str, list[TextLayer]]] = []
    for layer in sorted(layers, key=lambda one: one.start):
        free = next((t for t in tracks if t[0] == layer.font and t[1][-1].end <= layer.start), None)
        if free is None:
            tracks.append((layer.font, [layer]))
        else:
            free[1].append(layer)
    return tracks


def _text_options(layer: TextLayer, height: int, safe: SafeArea) -> list[tuple[str, str | int]]:
    """A layer's drawing, as drawtext's options: its words, size, colours, box, shadow,
    place (inside the safe area, its box and shadow too, whatever its offset) and fade."""
    size = max(round(layer.size * height), 8)
    pad = box_padding(size, layer.box)
    shadow = max(size // 16, 1) if layer.shadow else 0
    ox, oy = layer.offset
    vertical, horizontal = _anchor(layer.position)
    left, right = f"{safe.left}*w+{pad}", f"(1-{safe.right})*w-text_w-{pad + shadow}"
    top, bottom = f"{safe.top}*h+{pad}", f"(1-{safe.bottom})*h-text_h-{pad + shadow}"
    x = {"left": left, "right": right}.get(horizontal, f"({left}+{right})/2")
    y = {"top": top, "bottom": bottom}.get(vertical, f"({top}+{bottom})/2")
    start, end, fade = layer.start, layer.end, layer.fade
    alpha = "1"
    if fade > 0:
        rising, falling = f"(t-{start})/{fade}", f"({end}-t)/{fade}"
        alpha = (
            f"max(0,min(1,if(lt(t,{start + fade}),{rising},if(gt(t,{end - fade}),{falling},1))))"
        )
    return [
        ("text", layer.text),
        ("fontsize", size),
        ("fontcolor", layer.color),
        ("line_spacing", size // 4),
        ("x", f"max({left},min({x}+{ox}*w,{right}))"),
        ("y", f"max({top},min({y}+{oy}*h,{bottom}))"),
        ("alpha", alpha),
        ("box", 1 if pad else 0),
        ("boxcolor", layer.box or "black@0"),
        ("boxborderw", pad),
        ("shadowx", shadow),
        ("shadowy", shadow),
        ("shadowcolor", "black@0.6"),
    ]


def _quoted(value: str) -> str:
    """`value` as one token of ffmpeg's option and command syntax (av_get_token): in single
    quotes, each quote of its own closed, escaped and opened again."""
    return "'" + value.replace("'", "'\\''") + "'"


def _overlap_frames(recipe: JoinRecipe) -> int:
    return max(1, math.floor(recipe.overlap * recipe.fps + 0.5))


def _frame_spans(clips: list[ClipInput], recipe: JoinRecipe) -> list[int] | None:
    """How many film frames each clip fills, its transitions included; None when a clip is
    too short to keep its two transitions apart.

    Clip edges are rounded to frames on the film's timeline, once each, so that rounding
    never adds up along the film.
    """
    overlap = _overlap_frames(recipe)
    spans = []
    start = 0
    elapsed = 0.0
    for index, clip in enumerate(clips):
        elapsed += clip.length - (recipe.overlap if index else 0.0)
        end = math.floor(elapsed * recipe.fps + 0.5)
        spans.append(end - start)
        start = end - overlap
    inner = [frames - 2 * overlap for frames in spans[1:-1]]
    outer = [spans[0] - overlap, spans[-1] - overlap]
    return spans if min(inner + outer) >= 1 else None


def _xfade_segments(videos: list[Any], spans: list[int], recipe: JoinRecipe) -> Any:
    """Each clip cut into head, body and tail; only the heads and tails go through xfade.

    In a chain of xfades every frame of the first clip passes through all of them, so the
    work grows with the square of the number of shots; here each frame meets one filter.
    """
    overlap = _overlap_frames(recipe)
    last = len(videos) - 1
    segments = []
    tail = None
    for index, (video, frames) in enumerate(zip(videos, spans, strict=True)):
        parts = video.split()
        used = 0
        if index > 0:
            head = _frames(parts[used], 0, overlap)
            used += 1
            segments.append(
                ffmpeg.filter(
                    [tail, head],
                    "xfade",
                    transition=XFADE[recipe.transition],
                    duration=round(overlap / recipe.fps, 6),
                    offset=0,
                )
            )
        body_start = overlap if index > 0 else 0
        body_end = frames - overlap if index < last else frames
        segments.append(_frames(parts[used], body_start, body_end))
        if index < last:
            tail = _frames(parts[used + 1], frames - overlap, frames)
    return ffmpeg.concat(*segments, v=1, a=0)


def _frames(video: Any, first: int, stop: int) -> Any:
    """Frames `first` to `stop` (excluded) of a stream, restarting at time 0."""
    return video.trim(start_frame=first, end_frame=stop).setpts("PTS-STARTPTS")


def _xfade_chain(videos: list[Any], clips: list[ClipInput], recipe: JoinRecipe) -> Any:
    """One xfade after another: for films with a shot shorter than its two transitions."""
    overlap = recipe.overlap
    joined = videos[0]
    elapsed = clips[0].length
    for video, clip in zip(videos[1:], clips[1:], strict=True):
        offset = elapsed - overlap
        joined = ffmpeg.filter(
            [joined, video],
            "xfade",
            transition=XFADE[recipe.transition],
            duration=overlap,
            offset=round(offset, 6),
        )
        elapsed = offset + clip.length
    return joined


def _clip_audio(clip: ClipInput, source: Any, keep: bool = True) -> Any:
    """The clip's own sound (when kept), or silence of its length, so audio and video stay
    aligned."""
    if keep and clip.info.has_audio:
        audio = source.audio.filter("atrim", start=clip.start, end=clip.end)
        audio = audio.filter("asetpts", "PTS-STARTPTS")
    else:
        audio = ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi", t=clip.length).audio
    return audio.filter("aresample", AUDIO_RATE).filter(
        "aformat", sample_fmts="fltp", channel_layouts="stereo"
    )


def _join_audio(audios: list[Any], recipe: JoinRecipe) -> Any:
    if len(audios) == 1:
        return audios[0]
    if recipe.transition == "cut":
        return ffmpeg.concat(*audios, v=0, a=1)
    joined = audios[0]
    for audio in audios[1:]:
        joined = ffmpeg.filter([joined, audio], "acrossfade", d=recipe.overlap)
    return joined


def _voice_over(under: Any | None, voice: Path, start: float, total: float) -> Any:
    """The voice, normalised, from `start` to the film's end, mixed over `under` (the bed or
    the clips' sound), which ducks while the voice speaks (sidechain compression)."""
    spoken = (
        ffmpeg.input(str(voice))
        .audio.filter("loudnorm", I=SOURCE_LOUDNESS, TP=-1.5, LRA=11)
        .filter("aresample", AUDIO_RATE)
        .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
        .filter("adelay", delays=round(start * 1000), all=1)
        .filter("apad", whole_dur=round(total, 6))
        .filter("atrim", duration=total)
    )
    if under is None:
        return spoken
    return _ducked_under(under, spoken)


def _spoken_over(bed: Any, clips: Any) -> Any:
    """The lip-synced clips' own sound (silence between them) over the bed, which ducks
    while they speak."""
    return _ducked_under(bed, clips.filter("loudnorm", I=SOURCE_LOUDNESS, TP=-1.5, LRA=11))


def _ducked_under(under: Any, spoken: Any) -> Any:
    """`spoken` mixed over `under`, which ducks while it speaks (sidechain compression)."""
    split = spoken.filter_multi_output("asplit")
    key, heard = split.stream(0), split.stream(1)
    under = under.filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
    ducked = ffmpeg.filter(
        [under, key], "sidechaincompress", threshold=0.02, ratio=10, attack=15, release=350
    )
    return ffmpeg.filter([ducked, heard], "amix", inputs=2, duration="first", normalize=0)


def _audio_bed(path: Path, total: float, length: float | None = None) -> Any:
    """The music bed looped or trimmed to the film's length (or the `length` of it kept,
    then silence), normalised, faded out."""
    played = min(length or total, total)
    fade = min(FADE_OUT, played / 4)
    audio = ffmpeg.input(str(path), stream_loop=-1).audio
    return (
        audio.filter("atrim", duration=played)
        .filter("asetpts", "PTS-STARTPTS")
        .filter("loudnorm", I=SOURCE_LOUDNESS, TP=-1.5, LRA=11)
        .filter("aresample", AUDIO_RATE)
        .filter("aformat", sample_fmts="fltp", channel_layouts="stereo")
        .filter("afade", t="out", st=round(played - fade, 6), d=round(fade, 6))
        .filter("apad", whole_dur=round(total, 6))
        .filter("atrim", duration=total)
    )
