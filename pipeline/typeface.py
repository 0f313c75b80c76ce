"""Fonts for text drawn on films and previews: found by file or by family, and checked to hold
a glyph for every character before anything is spent.

A font named by file is a project file like any other the storyboard reads. A family is
looked up through fontconfig (`fc-match`), when the machine has it. Without a font, the
bundled DejaVu Sans is used: Latin, Greek and Cyrillic, no CJK.
"""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import hashing

BUNDLED = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"


class FontProblem(ValueError):
    """A font that cannot be found or read; the message says which and why."""


@dataclass
class Fonts:
    """Fonts of one expansion, each found, read and hashed once."""

    maps: dict[Path, frozenset[int]] = field(default_factory=dict)
    digests: dict[Path, str] = field(default_factory=dict)
    families: dict[str, Path] = field(default_factory=dict)
    advances: dict[Path, tuple[float, dict[int, int]]] = field(default_factory=dict)
    found: dict[str, list[Path]] = field(default_factory=dict)  # by the characters asked

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
            self.maps[font] = _character_map(font)
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
            self.advances[font] = _advances(font)
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


def _character_map(font: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont, TTLibError

    try:
        with TTFont(font, fontNumber=0, lazy=True) as opened:
            cmap = opened.getBestCmap()
    except (TTLibError, OSError, KeyError, ValueError, AssertionError) as exc:
        raise FontProblem(f"'{font.name}' is not a font fontTools can read ({exc})") from None
    if not cmap:
        raise FontProblem(f"'{font.name}' has no character map")
    return frozenset(cmap)


def _advances(font: Path) -> tuple[float, dict[int, int]]:
    """1/units-per-em, and each character's advance width in font units."""
    from fontTools.ttLib import TTFont, TTLibError

    try:
        with TTFont(font, fontNumber=0, lazy=True) as opened:
            metrics = opened["hmtx"].metrics
            advances = {code: metrics[name][0] for code, name in opened.getBestCmap().items()}
            return 1.0 / opened["head"].unitsPerEm, advances
    except (TTLibError, OSError, KeyError, ValueError, AssertionError) as exc:
        raise FontProblem(f"'{font.name}' has no metrics fontTools can read ({exc})") from None


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
