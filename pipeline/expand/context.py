"""What every part of an expansion shares: its limits and defaults, the files it reads
(first frames, sound), the warnings it says, and the matrix's combinations."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline import hashing, media
from pipeline.decisions import Decisions
from pipeline.errors import MediaError
from pipeline.expand.framing import Framing
from pipeline.nodes import Node
from pipeline.project import (
    MAX_AUDIO_BYTES,
    MAX_IMAGE_BYTES,
    ROOT_HINT,
    OutsideProject,
    opened,
    project_file,
    read_bounded,
)
from pipeline.spec import Spec
from pipeline.spec.schema import (
    ITEM_WORDS,
    RESOLUTIONS,
    SequenceShot,
    is_templated,
)
from pipeline.templates import PromptSource, PromptTemplates
from pipeline.typeface import Fonts

DEFAULT_DURATION = 6
DEFAULT_FPS = 25
DEFAULT_RESOLUTION = "768p"
STILL_SIZE = (1024, 576)  # a still's size unless it gives one: 16:9, as most shots are
FRAME_POSITIONS = ("first", "last")
# The most shots a storyboard may expand to unless told otherwise (--max-shots): a matrix
# multiplies, and ten axes of ten values are ten billion shots.
MAX_SHOTS = 10_000
# Beyond this many combinations, a matrix over the limit is refused without counting what
# its `exclude:` entries remove.
MAX_COUNTED = 200_000

# The largest film joined: x264 encodes larger, but each frame of a film passes through
# several filters at once, and a 9998x9998 film of 6 s takes 10 GB. 4096x2304 (16:9 at 4K
# DCI width) and its portrait twin fit on a laptop.
MAX_FILM_SIDE = 4096
MAX_FILM_PIXELS = 4096 * 2304


@dataclass
class Context:
    """What expanding every shot shares: the renderer, the files read, the warnings said,
    the decisions of the build expanded for."""

    renderer: str
    inputs: Inputs
    warnings: dict[str, None]
    decisions: Decisions
    framing: Framing = field(default_factory=dict)  # the formats each shot is cut to
    # Whether the quality check found something in a render's delivered clip (by key): a
    # take with a finding is never the one picked by default.
    flagged: Callable[[str], bool] = field(default=lambda key: False)


@dataclass
class Inputs:
    """The files a storyboard feeds in (first frames, audio beds), each read, checked and
    hashed once per expansion; a file that is not what it must be is a located error."""

    spec: Spec
    images: dict[Path, tuple[str, media.ImageInfo]] = field(default_factory=dict)
    sounds: dict[Path, str] = field(default_factory=dict)

    def image(self, name: str, loc: tuple[Any, ...]) -> tuple[Path, str, media.ImageInfo]:
        path = self._named(name, loc)
        hint = "re-save it as a PNG, JPEG or WebP"
        digest, info = self._checked(self.images, path, _read_image, (name, loc, hint))
        return path, digest, info

    def sound(self, name: str, loc: tuple[Any, ...], path: Path | None = None) -> tuple[Path, str]:
        """`path`: where a name said by a template was found (else the storyboard's)."""
        path = path or self._named(name, loc)
        hint = "give a sound file (m4a, mp3, wav...)"
        return path, self._checked(self.sounds, path, _read_sound, (name, loc, hint))

    def _named(self, name: str, loc: tuple[Any, ...]) -> Path:
        """The file the storyboard names; one it could not find is a problem said already,
        at this place."""
        if name not in self.spec.files:
            raise self.spec.source.error(loc, f"'{name}' cannot be used")
        return self.spec.files[name]

    def _checked(
        self,
        memo: dict[Path, Any],
        path: Path,
        check: Callable[[Path, str], Any],
        where: tuple[str, tuple[Any, ...], str],
    ) -> Any:
        """What `check` makes of a file, once; its failure located where the file is named."""
        if path not in memo:
            name, loc, hint = where
            try:
                memo[path] = check(path, name)
            except MediaError as exc:
                raise self.spec.source.error(loc, f"'{name}' {exc.message}", hint) from None
            except OutsideProject as exc:
                raise self.spec.source.error(loc, str(exc)) from None
            except OSError as exc:
                message = f"'{name}' cannot be read ({exc.strerror})"
                raise self.spec.source.error(loc, message) from None
        return memo[path]


def _read_image(path: Path, name: str) -> tuple[str, media.ImageInfo]:
    data = read_bounded(path, MAX_IMAGE_BYTES, name)
    return hashing.sha256_bytes(data), media.check_image(data)


def _read_sound(path: Path, name: str) -> str:
    with opened(path, MAX_AUDIO_BYTES, name) as handle:
        digest = hashing.sha256_handle(handle)
        handle.seek(0)
        media.check_audio(handle)
    return digest


def combinations(
    matrix: dict[str, Any], spec: Spec, loc: tuple[Any, ...]
) -> list[tuple[str, dict[str, Any]]]:
    """The cartesian product of a matrix, with `exclude` and `include` as in CI matrices."""
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    for entry in matrix.get("exclude", []):
        combos = [c for c in combos if not combo_matches(c, entry)]
    for entry in matrix.get("include", []):
        extended = False
        for combo in combos:
            matches = all(combo.get(k) == v for k, v in entry.items() if k in axes)
            if matches and any(k not in axes for k in entry):
                combo.update({k: v for k, v in entry.items() if k not in axes})
                extended = True
        if not extended:
            combos.append(dict(entry))
    if not combos:
        raise spec.source.error(loc, "the matrix leaves no combination (check 'exclude')")
    named: list[tuple[str, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    for combo in combos:
        name = "-".join(slug(combo[a]) for a in axes if a in combo)
        if name in seen and axes:
            raise spec.source.error(loc, f"two matrix combinations are both named '{name}'")
        seen[name] = 1
        named.append((name, combo))
    return named


def combo_matches(combo: dict[str, Any], entry: dict[str, Any]) -> bool:
    return all(combo.get(k) == v for k, v in entry.items())


def slug(value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9]+", "-", str(value).strip().lower()).strip("-")
    return text or "x"


def kind_of(loc: tuple[Any, ...]) -> str:
    return "still" if loc[0] == "stills" else "shot"


def whose(spec: Spec, loc: tuple[Any, ...], variant: str) -> str:
    """Whose text is at `loc`, for messages: `voice 'vo' [yuzu-fr]`."""
    section = str(loc[0]) if loc else ""
    items = getattr(spec.storyboard, section, None) if section else None
    if not isinstance(items, list) or len(loc) < 2 or not isinstance(loc[1], int):
        return ""
    word = ITEM_WORDS[section]
    return f"{word} '{items[loc[1]].id}'" + (f" [{variant}]" if variant else "")


def first_set(*values: Any) -> Any:
    for value in values[:-1]:
        if value is not None:
            return value
    return values[-1]


def size_of(item: Any, defaults: Any, fallback: tuple[int, int] | None = None) -> tuple[int, int]:
    for source in (item, defaults):
        if source is None:
            continue
        if source.resolution is not None:
            return RESOLUTIONS[source.resolution]
        if source.width is not None and source.height is not None:
            return source.width, source.height
    return fallback or RESOLUTIONS[DEFAULT_RESOLUTION]


@dataclass(frozen=True)
class Saying:
    """What a variant's films say their names, files and words with: the files read, the
    templates, the fonts, and the variant's values."""

    inputs: Inputs
    templates: PromptTemplates
    fonts: Fonts
    values: dict[str, Any]
    variant: str = ""

    def render(self, spec: Spec, loc: tuple[Any, ...], text: str, lines: bool = False) -> str:
        """`text` (a template written at `loc`) as this variant says it."""
        path, starts = spec.source.text_lines(loc)
        source = PromptSource(path, starts, whose(spec, loc, self.variant))
        return self.templates.render(
            template=None, inline=text, context=self.values, where=source, lines=lines
        )


@dataclass(frozen=True)
class Variant:
    """One combination of the storyboard's matrix: its name, its matrix values, and every
    value its templates see (the storyboard's vars as this variant says them, then the
    matrix's)."""

    name: str
    matrix: dict[str, Any]
    values: dict[str, Any]


def worked_out(
    spec: Spec,
    templates: PromptTemplates,
    value: Any,
    at: tuple[Any, ...],
    seen: tuple[dict[str, Any], PromptSource],
) -> Any:
    """A var's value as a variant says it (`seen`: the values its templates see, and whose
    it is): `{{ flavours[flavour_id] }}` is the mapping it names, other template text
    renders to text, lists and mappings keep their shape, their text worked out the same."""
    if isinstance(value, str) and is_templated(value):
        around, whose = seen
        path, lines = spec.source.text_lines(at)
        return templates.value(value, around, replace(whose, path=path, lines=lines))
    if isinstance(value, list):
        return [worked_out(spec, templates, item, (*at, i), seen) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {k: worked_out(spec, templates, item, (*at, k), seen) for k, item in value.items()}
    return value


def _texts(value: Any) -> list[str]:
    """Every text a var's value holds (in its lists and mappings too)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    return []


def vars_order(spec: Spec, templates: PromptTemplates) -> tuple[str, ...]:
    """The storyboard's vars that hold template text, each after the vars it names: a var
    may name the matrix's values and other vars (`script: "{{ greetings[lang] }},
    {{ product }}"`). Vars that name each other in a circle are a located error."""
    board = spec.storyboard.vars
    names: dict[str, set[str]] = {}
    for var, value in board.items():
        texts = [text for text in _texts(value) if is_templated(text)]
        if texts:
            names[var] = {name for text in texts for name in templates.names(text)}
    order: list[str] = []
    placed: set[str] = set()
    for start in names:
        path = [start]
        stack = [iter(sorted(names[start] & names.keys()))]
        while stack:
            ahead = next(stack[-1], None)
            if ahead is None:
                stack.pop()
                done = path.pop()
                if done not in placed:
                    placed.add(done)
                    order.append(done)
            elif ahead in path:
                circle = path[path.index(ahead) :]
                raise spec.source.error(
                    ("vars", ahead),
                    f"vars {', '.join(circle)} name each other in a circle: their text is "
                    "never worked out",
                )
            elif ahead not in placed:
                path.append(ahead)
                stack.append(iter(sorted(names[ahead] & names.keys())))
    return tuple(order)


def variant_of(
    spec: Spec,
    templates: PromptTemplates,
    order: tuple[str, ...],
    combination: tuple[str, dict[str, Any]],
) -> Variant:
    """A variant, its storyboard vars that hold template text worked out in it (in `order`,
    each after the vars it names), so that what reaches a voice, a prompt or a card is the
    variant's text, never the template."""
    name, matrix = combination
    values = dict(spec.storyboard.vars)
    for var in order:
        whose = PromptSource(spec.path, ((1, 1),), f"var '{var}'" + (f" [{name}]" if name else ""))
        seen = ({**values, **matrix}, whose)
        values[var] = worked_out(spec, templates, values[var], ("vars", var), seen)
    return Variant(name, matrix, {**values, **matrix})


def said_as(spec: Spec, loc: tuple[Any, ...], name: str, saying: Saying) -> str:
    """A name as this variant says it: a template is rendered, anything else is as is."""
    return saying.render(spec, loc, name) if is_templated(name) else name


def sequence_file(spec: Spec, loc: tuple[Any, ...], name: str, saying: Saying) -> tuple[str, Path]:
    """A file a sequence names, as this variant says it; a name said by a template is
    checked now, as the storyboard's own names were when it was read."""
    said = said_as(spec, loc, name, saying)
    if said in spec.files:
        return said, spec.files[said]
    try:
        return said, project_file(said, spec.path.parent, spec.root)
    except OutsideProject as exc:
        raise spec.source.error(loc, str(exc), ROOT_HINT.format(root=spec.root)) from None


def select(shots: list[Node], ref: SequenceShot) -> list[Node]:
    selected = []
    for shot in shots:
        if ref.take is not None and shot.take != ref.take:
            continue
        if ref.take is None and not shot.picked:
            continue
        if ref.vars and any(dict(shot.shot_vars).get(k) != v for k, v in ref.vars.items()):
            continue
        selected.append(shot)
    return selected
