"""ffmpeg discovery, probing and validation of clips (PyAV), frames taken from them."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, assert_never

from pipeline.errors import MediaError
from pipeline.measure import FLOOR, Loudness, PictureWatcher, Signals, SoundListener, Watch, listen
from pipeline.nodes import Output

FFMPEG_ENV = "STORYBOARD_FFMPEG"
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_TOP_PAD = -2
PR_SET_PDEATHSIG = 1  # prctl(2)
STDERR_TAIL = 16 * 1024  # bytes of ffmpeg's stderr kept: its last words say what went wrong
FFMPEG_SECONDS = 600.0  # the default time limit of one ffmpeg run
# The largest image decoded to check it: a header claiming more is refused unread (a PNG of
# a few KB can claim 100,000 x 100,000 pixels).
MAX_IMAGE_SIDE = 8192
IMAGE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}


@functools.cache
def ffmpeg_binary() -> str:
    """STORYBOARD_FFMPEG, else ffmpeg on PATH, else the binary imageio-ffmpeg ships."""
    chosen = os.environ.get(FFMPEG_ENV)
    if chosen:
        if not (shutil.which(chosen) or Path(chosen).is_file()):
            raise MediaError(f"{FFMPEG_ENV}={chosen} is not an executable")
        return chosen
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise MediaError(
            "no ffmpeg found", "install ffmpeg, or `pip install imageio-ffmpeg`"
        ) from exc


def keep_freed_memory() -> None:
    """Ask glibc to keep freed heap memory for reuse instead of returning it at once.

    By default glibc hands the top of the heap back to the kernel whenever 128 KB there is
    free, so reading 40 KB video packets one after another faults every page of every
    packet in again: a third of a stream-copy join. A setting of the whole process, made
    once by its entry point; nothing happens off glibc.
    """
    if sys.platform != "linux":
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_TRIM_THRESHOLD, 64 << 20)
    mallopt(M_TOP_PAD, 16 << 20)


@dataclass(frozen=True)
class ClipInfo:
    duration: float
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str
    time_base: str
    audio: str  # "codec/rate/layout" of the first audio stream, "" when silent
    frames: int = 0
    # Packets of the video and first audio stream as the container declares them; 0: unknown.
    packets: int = 0
    signals: Signals | None = None  # what the quality check measured while decoding it

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    def joinable_with(self, other: ClipInfo) -> bool:
        """Whether two clips can be joined by stream copy (same codec parameters)."""
        return (
            self.codec,
            self.width,
            self.height,
            self.fps,
            self.pix_fmt,
            self.time_base,
            self.audio,
        ) == (
            other.codec,
            other.width,
            other.height,
            other.fps,
            other.pix_fmt,
            other.time_base,
            other.audio,
        )


def probe(path: Path) -> ClipInfo:
    """Stream parameters from the container, without decoding."""
    import av

    try:
        with av.open(str(path)) as container:
            return _info(container, frames=0, decoded_duration=None)
    except (av.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise MediaError(f"{path.name}: not a readable video ({_reason(exc)})") from None


def validate(
    path: Path,
    width: int | None = None,
    height: int | None = None,
    duration: float | None = None,
    decode_all: bool = True,
    taker: FrameTaker | None = None,
    watcher: PictureWatcher | None = None,
) -> ClipInfo:
    """Check a clip: size exactly, duration within one frame, and that it decodes.

    `decode_all=False` decodes the first frame and takes the length from the container: for
    files this tool just wrote itself from clips that were each fully decoded when they
    entered the cache (a stream-copied or re-encoded sequence). `taker` keeps, in the same
    pass, the frames other shots start from: the clip is then decoded exactly. `watcher`
    measures every frame in the same pass, for the quality check.
    """
    import av

    try:
        # skip_frame=all while opening: the probe decodes no frames of its own (a 1080p clip
        # pays 15 ms for that); the decoder below decodes all of them, or the first.
        with av.open(str(path), options={"skip_frame": "all"}) as container:
            stream = container.streams.video[0]
            # One thread per clip: clips are checked many at a time, and threads within one
            # decode cost more CPU than they save here.
            stream.codec_context.thread_count = 1
            # Fail on damaged data instead of concealing it, as players would. Damage shows
            # where the bitstream is parsed; the deblocking filter finds none, and skipping it
            # saves a fifth of the time on a real render.
            options = {"err_detect": "explode", "skip_loop_filter": "all"}
            if taker is not None:
                del options["skip_loop_filter"]  # frames taken must be exact
            stream.codec_context.options = options
            seers = [seer for seer in (taker, watcher) if seer is not None]
            frames, end = (
                _decode(container, stream, seers)
                if decode_all or seers
                else _first_frame(container, stream)
            )
            info = _info(container, frames=frames, decoded_duration=end)
            if watcher is not None:
                info = replace(info, signals=Signals(picture=watcher.picture(info.fps)))
    except (av.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise MediaError(f"{path.name}: does not decode ({_reason(exc)})") from None
    if frames == 0:
        raise MediaError(f"{path.name}: has no video frames")
    if width is not None and (info.width, info.height) != (width, height):
        raise MediaError(
            f"{path.name}: is {info.width}x{info.height}, {width}x{height} was asked for"
        )
    if duration is not None and abs(info.duration - duration) > 1.0 / info.fps + 1e-3:
        raise MediaError(f"{path.name}: lasts {info.duration:.3f} s, {duration:g} s was asked for")
    return info


def _decode(container: Any, stream: Any, seers: list[Any]) -> tuple[int, float]:
    """Decode every frame, each shown to `seers` (a FrameTaker, a PictureWatcher): the
    number of frames and where the last one ends (seconds)."""
    frames = 0
    end = 0.0
    frame_time = 1.0 / float(stream.average_rate or 25)
    for frame in container.decode(stream):
        frames += 1
        for seer in seers:
            seer.see(frame)
        if frame.time is not None:
            end = max(end, frame.time + frame_time)
    return frames, end


def _first_frame(container: Any, stream: Any) -> tuple[int, float | None]:
    """Decode the first frame only; the frame count and length come from the container."""
    for _ in container.decode(stream):
        break
    else:
        raise ValueError("the first frame does not decode")
    return int(stream.frames or 1), None


def _info(container: object, frames: int, decoded_duration: float | None) -> ClipInfo:
    streams = container.streams  # type: ignore[attr-defined]
    stream = streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    if decoded_duration is not None:
        seconds = decoded_duration
    elif stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    else:
        seconds = (container.duration or 0) / 1_000_000  # type: ignore[attr-defined]
    return ClipInfo(
        duration=round(seconds, 6),
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        fps=float(rate),
        codec=stream.codec_context.name,
        pix_fmt=str(stream.codec_context.pix_fmt),
        time_base=str(stream.time_base),
        audio=_audio_signature(streams.audio[0]) if streams.audio else "",
        frames=frames,
        packets=_declared_packets(film_streams(container)),
    )


def film_streams(container: Any) -> list[Any]:
    """The streams a clip brings to a film: its video and its first audio stream, if any."""
    return [container.streams.video[0], *container.streams.audio[:1]]


def _declared_packets(streams: list[Any]) -> int:
    counts = [s.frames for s in streams]
    return 0 if min(counts) <= 0 else sum(counts)


def _audio_signature(stream: Any) -> str:
    context = stream.codec_context
    return f"{context.name}/{context.sample_rate}/{context.layout.name}"


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


class StderrTail:
    """The last STDERR_TAIL bytes a child wrote: a runaway ffmpeg may write without end."""

    def __init__(self) -> None:
        self.data = b""

    def feed(self, chunk: bytes) -> None:
        self.data = (self.data + chunk)[-STDERR_TAIL:]

    def drain(self, stream: Any) -> None:
        while chunk := stream.read(4096):
            self.feed(chunk)

    def last_lines(self, count: int = 3) -> str:
        lines = [ln for ln in self.data.decode(errors="replace").splitlines() if ln.strip()]
        return " / ".join(lines[-count:])[-600:]


def dies_with_parent() -> Callable[[], None] | None:
    """A function for a child to run before it execs: on Linux it asks the kernel to kill it
    when this process dies (PR_SET_PDEATHSIG), so no ffmpeg outlives a killed build. The
    signal follows the thread that started the child: every caller waits for its child."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arrange() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request was made
            os._exit(1)

    return arrange


