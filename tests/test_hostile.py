"""Hostile storyboards, as a colleague, an agency or a pull request may bring them.

Each one is planned by the real command in a child process under prlimit (2 GB of address
space, 20 s of CPU), on a machine whose environment holds an API key and beside a `.env`
holding it too. Each must end with exit code 2 and one located line (`path:line:col:`), no
traceback, in bounded time, and no byte of the key or of /etc/passwd in anything printed or
written.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.forked import forked_pool, run_cli

SENTINEL = "sk-sentinel-4f1d-DO-NOT-LEAK"
PASSWD = "root:x:0:0"  # the first line of /etc/passwd on every Linux this runs on
SPEC = "specs/h.yaml"
HEAD = "version: 1\nname: h\n"
ONE_SHOT = "shots:\n  - id: a\n    prompt: a lighthouse at dusk\n"


def with_prompt(prompt: str, extra: str = "") -> str:
    """A storyboard of one shot whose inline prompt is `prompt` (a YAML single-quoted string:
    templates use double quotes inside)."""
    quoted = prompt.replace("'", "''")
    return HEAD + extra + f"shots:\n  - id: a\n    prompt: '{quoted}'\n"


def with_sequence(entry: str, extra: str = "") -> str:
    return HEAD + ONE_SHOT + f"sequences:\n  - id: s\n    shots: [{entry}]\n{extra}"


def png(width: int, height: int) -> bytes:
    """A real grey PNG."""
    row = b"\x00" + b"\x80" * width
    data = zlib.compress(row * height)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def alias_bomb(levels: int) -> str:
    lines = ["vars:", "  l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        items = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"  l{level}: &l{level} [{items}]")
    return HEAD + "\n".join(lines) + "\n" + ONE_SHOT


# The CPU time a hostile storyboard may cost before it is refused: the longest (a template
# at its limit of 2 s) takes 2.1 s here. The kernel stops a run at 20 s (RLIMIT_CPU below).
CPU_SECONDS = 10.0
RAINCOAT = (REPO / "specs" / "assets" / "raincoat.jpg").read_bytes()
NUMBERS = "[" + ", ".join(str(n) for n in range(2000)) + "]"
FONT = (REPO / "specs" / "fonts" / "DroidSansFallback-subset.ttf").read_bytes()


def _sfnt_tables(data: bytes) -> dict[bytes, tuple[int, int, int]]:
    """A TrueType font's tables: tag -> (index in the directory, offset, length)."""
    count = struct.unpack(">H", data[4:6])[0]
    found = {}
    for index in range(count):
        tag, _, offset, length = struct.unpack(">4sIII", data[12 + 16 * index : 28 + 16 * index])
        found[tag] = (index, offset, length)
    return found


def short_table(tag: bytes, length: int) -> bytes:
    """The font with one table's length cut short in its directory: a damaged table."""
    data = bytearray(FONT)
    index = _sfnt_tables(FONT)[tag][0]
    struct.pack_into(">I", data, 12 + 16 * index + 12, length)
    return bytes(data)


def woff(table_data: bytes | None = None, claimed: int | None = None) -> bytes:
    """The font as a WOFF whose first table is `table_data` (zlib data) claiming to inflate
    to `claimed` bytes: a table that does not inflate, or one that inflates to gigabytes."""
    tables = _sfnt_tables(FONT)
    entries, body = [], b""
    offset = 44 + 20 * len(tables)
    for number, (tag, (_, start, length)) in enumerate(sorted(tables.items())):
        raw = FONT[start : start + length]
        packed = zlib.compress(raw)
        stored, original = (packed, length) if len(packed) < length else (raw, length)
        if number == 0 and table_data is not None:
            stored, original = table_data, claimed or length
        entries.append(struct.pack(">4sIIII", tag, offset + len(body), len(stored), original, 0))
        body += stored + b"\0" * (-len(stored) % 4)
    total = offset + len(body)
    header = struct.pack(
        ">4sIIHHIHHIIIII",
        b"wOFF",
        0x00010000,
        total,
        len(tables),
        0,
        len(FONT),
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    )
    return header + b"".join(entries) + body


def with_font(font: str) -> str:
    """A storyboard whose film draws a text layer in `font`."""
    return with_sequence("a", f"    text:\n      - {{text: Hello, font: '{font}'}}\n")


def with_frame(frame: str) -> str:
    """A storyboard whose second shot starts from a frame of the first (6 s long)."""
    return (
        HEAD
        + ONE_SHOT
        + f"  - id: b\n    prompt: the light turns\n    first_frame: {{shot: a, frame: {frame}}}\n"
    )


