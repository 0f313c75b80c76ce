"""Fonts for text drawn on films and previews: found by file or by family, and checked to hold
a glyph for every character before anything is spent.

A font named by file is a project file like any other the storyboard reads, and untrusted
input like an image: it is read bounded and rewritten by the OpenType Sanitizer (OTS, the
browsers' answer to hostile fonts, from the `opentype-sanitizer` package) before fontTools
or ffmpeg reads it, and only that copy is read (WOFF and WOFF2 come out as plain fonts, a
collection as its first font). A family is looked up through fontconfig (`fc-match`), when
the machine has it: the machine's own fonts are trusted. Without a font, the bundled DejaVu
Sans is used: Latin, Greek and Cyrillic, no CJK.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import hashing
from pipeline.cache.files import copy_new, partial_name
from pipeline.media import StderrTail, dies_with_parent
from pipeline.project import MAX_FONT_BYTES, OutsideProject, read_bounded

BUNDLED = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"
SANITIZE_SECONDS = 20.0
SANITIZE_MEMORY = 1 << 30  # address space of the sanitizer


class FontProblem(ValueError):
    """A font that cannot be found or read; the message says which and why."""


@dataclass
class Fonts:
    """Fonts of one expansion, each found, read and hashed once. `store`: where sanitized
    copies of project fonts are kept, by the sha256 of the file given (the cache's fonts/);
    a temporary folder when there is none, or it cannot be written."""

    store: Path | None = None
    maps: dict[Path, frozenset[int]] = field(default_factory=dict)
    digests: dict[Path, str] = field(default_factory=dict)
    families: dict[str, Path] = field(default_factory=dict)
    advances: dict[Path, tuple[float, dict[int, int]]] = field(default_factory=dict)
    found: dict[str, list[Path]] = field(default_factory=dict)  # by the characters asked
    sanitized: dict[Path, Path] = field(default_factory=dict)  # a project font -> its copy
    names: dict[Path, str] = field(default_factory=dict)  # a copy -> the font as named

    def project(self, path: Path, name: str) -> Path:
        """The sanitized copy of a project font file: what is drawn with and measured. Its
        digest is the file's as given, so a film's key does not follow the sanitizer's
        version."""
        if path not in self.sanitized:
            try:
                data = read_bounded(path, MAX_FONT_BYTES, name)
            except OutsideProject as exc:
                raise FontProblem(str(exc)) from None
            digest = hashing.sha256_bytes(data)
            copy = self._sanitized(data, digest, name)
            self.digests[copy] = digest
            self.names[copy] = name
            self.sanitized[path] = copy
        return self.sanitized[path]

    def name(self, font: Path) -> str:
        """A font as people named it: a project font by its name in the storyboard, not its
        sanitized copy's."""
        return self.names.get(font, font.name)

    def _sanitized(self, data: bytes, digest: str, name: str) -> Path:
        copy = self._store() / f"{digest}.font"
        if not copy.is_file():
            try:
                sanitize(data, copy, name)
            except OSError as exc:
                raise FontProblem(
                    f"'{name}': its sanitized copy cannot be written to {copy.parent} "
                    f"({exc.strerror or exc})"
                ) from None
        return copy

    def _store(self) -> Path:
        """The cache's fonts/ folder; a private temporary one when it cannot be written."""
        if self.store is None or not _writable(self.store):
            self.store = Path(tempfile.mkdtemp(prefix="storyboard-fonts-"))
        return self.store

    def family(self, name: str) -> Path:
        """The file of a font family, as fontconfig knows it."""
        if name not in self.families:
            self.families[name] = _fc_match(name)
        return self.families[name]

    def covering(self, characters: list[str]) -> list[Path]:
        """Fonts of this machine (fontconfig) that have all of `characters`."""
        wanted = " ".join(f"{ord(c):x}" for c in characters[:32])
        if wanted not in self.found:
            self.found[wanted] = _fc_list(wanted)
        return self.found[wanted]

    def missing(self, font: Path, text: str) -> list[str]:
        """The characters of `text` that `font` has no glyph for (spaces and line breaks
        need none), each once, in order."""
        if font not in self.maps:
            self.maps[font] = _character_map(font, self.name(font))
        covered = self.maps[font]
        gaps = (c for c in text if ord(c) not in covered and not _needs_no_glyph(c))
        return list(dict.fromkeys(gaps))

    def fit(self, font: Path, text: str, size: int, width: float) -> tuple[str, int]:
        """`text` broken into lines (at spaces) that are at most `width` pixels wide at
        `size` pixels, and the size, made smaller only when one word alone is wider."""
        lines: list[str] = []
        for line in text.split("\n"):
            words = line.split(" ")
            current = words[0]
            for word in words[1:]:
                if self.width(font, f"{current} {word}", size) <= width:
                    current = f"{current} {word}"
                else:
                    lines.append(current)
                    current = word
            lines.append(current)
        widest = max(self.width(font, line, size) for line in lines)
        if widest > width:
            size = max(int(size * width / widest), 8)
        return "\n".join(lines), size

    def width(self, font: Path, line: str, size: int) -> float:
        """Pixels `line` takes at `size` pixels: the glyphs' advances (kerning aside, so a
        little more than drawn)."""
        if font not in self.advances:
            self.advances[font] = _advances(font, self.name(font))
        per_unit, advances = self.advances[font]
        units = sum(advances.get(ord(c), advances.get(0, 0)) for c in line)
        return units * per_unit * size * 1.02

    def digest(self, font: Path) -> str:
        if font not in self.digests:
            self.digests[font] = hashing.sha256_file(font)
        return self.digests[font]


def covering(text: str, fonts: Fonts) -> tuple[Path, list[str]]:
    """The font that draws most of `text`: the bundled one when it draws it all, else the
    font fontconfig finds with the fewest gaps; and what that font still lacks."""
    missing = fonts.missing(BUNDLED, text)
    best, gaps = BUNDLED, missing
    if missing:
        for candidate in fonts.covering(missing):
            try:
                lacking = fonts.missing(candidate, text)
            except FontProblem:
                continue
            if len(lacking) < len(gaps):
                best, gaps = candidate, lacking
            if not gaps:
                break
    return best, gaps


def describe(characters: list[str]) -> str:
    """`'東' (U+6771), '京' (U+4EAC)`: characters as a person can find them."""
    shown = [f"'{c}' (U+{ord(c):04X})" for c in characters[:8]]
    more = f" and {len(characters) - 8} more" if len(characters) > 8 else ""
    return ", ".join(shown) + more


def _needs_no_glyph(character: str) -> bool:
    return character.isspace() or unicodedata.category(character) in ("Cc", "Cf")


def sanitize(data: bytes, target: Path, name: str) -> None:
    """Write `data` (a font file's bytes) to `target` as the OpenType Sanitizer rewrites it,
    within SANITIZE_SECONDS and SANITIZE_MEMORY; a font it refuses is a FontProblem saying
    why. OSError: `target`'s folder cannot be written."""
    try:
        import ots
    except ImportError:
        raise FontProblem(
            f"'{name}': fonts are sanitized before use, and the sanitizer is not installed "
            "(pip install opentype-sanitizer)"
        ) from None
    with tempfile.TemporaryDirectory(prefix="storyboard-font-") as folder:
        source, output = Path(folder) / "given", Path(folder) / "sanitized"
        source.write_bytes(data)
        # A collection: its first font, as fontTools and ffmpeg read it (index 0).
        index = ["0"] if data[:4] == b"ttcf" else []
        _run_sanitizer([ots.OTS_SANITIZE, str(source), str(output), *index], name)
        # Renamed into place: a copy there is whole (a killed build's partial file carries
        # its pid, and the cache removes it).
        partial = partial_name(target)
        try:
            copy_new(output, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


def _run_sanitizer(command: list[str], name: str) -> None:
    arrange = dies_with_parent()

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (SANITIZE_MEMORY, SANITIZE_MEMORY))
        if arrange is not None:
            arrange()

    tail = StderrTail()
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=SANITIZE_SECONDS,
            preexec_fn=limited,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise FontProblem(
            f"'{name}': the font sanitizer took longer than {SANITIZE_SECONDS:g} s: not used"
        ) from None
    if done.returncode != 0:
        tail.feed(done.stdout + done.stderr)
        problems = [
            line.removeprefix("ERROR: ")
            for line in tail.last_lines(8).split(" / ")
            if "sanitiz" not in line.lower()
        ]
        said = "; ".join(problems[:2]) or f"exit code {done.returncode}"
        raise FontProblem(f"'{name}' is not a font the sanitizer accepts ({said})")


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def _character_map(font: Path, name: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    try:
        with TTFont(font, fontNumber=0, lazy=True) as opened:
            cmap = opened.getBestCmap()
    except Exception as exc:  # fontTools' parsers raise almost anything on a damaged table
        raise FontProblem(f"'{name}' is not a font fontTools can read ({exc})") from None
    if not cmap:
        raise FontProblem(f"'{name}' has no character map")
    return frozenset(cmap)


def _advances(font: Path, name: str) -> tuple[float, dict[int, int]]:
    """1/units-per-em, and each character's advance width in font units."""
    from fontTools.ttLib import TTFont

    try:
        with TTFont(font, fontNumber=0, lazy=True) as opened:
            metrics = opened["hmtx"].metrics
            advances = {code: metrics[glyph][0] for code, glyph in opened.getBestCmap().items()}
            return 1.0 / opened["head"].unitsPerEm, advances
    except Exception as exc:  # as above
        raise FontProblem(f"'{name}' has no metrics fontTools can read ({exc})") from None


def _fc_list(charset: str) -> list[Path]:
    if shutil.which("fc-list") is None:
        return []
    try:
        listed = subprocess.run(
            ["fc-list", "--format=%{file}\n", f":charset={charset}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = (Path(line) for line in sorted(set(listed.splitlines())) if line)
    return [f for f in files if f.suffix.lower() in (".ttf", ".otf", ".ttc", ".otc")]


def _fc_match(family: str) -> Path:
    if shutil.which("fc-match") is None:
        raise FontProblem(
            f"font family '{family}' cannot be looked up: this machine has no fontconfig (fc-match)"
        )
    try:
        found = subprocess.run(
            ["fc-match", "--format=%{family}\n%{file}", family],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise FontProblem(f"font family '{family}' cannot be looked up ({exc})") from None
    names, _, file = found.partition("\n")
    # fc-match answers every request with its nearest font: only the family asked for counts.
    wanted = family.casefold()
    if not file or not any(wanted == name.strip().casefold() for name in names.split(",")):
        raise FontProblem(f"no font family '{family}' on this machine (fc-list lists them)")
    return Path(file)