def _ffmpeg_command(args: list[str], level: str = "error") -> list[str]:
    return [
        ffmpeg_binary(),
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        level,
        "-y",
        *args,
    ]


@functools.cache
def _script_option() -> str:
    try:
        said = subprocess.run(
            [ffmpeg_binary(), "-hide_banner", "-version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        said = ""
    return script_option(said)


def script_option(version: str) -> str:
    """How an ffmpeg (by what `ffmpeg -version` says) reads a filter graph from a file:
    `-/filter_complex` from ffmpeg 7 on (8 dropped `-filter_complex_script`), and git builds
    (`N-...`); `-filter_complex_script` before."""
    found = re.match(r"ffmpeg version (N-|n?(\d+)\.)", version)
    modern = found is not None and (found.group(1) == "N-" or int(found.group(2)) >= 7)
    return "-/filter_complex" if modern else "-filter_complex_script"


@contextlib.contextmanager
def graph_in_file(args: list[str]) -> Iterator[list[str]]:
    """`args` with their filter graph in a file: a film with thousands of text layers has a
    graph larger than the kernel lets one argument be (128 KB)."""
    if "-filter_complex" not in args:
        yield args
        return
    at = args.index("-filter_complex")
    with tempfile.TemporaryDirectory(prefix="storyboard-graph-") as folder:
        script = Path(folder) / "graph.txt"
        script.write_text(args[at + 1], encoding="utf-8")
        yield [*args[:at], _script_option(), str(script), *args[at + 2 :]]


def _ffmpeg_failure(what: str, code: int, tail: StderrTail) -> str:
    return f"ffmpeg failed to {what}: {tail.last_lines() or f'exit code {code}'}"


def run_ffmpeg(args: list[str], what: str, timeout: float = FFMPEG_SECONDS) -> None:
    """Run ffmpeg to completion within `timeout` seconds; its last error lines become a
    MediaError. It dies with this process, and only the tail of what it says is kept."""
    with graph_in_file(args) as given:
        _run_ffmpeg(given, what, timeout)


def ffmpeg_report(args: list[str], what: str, timeout: float = FFMPEG_SECONDS) -> str:
    """`run_ffmpeg`, and the last STDERR_TAIL bytes of what its filters report (at ffmpeg's
    `info` level): the summary a measuring filter prints as it closes."""
    with graph_in_file(args) as given:
        return _run_ffmpeg(given, what, timeout, "info")


def _run_ffmpeg(args: list[str], what: str, timeout: float, level: str = "error") -> str:
    process = subprocess.Popen(
        _ffmpeg_command(args, level),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=dies_with_parent(),
    )
    tail = StderrTail()
    reader = threading.Thread(target=tail.drain, args=(process.stderr,), daemon=True)
    reader.start()
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise MediaError(f"ffmpeg took longer than {timeout:g} s to {what}: stopped") from None
    finally:
        if process.returncode is None:
            process.kill()
            process.wait()
        reader.join()
        process.stderr.close()  # type: ignore[union-attr]
    if code != 0:
        raise MediaError(_ffmpeg_failure(what, code, tail))
    return tail.data.decode(errors="replace")


_SUMMARY = {
    "integrated": r"Integrated loudness:\s+I:\s+(\S+) LUFS",
    "threshold": r"Integrated loudness:\s+I:\s+\S+ LUFS\s+Threshold:\s+(\S+) LUFS",
    "range": r"LRA:\s+(\S+) LU",
    "true_peak": r"True peak:\s+Peak:\s+(\S+) dBFS",
}


def loudness_said(report: str) -> Loudness:
    """The figures of the last summary an `ebur128=peak=true` filter printed in `report`."""
    summary = report[report.rfind("Summary:") :]
    figures = {}
    for name, pattern in _SUMMARY.items():
        found = re.search(pattern, summary)
        if found is None:
            raise MediaError(f"ffmpeg's loudness measure said no {name.replace('_', ' ')}")
        figures[name] = max(float(found.group(1)), FLOOR)
    return Loudness(**figures)


def measure_loudness(path: Path, what: str, timeout: float = FFMPEG_SECONDS) -> Loudness:
    """The loudness of the first sound of a file, measured to EBU R 128 (true peak too)."""
    args = ["-i", str(path), "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-"]
    return loudness_said(ffmpeg_report(args, what, timeout))


async def run_ffmpeg_async(args: list[str], what: str, timeout: float = FFMPEG_SECONDS) -> None:
    """`run_ffmpeg` for the event loop: cancelling it kills ffmpeg."""
    with graph_in_file(args) as given:
        await _run_ffmpeg_async(given, what, timeout)


async def _run_ffmpeg_async(args: list[str], what: str, timeout: float) -> None:
    import asyncio  # here: planning never waits on a child, and asyncio costs 25 ms to load

    process = await asyncio.create_subprocess_exec(
        *_ffmpeg_command(args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=dies_with_parent(),
    )
    tail = StderrTail()

    async def drain() -> None:
        assert process.stderr is not None
        while chunk := await process.stderr.read(4096):
            tail.feed(chunk)

    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(drain(), process.wait())
    except TimeoutError:
        raise MediaError(f"ffmpeg took longer than {timeout:g} s to {what}: stopped") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.returncode != 0:
        raise MediaError(_ffmpeg_failure(what, process.returncode or 0, tail))


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "png", "jpeg" or "webp"
    width: int
    height: int
    bytes: int


def image_header(data: bytes) -> tuple[str, int, int] | None:
    """Format and size from an image's first bytes, for PNG, JPEG and WebP; None otherwise."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[str, int, int] | None:
    """The size in a JPEG's frame header (SOF), found by walking its segments."""
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            width = int.from_bytes(data[at + 7 : at + 9], "big")
            return "jpeg", width, height
        if length < 2:
            return None
        at += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[str, int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
        return "webp", width, height
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return "webp", width, height
    return None


def check_image(data: bytes) -> ImageInfo:
    """An image's format and size, once it is known to decode: a PNG, JPEG or WebP file of
    at most MAX_IMAGE_SIDE pixels a side."""
    header = image_header(data)
    if header is None:
        raise MediaError("is not a PNG, JPEG or WebP image")
    kind, width, height = header
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise MediaError(
            f"is a {IMAGE_FORMATS[kind]} of {width}x{height} pixels: over the "
            f"{MAX_IMAGE_SIDE} px a side this tool decodes, or empty"
        )
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            stream.codec_context.options = {"err_detect": "explode"}  # no concealment
            frame = next(container.decode(stream))
    except (av.FFmpegError, OSError, IndexError, ValueError, StopIteration) as exc:
        raise MediaError(
            f"is a {IMAGE_FORMATS[kind]} that does not decode ({_reason(exc)})"
        ) from None
    if (frame.width, frame.height) != (width, height):
        raise MediaError(
            f"says it is {width}x{height} pixels and decodes as {frame.width}x{frame.height}"
        )
    return ImageInfo(kind, width, height, len(data))


def still_info(path: Path) -> ClipInfo:
    """A still's facts in a clip's terms (no length, no rate), once it is known to decode."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MediaError(f"{path.name}: cannot be read ({exc.strerror})") from None
    try:
        image = check_image(data)
    except MediaError as exc:
        raise MediaError(f"{path.name}: {exc.message}") from None
    return ClipInfo(0.0, image.width, image.height, 0.0, image.format, "", "", "", frames=1)


Taken = dict[str | float, tuple[Path, str]]  # frame -> its PNG and pixel hash


def check_render(
    path: Path,
    output: Output,
    wanted: Collection[str | float] = (),
    asked: tuple[int, int, float] | None = None,
    watch: Watch | None = None,
) -> tuple[ClipInfo, Taken]:
    """A render's output checked by what it holds: an image decodes as one, sound to its
    end; a video decodes to its end (exactly `asked`: width, height, seconds, when given),
    and the frames other shots start from are taken in the same pass, written beside it as
    `<path>.<frame>.png`. With `watch`, what the quality check reads is measured in the same
    pass (`info.signals`: a picture's frames; a sound, or a clip's sound, decoded for it)."""
    match output:
        case Output.IMAGE:
            info = still_info(path)
            return (info if watch is None else replace(info, signals=Signals())), {}
        case Output.AUDIO:
            info = sound_info(path, watch is not None and watch.sound)
            checked = watch is not None and info.signals is None
            return (replace(info, signals=Signals()) if checked else info), {}
        case Output.VIDEO:
            pass
        case _:
            assert_never(output)
    taker = FrameTaker(wanted) if wanted else None
    width, height, seconds = asked or (None, None, None)
    watcher = PictureWatcher() if watch is not None and watch.picture else None
    info = validate(path, width, height, seconds, taker=taker, watcher=watcher)
    if watch is not None:
        info = replace(info, signals=_watched(path, info, watch))
    if taker is None:
        return info, {}
    try:
        return info, taker.write(path)
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path.name}: its frames could not be taken ({exc})") from None


def _watched(path: Path, info: ClipInfo, watch: Watch) -> Signals:
    """What the check measured of a video: its picture (in the decoding pass), and its
    sound when asked (decoded apart: sound decodes in a fraction of the picture's time)."""
    picture = info.signals.picture if info.signals is not None else None
    if not watch.sound:
        return Signals(picture=picture)
    import av

    try:
        return Signals(picture=picture, sound=listen(path))
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise MediaError(f"{path.name}: its sound does not decode ({_reason(exc)})") from None


def sound_info(path: Path, measure: bool = False) -> ClipInfo:
    """A sound file decoded to its end: its length, in a clip's terms (no picture); with
    `measure`, the level of each block it decodes too (for the quality check)."""
    import av

    listener = SoundListener() if measure else None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path.name}: has no audio stream")
            stream = container.streams.audio[0]
            end = 0.0
            for frame in container.decode(stream):
                if listener is not None:
                    listener.hear(frame)
                if frame.time is not None:
                    end = max(end, frame.time + frame.samples / (frame.sample_rate or 1))
            signature = _audio_signature(stream)
    except (av.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise MediaError(f"{path.name}: is not sound that decodes ({_reason(exc)})") from None
    if end <= 0:
        raise MediaError(f"{path.name}: holds no sound")
    signals = Signals(sound=listener.sound()) if listener is not None else None
    name = stream.codec_context.name
    return ClipInfo(round(end, 3), 0, 0, 0.0, name, "", "", signature, signals=signals)


def check_audio(source: Path | BinaryIO, seconds: float = 2.0) -> None:
    """That a file (a path, or a file open for reading) holds sound that decodes: its first
    `seconds` are decoded."""
    import av

    try:
        with av.open(str(source) if isinstance(source, Path) else source, mode="r") as container:
            if not container.streams.audio:
                raise MediaError("has no audio stream")
            stream = container.streams.audio[0]
            decoded = 0
            for frame in container.decode(stream):
                decoded += 1
                if frame.time is not None and frame.time >= seconds:
                    break
    except (av.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise MediaError(f"is not audio that decodes ({_reason(exc)})") from None
    if not decoded:
        raise MediaError("has an audio stream with no sound in it")


class FrameTaker:
    """Keeps the frames that shots start from (`first`, `last`, or the frame shown at a
    time in seconds) while a clip is decoded, so that checking a clip and taking its frames
    decode it once."""

    def __init__(self, wanted: Collection[str | float]) -> None:
        self.wanted = tuple(dict.fromkeys(wanted))
        self.kept: dict[str | float, Any] = {}
        self.last: Any = None

    def see(self, frame: Any) -> None:
        if self.last is None and "first" in self.wanted:
            self.kept["first"] = frame
        for at in self.wanted:
            if isinstance(at, int | float) and frame.time is not None and frame.time <= at + 1e-6:
                self.kept[at] = frame  # the frame on screen at `at`: the last to start by then
        self.last = frame

    def write(self, stem: Path) -> dict[str | float, tuple[Path, str]]:
        """Each frame as a lossless PNG (`<stem>.<frame>.png`) and the sha256 of its decoded
        pixels. The hash is of the frame as the decoder gives it (H.264 decoding is exact),
        not of the PNG's bytes, which depend on the encoder's version: two machines agree on
        it, so a shot that starts from this frame has one key on both."""
        if self.last is None:
            raise ValueError("the clip has no frames")
        taken = {}
        for at in self.wanted:
            frame = self.last if at == "last" else self.kept.get(at, self.last)
            image = stem.with_name(f"{stem.name}.{at}.png")
            image.write_bytes(_png(frame))
            taken[at] = (image, _pixel_hash(frame))
        return taken


def extract_frame(clip: Path, at: str | float, output: Path) -> str:
    """Write one frame of a clip as a lossless PNG at `output`; return its pixel hash."""
    import av

    taker = FrameTaker((at,))
    try:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            if at == "last" and stream.duration and stream.time_base:
                # From the keyframe a second before the end: the last frame decoded is the last.
                end = float(stream.duration * stream.time_base)
                container.seek(int(max(0.0, end - 1.0) / stream.time_base), stream=stream)
            for frame in container.decode(stream):
                taker.see(frame)
                if at == "first" or (isinstance(at, int | float) and (frame.time or 0) > at):
                    break
            image, digest = taker.write(output)[at]
    except (av.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise MediaError(f"{clip.name}: no frame could be taken ({_reason(exc)})") from None
    os.replace(image, output)
    return digest


def _png(frame: Any) -> bytes:
    import av

    rgb = frame.reformat(format="rgb24")
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = rgb.width, rgb.height, "rgb24"
    return b"".join(bytes(p) for p in [*encoder.encode(rgb), *encoder.encode(None)])


def _pixel_hash(frame: Any) -> str:
    """The sha256 of a frame's pixels, row by row without the decoder's padding. A frame in
    another layout than yuv420p (rare in H.264) is converted to rgb24 first."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="rgb24")
    sample = 3 if frame.format.name == "rgb24" else 1
    digest = hashlib.sha256(f"{frame.format.name}:{frame.width}x{frame.height}".encode())
    for plane in frame.planes:
        data = memoryview(plane)
        used = plane.width * sample
        for line in range(plane.height):
            start = line * plane.line_size
            digest.update(data[start : start + used])
    return digest.hexdigest()