@dataclass(frozen=True)
class Case:
    spec: str  # the storyboard's text (or bytes)
    message: str | tuple[str, ...]  # what the error line says (or one of these)
    files: dict[str, str | bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # path -> target
    fifos: tuple[str, ...] = ()
    where: str = SPEC  # the file the error names
    max_shots: int | None = None
    sparse: dict[str, int] = field(default_factory=dict)  # path -> size, of files of zeros


CASES: dict[str, Case] = {
    # -- the project is the boundary ----------------------------------------------------------
    "templates folder far above": Case(
        HEAD
        + "templates: ../../../../../../..\n"
        + with_prompt('{% include "proc/self/environ" %}')[len(HEAD) :],
        "templates: '../../../../../../..' is outside the project",
    ),
    "templates folder absolute": Case(
        HEAD + "templates: /\n" + ONE_SHOT, "templates: '/' is outside the project"
    ),
    "templates folder list with /etc": Case(
        HEAD + "templates: [../templates, /etc]\n" + ONE_SHOT, "templates: '/etc' is outside"
    ),
    "templates folder is a link to /etc": Case(
        HEAD + "templates: etc-link\n" + ONE_SHOT,
        "goes through a link to outside the project",
        links={"specs/etc-link": "/etc"},
    ),
    "include environ by absolute name": Case(
        with_prompt('{% include "/proc/self/environ" %}'),
        "may not start with / or hold ..",
    ),
    "include passwd by dot-dot": Case(
        with_prompt('{% include "../../../../../../etc/passwd" %}'),
        "may not start with / or hold ..",
    ),
    "import passwd": Case(
        with_prompt('{% import "/etc/passwd" as p %}{{ p }}'), "may not start with / or hold .."
    ),
    "extends outside": Case(
        with_prompt('{% extends "../.env" %}'), "may not start with / or hold .."
    ),
    "include a link to passwd": Case(
        with_prompt('{% include "pw.j2" %}'),
        "goes through a link to outside the project",
        links={"templates/pw.j2": "/etc/passwd"},
    ),
    "template field is a link to passwd": Case(
        HEAD + "shots:\n  - id: a\n    template: pw.j2\n",
        "goes through a link to outside the project",
        links={"templates/pw.j2": "/etc/passwd"},
    ),
    "template in a linked folder": Case(
        with_prompt('{% include "etc/passwd" %}'),
        "goes through a link to outside the project",
        links={"templates/etc": "/etc"},
    ),
    "include the .env beside the storyboard": Case(
        with_prompt('{% include ".env" %}'), "template '.env' not found", files={"specs/.env": "K"}
    ),
    "templates folder is the storyboard's, .env in it": Case(
        HEAD + "templates: .\n" + with_prompt('{% include ".env" %}')[len(HEAD) :],
        "is a hidden file or folder ('.env')",
        files={"specs/.env": f"RUNWARE_API_KEY={SENTINEL}\n"},
    ),
    "include from a hidden folder": Case(
        with_prompt('{% include ".private/key.j2" %}'),
        "is a hidden file or folder ('.private')",
        files={"templates/.private/key.j2": SENTINEL},
    ),
    "include a hidden link to .git": Case(
        with_prompt('{% include "git-config.j2" %}'),
        "is a hidden file or folder ('.git')",
        files={".git/config": f"token = {SENTINEL}\n"},
        links={"templates/git-config.j2": "../.git/config"},
    ),
    "include a named pipe": Case(
        with_prompt('{% include "pipe.j2" %}'),
        "'pipe.j2' is not a regular file (a named pipe)",
        fifos=("templates/pipe.j2",),
    ),
    "include a folder": Case(
        with_prompt('{% include "sub" %}'),
        "'sub' is not a regular file (a folder)",
        files={"templates/sub/x.j2": "x"},
    ),
    "first frame environ": Case(
        HEAD + ONE_SHOT + "    first_frame: /proc/self/environ\n",
        "'/proc/self/environ' is outside the project",
    ),
    "first frame dot-dot passwd": Case(
        HEAD + ONE_SHOT + "    first_frame: ../../../../../../../etc/passwd\n",
        "is outside the project",
    ),
    "first frame link to passwd": Case(
        HEAD + ONE_SHOT + "    first_frame: assets/frame.jpg\n",
        "goes through a link to outside the project",
        links={"specs/assets/frame.jpg": "/etc/passwd"},
    ),
    "first frame in defaults, link to environ": Case(
        HEAD + "defaults: {first_frame: assets/frame.png}\n" + ONE_SHOT,
        "goes through a link to outside the project",
        links={"specs/assets/frame.png": "/proc/self/environ"},
    ),
    "first frame named pipe": Case(
        HEAD + ONE_SHOT + "    first_frame: assets/pipe.jpg\n",
        "'assets/pipe.jpg' is not a regular file (a named pipe)",
        fifos=("specs/assets/pipe.jpg",),
    ),
    "first frame a folder": Case(
        HEAD + ONE_SHOT + "    first_frame: assets\n",
        "'assets' is not a regular file (a folder)",
        files={"specs/assets/x.txt": "x"},
    ),
    "first frame hidden": Case(
        HEAD + ONE_SHOT + "    first_frame: .env\n",
        "is a hidden file or folder ('.env')",
        files={"specs/.env": f"RUNWARE_API_KEY={SENTINEL}\n"},
    ),
    "first frame link loop": Case(
        HEAD + ONE_SHOT + "    first_frame: assets/loop.jpg\n",
        "cannot be resolved",
        links={"specs/assets/loop.jpg": "loop.jpg"},
    ),
    "first frame empty name": Case(HEAD + ONE_SHOT + "    first_frame: ''\n", "is not a file name"),
    "audio is passwd": Case(
        with_sequence("a", "    audio: /etc/passwd\n"), "'/etc/passwd' is outside the project"
    ),
    "audio named pipe": Case(
        with_sequence("a", "    audio: score.m4a\n"),
        "'score.m4a' is not a regular file (a named pipe)",
        fifos=("specs/score.m4a",),
    ),
    "include passwd": Case(
        HEAD + "include: /etc/passwd\n" + ONE_SHOT, "include: '/etc/passwd' is outside the project"
    ),
    "storyboard include of a named pipe": Case(
        HEAD + "include: [shared.yaml]\n" + ONE_SHOT,
        "include: 'shared.yaml' is not a regular file (a named pipe)",
        fifos=("specs/shared.yaml",),
    ),
    "include itself": Case(
        HEAD + "include: h.yaml\n" + ONE_SHOT, "include: a loop (h.yaml -> h.yaml)"
    ),
    "include the .env": Case(
        HEAD + "include: ../.env\n" + ONE_SHOT, "is a hidden file or folder ('.env')"
    ),
    "first frame on the private network": Case(
        HEAD + ONE_SHOT + "    first_frame: https://127.0.0.1/metadata.jpg\n",
        "names a host on a private network (127.0.0.1 is 127.0.0.1)",
    ),
    "first frame by plain http": Case(
        HEAD + ONE_SHOT + "    first_frame: http://example.com/x.jpg\n",
        "only a frame image may be a URL, and only https://",
    ),
    # -- YAML is bounded ----------------------------------------------------------------------
    "alias bomb": Case(alias_bomb(9), "YAML aliases expand to more than 100,000 values"),
    "small alias bomb": Case(alias_bomb(7), "YAML aliases expand to more than 100,000 values"),
    "recursive alias": Case(HEAD + "shots: &x\n  - *x\n", "recursive YAML alias"),
    "deep flow nesting": Case(
        HEAD + "vars: {x: " + "[" * 100_000 + "]" * 100_000 + "}\n" + ONE_SHOT,
        "nest",  # libyaml's own limit may speak first: "exceeded maximum nesting depth"
    ),
    "deep block nesting": Case(
        HEAD + "vars:\n" + "".join(" " * (i + 2) + f"k{i}:\n" for i in range(200)) + ONE_SHOT,
        "the storyboard has nested deeper than 64 levels",
    ),
    "too many values": Case(
        HEAD + "vars: {x: [" + "1," * 300_000 + "1]}\n" + ONE_SHOT,
        "the storyboard has more than 250,000 values",
    ),
    "larger than 4 MB": Case(
        HEAD + "vars: {x: '" + "a" * 4_100_000 + "'}\n" + ONE_SHOT,
        "larger than 4,000,000 bytes",
    ),
    "python object tag": Case(
        HEAD + "vars: {x: !!python/object/apply:os.system [id]}\n" + ONE_SHOT,
        "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not supported",
    ),
    "set tag": Case(HEAD + "shots: !!set {a, b}\n", "YAML tag 'tag:yaml.org,2002:set'"),
    "binary tag": Case(
        HEAD + "vars: {x: !!binary aGVsbG8=}\n" + ONE_SHOT, "YAML tag 'tag:yaml.org,2002:binary'"
    ),
    "local tag": Case(HEAD + "vars: {x: !secret key}\n" + ONE_SHOT, "YAML tag '!secret'"),
    "norway": Case(
        HEAD + "matrix: {lang: [en, no]}\n" + with_prompt("hello in {{ lang }}")[len(HEAD) :],
        "'no' is read by YAML 1.1 as the boolean false, not as the text 'no'",
    ),
    "on and off": Case(
        HEAD + "vars: {light: on}\n" + ONE_SHOT,
        "'on' is read by YAML 1.1 as the boolean true",
    ),
    "sexagesimal": Case(
        HEAD + "vars: {runtime: 1:30}\n" + ONE_SHOT, "'1:30' is read by YAML 1.1 as the number 90"
    ),
    "octal": Case(
        HEAD + "vars: {code: 0755}\n" + ONE_SHOT, "'0755' is read by YAML 1.1 as the number 493"
    ),
    "duplicate key": Case(HEAD + "name: again\n" + ONE_SHOT, "duplicate key 'name'"),
    "merge of a scalar": Case(
        HEAD + "defaults:\n  <<: 5\n" + ONE_SHOT, "a merge key (<<) takes a mapping"
    ),
    "merge key as a value": Case(HEAD + "vars: {x: <<}\n" + ONE_SHOT, "'<<' merges a mapping"),
    "not utf-8": Case(HEAD + "vars: {x: caf\udce9}\n" + ONE_SHOT, "not UTF-8 text"),
    "two documents": Case(HEAD + ONE_SHOT + "---\n" + HEAD + ONE_SHOT, "invalid YAML"),
    "a huge integer": Case(
        HEAD + "vars: {x: " + "9" * 5000 + "}\n" + ONE_SHOT, "invalid YAML value"
    ),
    "control character": Case(HEAD + "name: h\x1b[2J\n" + ONE_SHOT, "invalid YAML"),
    # -- templates are pure and bounded ---------------------------------------------------
    "nested range loops": Case(
        with_prompt(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}a"
        ),
        "template limit: loops turned more than 100,000 times",
    ),
    "nested loops over text": Case(
        with_prompt(
            '{% set s = "x" * 1000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}a'
        ),
        "template limit: loops turned more than 100,000 times",
    ),
    "text times ten billion": Case(
        with_prompt("{{ 'a' * 10**10 }}"), "repeating 1 items 10,000,000,000 times"
    ),
    "list times a billion": Case(
        with_prompt("{{ [1, 2] * 10**9 }}"), "repeating 2 items 1,000,000,000 times"
    ),
    "center ten billion": Case(
        with_prompt("{{ 'a'|center(10**10) }}"), "'center' given 10,000,000,000"
    ),
    "star format filter": Case(
        with_prompt("{{ '%*s'|format(10**9, 'x') }}"), "'format' given 1,000,000,000"
    ),
    "star format operator": Case(
        with_prompt("{{ '%*s' % (10**9, 'x') }}"), "'format' given 1,000,000,000"
    ),
    "format width": Case(
        with_prompt("{{ '{:>999999999}'.format('x') }}"), "a format width over 100,000"
    ),
    "indent many lines": Case(
        with_prompt("{{ ('x\\n' * 50000)|indent(100000) }}"), "'indent' would make"
    ),
    "replace grows": Case(
        with_prompt("{{ ('x' * 1000)|replace('x', 'y' * 1000) }}"), "'replace' would make"
    ),
    "join grows": Case(
        with_prompt("{{ (range(50000)|list)|join('-' * 50) }}"), "joining makes over 100,000"
    ),
    "captured block grows": Case(
        with_prompt(
            "{% set x %}{% for i in range(50000) %}{{ 'y' * 90 }}{% endfor %}{% endset %}{{ x }}"
        ),
        "a block of the template makes over 100,000 characters",
    ),
    "namespace doubles": Case(
        with_prompt(
            "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
        ),
        "a value of 131,072 characters or items",
    ),
    "output too long": Case(
        with_prompt("{% for i in range(60000) %}ab{% endfor %}"),
        "the prompt is longer than 100,000 characters",
    ),
    "power tower": Case(with_prompt("{{ 2 ** 100000 }}"), "2 ** 100000 is too large a number"),
    "float overflow": Case(with_prompt("{{ 2.0 ** 100000 }}"), "template error:"),
    "division by zero": Case(with_prompt("{{ 1 / 0 }}"), "template error: division by zero"),
    "a copy the checks do not foresee": Case(
        with_prompt('{% set s = "x" * 99999 %}{{ ([s] * 99000)|string }}'),
        # Ten billion characters: whichever limit it meets first, memory or time.
        ("a template ran out of memory", "the template ran longer than 2 s"),
    ),
    "slow loop": Case(
        with_prompt(
            '{% set s = "x " * 40000 %}{% for i in range(90000) %}'
            "{% if (s|wordcount) < 0 %}x{% endif %}{% endfor %}a"
        ),
        "the template ran longer than 2 s",
    ),
    "macro recursion": Case(
        with_prompt("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(1) }}"),
        "templates nest too deep",
    ),
    "macro doubling its argument": Case(
        with_prompt("{% macro m(s) %}{{ m(s ~ s) }}{% endmacro %}{{ m('ab') }}"),
        "a value of 131,072 characters",
    ),
    "include loop": Case(
        HEAD + "shots:\n  - id: a\n    template: self.j2\n",
        "templates nest too deep",
        files={"templates/self.j2": 'again {% include "self.j2" %}'},
        where="templates/self.j2",
    ),
    "import loop": Case(
        with_prompt('{% import "one.j2" as one %}{{ one.x }}'),
        "templates nest too deep",
        files={
            "templates/one.j2": '{% import "two.j2" as two %}{% set x = 1 %}',
            "templates/two.j2": '{% import "one.j2" as one %}{% set x = 2 %}',
        },
        where="templates/",
    ),
    "extends loop": Case(
        HEAD + "shots:\n  - id: a\n    template: child.j2\n",
        "templates nest too deep",
        files={"templates/child.j2": '{% extends "child.j2" %}'},
        where="templates/child.j2",
    ),
    "random filter": Case(
        with_prompt("{{ ['a', 'b']|random }} lighthouse"), "'random' is not allowed"
    ),
    "lipsum": Case(with_prompt("{{ lipsum(2) }}"), "'lipsum' is not allowed"),
    "random in a template file": Case(
        HEAD + "shots:\n  - id: a\n    template: r.j2\n",
        "'random' is not allowed",
        files={"templates/r.j2": "a\n{{ range(9)|random }} b\n"},
        where="templates/r.j2",
    ),
    "date from a YAML timestamp": Case(
        with_prompt("{{ day.today() }}", "vars: {day: 2024-01-01}\n"),
        "'str object' has no attribute 'today'",
    ),
    "python internals": Case(
        with_prompt("{{ ''.__class__.__mro__[1].__subclasses__() }}"), "not allowed"
    ),
    "mutating the storyboard vars": Case(
        with_prompt("{{ looks.append('x') }}{{ looks }}", "vars: {looks: [a]}\n"),
        "not allowed in a template",
    ),
    "template over 100 KB": Case(
        HEAD + "shots:\n  - id: a\n    template: big.j2\n",
        "larger than 100,000 bytes",
        files={"templates/big.j2": "a " * 60_000},
    ),
    "template not utf-8": Case(
        HEAD + "shots:\n  - id: a\n    template: bin.j2\n",
        "not UTF-8 text",
        files={"templates/bin.j2": b"\xff\xfe\x00binary"},
    ),
    # -- the matrix is bounded --------------------------------------------------------------
    "excludes counted out": Case(
        HEAD
        + "matrix:\n"
        + "".join(f"  axis{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for i in range(5))
        + "  exclude: [{axis0: 0}]\n"
        + ONE_SHOT,
        "the storyboard expands to 90,000 shots",
    ),
    "ten by ten matrix": Case(
        HEAD
        + "matrix:\n"
        + "".join(f"  axis{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for i in range(10))
        + ONE_SHOT,
        "the storyboard expands to 10,000,000,000 shots",
    ),
    "a million variants with excludes": Case(
        HEAD
        + "matrix:\n"
        + "".join(f"  axis{i}: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" for i in range(6))
        + "  exclude: [{axis0: 0}]\n"
        + ONE_SHOT,
        "the storyboard expands to up to 1,000,000 shots",
    ),
    "takes and a shot matrix": Case(
        HEAD
        + "matrix: {light: [a, b, c, d, e, f, g, h, i, j]}\n"
        + "shots:\n  - id: a\n    prompt: x y\n    takes: 16\n"
        + "    matrix: {n: ["
        + ", ".join(str(n) for n in range(100))
        + "]}\n",
        "the storyboard expands to 16,000 shots",
    ),
    "over a lowered limit": Case(
        HEAD + "matrix: {light: [a, b, c]}\n" + ONE_SHOT,
        "over the limit of 2",
        max_shots=2,
    ),
    # -- media and trims are checked before anything is spent -------------------------------
    "first frame is text": Case(
        HEAD + ONE_SHOT + "    first_frame: assets/notes.jpg\n",
        "'assets/notes.jpg' is not a PNG, JPEG or WebP image",
        files={"specs/assets/notes.jpg": "just some words\n"},
    ),
    "first frame claims a billion pixels": Case(
        HEAD + ONE_SHOT + "    first_frame: assets/huge.png\n",
        "is a PNG of 100000x100000 pixels",
        files={"specs/assets/huge.png": png(1, 1)[:16] + struct.pack(">II", 100_000, 100_000)},
    ),
    "first frame truncated": Case(
        HEAD + ONE_SHOT + "    first_frame: assets/half.jpg\n",
        "is a JPEG that does not decode",
        files={"specs/assets/half.jpg": RAINCOAT[: len(RAINCOAT) // 2]},
    ),
    "first frame too small for the model": Case(
        HEAD + ONE_SHOT + "    first_frame: assets/tiny.png\n",
        "is 100x100 px: the model needs 300 px or more a side",
        files={"specs/assets/tiny.png": png(100, 100)},
    ),
    "audio is text": Case(
        with_sequence("a", "    audio: notes.mp3\n"),
        "'notes.mp3' is not audio that decodes",
        files={"specs/notes.mp3": "la la la\n" * 50},
    ),
    "audio is an image": Case(
        with_sequence("a", "    audio: assets/raincoat.jpg\n"),
        "'assets/raincoat.jpg' has no audio stream",
        files={"specs/assets/raincoat.jpg": RAINCOAT},
    ),
    "trim starts past the end": Case(
        with_sequence("{shot: a, in: 7}"), "'in' 7 leaves nothing of 'a' (it ends at 6 s)"
    ),
    "trim ends past the end": Case(
        with_sequence("{shot: a, out: 7}"), "'out' 7 is past the end of 'a' (6 s)"
    ),
    "trim before the start": Case(
        with_sequence("{shot: a, in: -1}"),
        "sequence 's' shots[0].in: -1 is less than 0, the least it may be",
    ),
    "take zero": Case(
        with_sequence("{shot: a, take: 0}"),
        "sequence 's' shots[0].take: 0 is less than 1, the least it may be",
    ),
    "take the shot does not have": Case(
        with_sequence("{shot: a, take: 5}"), "'a' has 1 take(s), not 5"
    ),
    "misspelt entry field": Case(
        with_sequence("{shot: a, inn: 1}"),
        "sequence 's' shots[0]: unknown field 'inn': did you mean 'in'?",
    ),
    "prompt the model refuses": Case(
        with_prompt("word " * 450), "the prompt is 2,249 characters; minimax:4@1 takes 2 to 2,000"
    ),
    "undefined in a block scalar": Case(
        HEAD + "shots:\n  - id: a\n    prompt: |\n      first line\n      {{ nope }}\n",
        "undefined variable 'nope'",
    ),
    # -- fonts are untrusted input: sanitized, bounded, one located line ----------------------
    "font with a short hhea table": Case(
        with_font("fonts/bad.ttf"),
        "'fonts/bad.ttf' is not a font the sanitizer accepts",
        files={"specs/fonts/bad.ttf": short_table(b"hhea", 10)},
    ),
    "font with a short post table": Case(
        with_font("fonts/bad.ttf"),
        "'fonts/bad.ttf' is not a font the sanitizer accepts",
        files={"specs/fonts/bad.ttf": short_table(b"post", 4)},
    ),
    "collection claiming 4 billion fonts": Case(
        with_font("fonts/bad.ttc"),
        "'fonts/bad.ttc' is not a font the sanitizer accepts",
        files={"specs/fonts/bad.ttc": b"ttcf" + struct.pack(">HHII", 1, 0, 2**32 - 1, 16) + FONT},
    ),
    "woff whose table does not inflate": Case(
        with_font("fonts/bad.woff"),
        "'fonts/bad.woff' is not a font the sanitizer accepts",
        files={"specs/fonts/bad.woff": woff(b"\x78\x9c" + b"\xff" * 200, 4000)},
    ),
    "woff inflating to gigabytes": Case(
        with_font("fonts/bomb.woff"),
        "'fonts/bomb.woff' is not a font the sanitizer accepts",
        files={"specs/fonts/bomb.woff": woff(zlib.compress(b"\0" * (1 << 27), 9), 1 << 31)},
    ),
    "font that is not one": Case(
        with_font("fonts/notes.otf"),
        "'fonts/notes.otf' is not a font the sanitizer accepts",
        files={"specs/fonts/notes.otf": "these are not glyphs\n" * 20},
    ),
    "font named pipe": Case(
        with_font("fonts/pipe.ttf"),
        "'fonts/pipe.ttf' is not a regular file (a named pipe)",
        fifos=("specs/fonts/pipe.ttf",),
    ),
    "font over its bound": Case(
        with_font("fonts/huge.ttf"),
        "over the 67,108,864 read of such a file",
        sparse={"specs/fonts/huge.ttf": 100 << 20},
    ),
    # -- every file a repository ships is read bounded ---------------------------------------
    "storyboard.toml is a named pipe": Case(
        HEAD + ONE_SHOT,
        "'storyboard.toml' is not a regular file (a named pipe)",
        fifos=("storyboard.toml",),
        where="storyboard.toml",
    ),
    "storyboard.toml is a link to /dev/zero": Case(
        HEAD + ONE_SHOT,
        "'storyboard.toml' is not a regular file (a device)",
        links={"storyboard.toml": "/dev/zero"},
        where="storyboard.toml",
    ),
    "pyproject.toml is a named pipe": Case(
        HEAD + ONE_SHOT,
        "'pyproject.toml' is not a regular file (a named pipe)",
        fifos=("pyproject.toml",),
        where="pyproject.toml",
    ),
    "storyboard.toml over its bound": Case(
        HEAD + ONE_SHOT,
        "over the 1,048,576 read of such a file",
        sparse={"storyboard.toml": 5 << 20},
        where="storyboard.toml",
    ),
    "the lock is a named pipe": Case(
        HEAD + ONE_SHOT,
        "not a lock file: 'h.lock' is not a regular file (a named pipe)",
        fifos=("specs/h.lock",),
        where="specs/h.lock",
    ),
    "the lock is a link to /dev/zero": Case(
        HEAD + ONE_SHOT,
        "not a lock file: 'h.lock' goes through a link to outside the project",
        links={"specs/h.lock": "/dev/zero"},
        where="specs/h.lock",
    ),
    "the lock is a link to a file outside the project": Case(
        HEAD + ONE_SHOT,
        "not a lock file: 'h.lock' goes through a link to outside the project",
        links={"specs/h.lock": "/etc/passwd"},
        where="specs/h.lock",
    ),
    "the lock is a link to a hidden file": Case(
        HEAD + ONE_SHOT,
        "not a lock file: 'h.lock' is a hidden file or folder ('.env')",
        links={"specs/h.lock": "../.env"},
        where="specs/h.lock",
    ),
    "the lock is not JSON": Case(
        HEAD + ONE_SHOT,
        "not a lock file: Expecting value",
        files={"specs/h.lock": '{"storyboard": "h",\n "shots": nope}\n'},
        where="specs/h.lock",
    ),
    "a team cache address that is no bucket": Case(
        HEAD + ONE_SHOT,
        "[remote] url: '..' is not a bucket name",
        files={"storyboard.toml": "[remote]\nurl = 's3://../..'\n"},
        where="storyboard.toml",
    ),
    "a team cache prefix with dot-dot": Case(
        HEAD + ONE_SHOT,
        "is not a prefix",
        files={"storyboard.toml": "[remote]\nurl = 's3://bucket/a/../b'\n"},
        where="storyboard.toml",
    ),
    "a lease of a hundredth of a second": Case(
        HEAD + ONE_SHOT,
        "[remote] lease_seconds: 0.01 is less than 2, the least it may be",
        files={"storyboard.toml": "[remote]\nurl = 's3://bucket/x'\nlease_seconds = 0.01\n"},
        where="storyboard.toml",
    ),
    "includes over their bound together": Case(
        HEAD + "include: [a.yaml, b.yaml, c.yaml]\n" + ONE_SHOT,
        "the storyboard and its includes hold over 8,000,000 characters of YAML",
        files={
            f"specs/{name}.yaml": f"vars:\n  {name}: '" + "x" * 3_000_000 + "'\n" for name in "abc"
        },
    ),
    "audio over its bound": Case(
        with_sequence("a", "    audio: score.wav\n"),
        "over the 536,870,912 read of such a file",
        sparse={"specs/score.wav": 600 << 20},
    ),
    "image over its bound": Case(
        HEAD + ONE_SHOT + "    first_frame: assets/huge.png\n",
        "over the 67,108,864 read of such a file",
        sparse={"specs/assets/huge.png": 100 << 20},
    ),
    "subtitles over their bound": Case(
        with_sequence("a", "    subtitles: subs.srt\n"),
        "over the 2,097,152 read of such a file",
        sparse={"specs/subs.srt": 3 << 20},
    ),
    "subtitles a named pipe": Case(
        with_sequence("a", "    subtitles: subs.srt\n"),
        "'subs.srt' is not a regular file (a named pipe)",
        fifos=("specs/subs.srt",),
    ),
    # -- what a film asks ffmpeg for is checked before anything is spent ---------------------
    "a text colour ffmpeg does not know": Case(
        with_sequence("a", "    text:\n      - {text: Hello, color: blurple}\n"),
        "'blurple' is not a colour ffmpeg knows: did you mean 'purple'?",
    ),
    "a box colour ffmpeg does not know": Case(
        with_sequence("a", "    text:\n      - {text: Hello, box: grey@0.5}\n"),
        "'grey@0.5' is not a colour ffmpeg knows: did you mean 'gray'?",
    ),
    "a card background ffmpeg does not know": Case(
        with_sequence("{card: The end, background: midnight}"),
        "'midnight' is not a colour ffmpeg knows",
    ),
    "a subtitle colour ffmpeg does not know": Case(
        with_sequence("a", "    subtitles: {file: subs.srt, color: offwhite}\n"),
        "'offwhite' is not a colour ffmpeg knows",
        files={"specs/subs.srt": "1\n00:00:01,000 --> 00:00:02,000\nHello\n"},
    ),
    "a format the encoder cannot make": Case(
        with_sequence("a", "    formats: ['1:99']\n"),
        "format 1:99 makes a film of 768x76032: over the 4096 pixels a side",
    ),
    "a format of gigabytes": Case(
        with_sequence("a", "    formats: [9998x9998]\n"),
        "format 9998x9998 makes a film of 9998x9998",
    ),
    "a film size of gigabytes": Case(
        with_sequence("a", "    width: 8000\n    height: 8000\n"),
        "makes a film of 8000x8000",
    ),
    "a frame a billion seconds in": Case(with_frame("1e9"), "frame 1e+09 s is not inside 'a'"),
    "a frame past the clip's end": Case(with_frame("6"), "frame 6 s is not inside 'a' (6 s long)"),
    "a frame at infinity": Case(with_frame(".inf"), "frame inf is not a frame"),
    "a frame that is not a number": Case(with_frame(".nan"), "frame nan is not a frame"),
    "a frame before the start": Case(with_frame("-1"), "frame -1 is not a frame"),
    "a subtitle time past 59 minutes": Case(
        with_sequence("a", "    subtitles: subs.srt\n"),
        "'99:99:99,000' is not a time: minutes and seconds go from 00 to 59",
        files={"specs/subs.srt": "1\n99:99:99,000 --> 99:99:99,500\nHello\n"},
    ),
    "a subtitle time of 75 seconds": Case(
        with_sequence("a", "    subtitles: subs.srt\n"),
        "'00:00:75,000' is not a time",
        files={"specs/subs.srt": "1\n00:00:01,000 --> 00:00:75,000\nHello\n"},
    ),
    # -- a URL that cannot be read is one located line ----------------------------------------
    "first frame at an octal address": Case(
        HEAD + ONE_SHOT + "    first_frame: https://0177.0.0.1/x.jpg\n",
        "is not a URL that can be read (Invalid IPv4 address",
    ),
    "first frame URL with an open bracket": Case(
        HEAD + ONE_SHOT + "    first_frame: 'https://[::1/x.png'\n",
        "is not a URL that can be read",
    ),
    "first frame URL with a port of letters": Case(
        HEAD + ONE_SHOT + "    first_frame: https://example.com:8o/x.jpg\n",
        "is not a URL that can be read (Invalid port",
    ),
    "first frame URL with a port too large": Case(
        HEAD + ONE_SHOT + "    first_frame: https://example.com:99999/x.jpg\n",
        "is not a URL that can be read (port 99999)",
    ),
}


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str
    cpu: float  # seconds of CPU the run took
    written: dict[Path, bytes]


def _make_project(root: Path, case: Case) -> None:
    (root / ".storyboard").mkdir(parents=True)
    (root / ".env").write_text(f"RUNWARE_API_KEY={SENTINEL}\n")
    (root / "templates").mkdir()
    (root / "specs").mkdir()
    spec = root / SPEC
    if "\udce9" in case.spec:
        spec.write_bytes(case.spec.encode("utf-8", errors="surrogateescape"))
    else:
        spec.write_text(case.spec, encoding="utf-8")
    for name, content in case.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    for name, target in case.links.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / name)
    for name in case.fifos:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(root / name)
    for name, size in case.sparse.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        with open(root / name, "wb") as handle:
            handle.truncate(size)  # a file that big, written in no time


def _files(root: Path) -> dict[Path, tuple[int, int]]:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                stat = path.stat()
                found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


def _env() -> dict[str, str]:
    env = {**os.environ, "RUNWARE_API_KEY": SENTINEL}
    env.pop("STORYBOARD_CACHE_DIR", None)
    return env


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Outcome]]:
    """Every case planned, four at a time: each in a child process of its own, under 2 GB of
    address space and 20 s of CPU."""
    roots = {}
    for index, (name, case) in enumerate(CASES.items()):
        root = tmp_path_factory.mktemp(f"hostile{index}")
        _make_project(root, case)
        roots[name] = root
    before = {name: _files(root) for name, root in roots.items()}
    with forked_pool(4) as pool:
        runs = {}
        for name, case in CASES.items():
            extra = ["--max-shots", str(case.max_shots)] if case.max_shots else []
            runs[name] = pool.apply_async(
                run_cli, (["plan", SPEC, *extra], roots[name], _env(), 2 << 30, 20)
            )
        ran = {name: run.get(timeout=120) for name, run in runs.items()}
    found = {}
    for name, root in roots.items():
        after = _files(root)
        written = {p: p.read_bytes() for p, stamp in after.items() if before[name].get(p) != stamp}
        done = ran[name]
        found[name] = (root, Outcome(done.code, done.out, done.err, done.cpu, written))
    return found


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_storyboard_is_one_located_error(
    outcomes: dict[str, tuple[Path, Outcome]], name: str
) -> None:
    root, outcome = outcomes[name]
    case = CASES[name]
    assert outcome.code == 2, (outcome.code, outcome.err[-2000:])
    assert "Traceback" not in outcome.err and outcome.out == ""
    first = outcome.err.splitlines()[0]
    where = next((w for w in (case.where, str(root / case.where)) if first.startswith(w)), None)
    assert where is not None, first  # the storyboard as given, or a template by its path
    location = first[len(where) :].split(":")
    assert case.where.endswith("/") or (location[1].isdigit() and location[2].isdigit()), first
    messages = case.message if isinstance(case.message, tuple) else (case.message,)
    assert any(message in first for message in messages), first
    assert len(outcome.err.splitlines()) <= 2  # the error, and at most one hint
    # Stopped in bounded time: CPU time, which a busy machine does not stretch (each run
    # may take 20 s before the kernel stops it; none comes near).
    assert outcome.cpu < CPU_SECONDS, outcome.cpu
    for text in (
        outcome.out,
        outcome.err,
        *(d.decode(errors="replace") for d in outcome.written.values()),
    ):
        assert SENTINEL not in text and PASSWD not in text
