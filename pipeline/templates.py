"""Sandboxed Jinja prompt templates: pure, bounded, and confined to the project.

A storyboard is untrusted input, and so are its templates. They run in Jinja's immutable
sandbox with StrictUndefined; they load only regular files of the template folders inside
the project; they have nothing that changes from one build to the next (a prompt made with
`random` would be a new paid render on every build); and they are stopped, with an error
naming the template line, when they loop, grow text or lists, recurse or run past the limits
below.
"""

from __future__ import annotations

import contextlib
import functools
import json
import linecache
import os
import re
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from pipeline.errors import Diagnostic, SpecError, did_you_mean, shown
from pipeline.project import OutsideProject, TooLarge, find_in, read_bounded

_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")

# Limits of one template render. A prompt the model reads is at most a few thousand
# characters: these leave room for any real template and stop a hostile one early.
MAX_TEXT = 100_000  # characters of any text, items of any list, a template makes
MAX_NUMBER = 100_000  # a width or count given to a filter or method that grows text
MAX_LOOPS = 100_000  # turns of all the loops of one render
MAX_SECONDS = 2.0  # CPU time of one render (time the machine gives others is not counted)
# Off the main thread, where no timer signal arrives, the thread's CPU clock is read once
# every this many checks: reading it is a system call, and checks run on every operation.
CLOCK_EVERY = 64
MAX_TEMPLATE_BYTES = 100_000
MAX_UNDEFINED = 20  # names one render says it misses: past these, there is enough to fix
# Whatever the checks above do not foresee: what the whole expansion may allocate beyond
# what the process held when it began, before Python's MemoryError stops it.
MAX_MEMORY = 1 << 30
# Filters and globals whose result changes from one build to the next: a prompt made with
# them would be a new paid render on every build.
NOT_PURE = ("random", "lipsum")
# Filters and methods whose numeric arguments set how much text they make.
GROWING = frozenset({"center", "ljust", "rjust", "zfill", "indent", "wordwrap", "expandtabs"})
GROWING |= {"format", "format_map", "tojson", "pprint", "batch", "slice"}
_WIDTH = re.compile(r"\d+")
_LOOP_GUARD = "_loop_guard"


class TemplateLimit(Exception):
    """A template went past one of the limits above; located like any template error."""


class TemplateRefused(jinja2.TemplateNotFound):
    """A template name that points outside the project, at a hidden file, or at no file."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name, reason)
        self.reason = reason


@dataclass(frozen=True)
class PromptSource:
    """Where an inline prompt is in the storyboard: (line, column) of each of its lines."""

    path: Path
    lines: tuple[tuple[int, int], ...]
    who: str = ""  # whose prompt, for messages: "shot 'still' [caramel]"

    def at(self, lineno: int | None) -> tuple[int, int]:
        return self.lines[min(max(lineno or 1, 1), len(self.lines)) - 1]


@dataclass
class PromptTemplates:
    """Compiles each template and inline prompt once and renders them with a context."""

    dirs: tuple[Path, ...]
    root: Path
    env: BoundedSandbox = field(init=False)
    _inline: dict[str, jinja2.Template] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.env = BoundedSandbox(
            loader=ProjectLoader(self.dirs, self.root),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            auto_reload=False,  # a template does not change during one expansion
        )

    @contextlib.contextmanager
    def limits(self) -> Iterator[None]:
        """Within this, a render is stopped past MAX_SECONDS of CPU time even in a loop
        that calls nothing (a timer signal, which only the main thread receives), and memory
        beyond MAX_MEMORY fails with MemoryError instead of taking the machine.

        The limit is CPU time, not wall time: on a loaded machine (a CI runner at load 20)
        a legitimate template waits for a core as long as it runs, and a wall-clock limit
        stopped it at random. ITIMER_PROF counts the process's CPU time (user and system:
        a template that makes the kernel allocate pays for it) and never the time the
        process waits; SIGPROF leaves SIGALRM, and whatever else times the process by the
        wall clock, alone. The process's CPU time includes its other threads': when the
        timer fires, the render's own thread's CPU clock decides (see `on_timer`)."""
        with _memory_cap(MAX_MEMORY):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = signal.signal(signal.SIGPROF, self.env.on_timer)
            self.env.timer = True
            try:
                yield
            finally:
                self.env.timer = False
                signal.setitimer(signal.ITIMER_PROF, 0)
                signal.signal(signal.SIGPROF, previous)

    def render(
        self,
        *,
        template: str | None,
        inline: str | None,
        context: dict[str, Any],
        where: PromptSource,
        lines: bool = False,
    ) -> str:
        """The prompt with whitespace normalised (within each line, with `lines`: text drawn
        on a film keeps its line breaks); `where` locates an inline prompt in the YAML (and
        the `template:` field, for a template that cannot be loaded)."""
        said: list[Diagnostic] = []
        seen = context
        while True:
            try:
                compiled = self._compile(template, inline)
                text = self.env.bounded_render(compiled, seen)
                break
            except jinja2.TemplateSyntaxError as exc:
                raise SpecError.of([*said, *self._syntax_error(exc, where).diagnostics]) from None
            except Exception as exc:
                error, written = self._runtime_error(exc, where, seen, inline or "")
                said.extend(error.diagnostics)
                # Each name it misses, said in one run: the next render has a stand-in.
                again = _standing_in(exc, seen, written) if len(said) < MAX_UNDEFINED else None
                if again is None:
                    raise SpecError.of(said) from None
                seen = again
        if said:
            raise SpecError.of(said)
        left = LEFT_SYNTAX.search(text)
        if left is not None:
            raise _left_over(text, left, where)
        if lines:
            return "\n".join(normalise(line) for line in text.splitlines() if line.strip())
        return normalise(text)

    def names(self, text: str) -> set[str]:
        """The names a template's text looks up (none, when it does not parse: rendering it
        says why)."""
        try:
            return set(jinja2.meta.find_undeclared_variables(self.env.parse(text)))
        except jinja2.TemplateSyntaxError:
            return set()

    def value(self, text: str, context: dict[str, Any], where: PromptSource) -> Any:
        """A var's value: `{{ expression }}` alone is what the expression is (a mapping
        stays a mapping); other text with template syntax renders to text; the rest is kept."""
        whole = _ONE_EXPRESSION.fullmatch(text)
        if whole is None:
            if "{{" in text or "{%" in text:
                return self.render(template=None, inline=text, context=context, where=where)
            return text
        source = "{{ (" + whole.group(1) + ") | tojson }}"
        try:
            made = self.env.bounded_render(self._compile(None, source), context)
        except jinja2.TemplateSyntaxError as exc:
            raise self._syntax_error(exc, where) from None
        except Exception as exc:
            raise self._runtime_error(exc, where, context, source)[0] from None
        return json.loads(made)

    def _compile(self, template: str | None, inline: str | None) -> jinja2.Template:
        if template is not None:
            return self.env.get_template(template)
        source = inline or ""
        if len(source) > MAX_TEMPLATE_BYTES:
            raise TemplateLimit(f"the prompt is longer than {MAX_TEMPLATE_BYTES:,} characters")
        compiled = self._inline.get(source)
        if compiled is None:
            compiled = self.env.from_string(source)
            self._inline[source] = compiled
        return compiled

    def _syntax_error(self, exc: jinja2.TemplateSyntaxError, where: PromptSource) -> SpecError:
        message = _impure_message(exc.message or "") or exc.message
        if exc.filename:
            text = f"template syntax: {message}"
            return SpecError(exc.filename, exc.lineno or 1, 1, text, code="template-syntax")
        line, col = where.at(exc.lineno)
        return SpecError(where.path, line, col, f"prompt syntax: {message}", code="template-syntax")

    def _runtime_error(
        self, exc: Exception, where: PromptSource, context: dict[str, Any], inline: str
    ) -> tuple[SpecError, str]:
        """Locate the error in a template (Jinja rewrites tracebacks to template lines), say
        whose prompt it is (the shot and variant, and where the storyboard names the
        template) and, for an undefined name, which names are defined; and the template
        line it is on.

        An undefined name is reported where it is looked up: the outermost template line
        that spells it, not the macro that later used the undefined value.
        """
        message = _message(exc, context)
        dirs = [str(d) for d in self.dirs]
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if f.filename == "<template>" or any(f.filename.startswith(d) for d in dirs)
        ]
        name = _UNDEFINED_NAME.search(str(exc)) if isinstance(exc, jinja2.UndefinedError) else None
        chosen = frames[-1] if frames else None
        if name is not None:
            spelled = re.compile(rf"\b{re.escape(name.group(1))}\b")
            chosen = next((f for f in frames if f.line and spelled.search(f.line)), chosen)
        undefined = isinstance(exc, jinja2.UndefinedError)
        code = "undefined" if undefined else "template"
        hint = _defined_names(context) if undefined else None
        who = f"{where.who}: " if where.who else ""
        missing = _MISSING_ATTRIBUTE.search(str(exc)) if undefined else None
        if chosen is None or chosen.filename == "<template>":
            number = chosen.lineno if chosen is not None else 1
            written = _line(inline, number)
            if missing is not None:
                message = _missing_key(written, missing.group(1), context) or message
            line, col = where.at(number)
            return SpecError(where.path, line, col, who + message, hint, code=code), written
        named = where.at(1)
        whose = f"{where.who} ({shown(where.path)}:{named[0]}): " if where.who else ""
        line = chosen.lineno or 1
        written = linecache.getline(chosen.filename, line) or chosen.line or ""
        if missing is not None:
            message = _missing_key(written, missing.group(1), context) or message
        col = _column(written, name.group(1) if name else missing.group(1) if missing else None)
        path = shown(Path(chosen.filename))
        return SpecError(path, line, col, whose + message, hint, code=code), written


# Template syntax in what a template rendered: text a value brought in, never worked out.
# It would reach a paid request, or a card, as it is written.
LEFT_SYNTAX = re.compile(r"\{\{|\{%|\{#")


def _left_over(text: str, left: re.Match[str], where: PromptSource) -> SpecError:
    line, col = where.at(1)
    around = text[left.start() : left.start() + 40].split("\n")[0]
    who = f"{where.who}: " if where.who else ""
    return SpecError(
        where.path,
        line,
        col,
        f"{who}template text is left in what it renders: '{around}'",
        "text a value brings in is not worked out again (a matrix value is plain text): "
        "write template text in the field itself or in a var, which is worked out in each "
        "variant",
        code="template",
    )


_ONE_EXPRESSION = re.compile(r"\s*\{\{((?:(?!\}\}|\{\{).)*)\}\}\s*", re.DOTALL)
MAX_NAMES_SHOWN = 40


def _defined_names(context: dict[str, Any]) -> str:
    names = sorted(str(name) for name, value in context.items() if not _stand_in(value))
    shown_names = ", ".join(names[:MAX_NAMES_SHOWN])
    more = f" and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else ""
    return f"defined here: {shown_names}{more}" if names else "no variable is defined here"


_MISSING_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")


def _line(text: str, number: int | None) -> str:
    lines = text.splitlines()
    return lines[(number or 1) - 1] if 0 < (number or 1) <= len(lines) else ""


_LOOKUP = re.compile(
    r"(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)"
    r"(?:\s*\[\s*(?P<index>[A-Za-z_]\w*|'[^']*'|\"[^\"]*\")\s*\]|\.(?P<attribute>[A-Za-z_]\w*))"
)


def _missing_key(line: str, key: str, context: dict[str, Any]) -> str | None:
    """For `{{ taglines[lang] }}` in a variant whose `lang` is `fr`: `taglines has no 'fr'
    (variant lang=fr); it has: en, de`: the mapping looked into, the key it lacks, the
    variable that chose that key, and its keys. None when the line does not say."""
    found = _missing_lookup(line, key, context)
    if found is None:
        return None
    value, index = _looked_up(found["name"], context), found["index"]
    chose = f" (variant {index}={key})" if index is not None and index in context else ""
    keys = ", ".join(str(k) for k in list(value)[:MAX_NAMES_SHOWN] if not _stand_in(value[k]))
    said = f"{found['name']} has no '{key}'{chose}"
    guess = did_you_mean(key, map(str, value))
    return (
        f"{said}{guess} (it has: {keys or 'no keys'})"
        if guess
        else f"{said}; it has: {keys or 'no keys'}"
    )


def _missing_lookup(line: str, key: str, context: dict[str, Any]) -> re.Match[str] | None:
    """The lookup on `line` (`taglines[lang]`, `flavour.name`) of a mapping that has no
    `key`, as `_LOOKUP` matches it."""
    for found in _LOOKUP.finditer(line):
        value = _looked_up(found["name"], context)
        index, attribute = found["index"], found["attribute"]
        asked = attribute if attribute is not None else _index_value(index, context)
        if isinstance(value, dict) and asked == key and key not in value:
            return found
    return None


def _standing_in(exc: Exception, context: dict[str, Any], line: str) -> dict[str, Any] | None:
    """`context` with a stand-in for the name or key `exc` says is missing (`line`: where
    it is looked up), so that a render finds the next one; None for any other problem."""
    if not isinstance(exc, jinja2.UndefinedError) or _impure_message(str(exc)):
        return None
    name = _UNDEFINED_NAME.search(str(exc))
    if name is not None and name.group(1) not in context:
        return {**context, name.group(1): jinja2.ChainableUndefined(name=name.group(1))}
    missing = _MISSING_ATTRIBUTE.search(str(exc))
    found = _missing_lookup(line, missing.group(1), context) if missing else None
    if missing is None or found is None:
        return None
    return _with_key(context, found["name"].split("."), missing.group(1))


def _with_key(mapping: dict[str, Any], path: list[str], key: str) -> dict[str, Any]:
    """`mapping` with a stand-in at `key` of the mapping at `path` in it (copies, never
    changed: the values are the storyboard's)."""
    if not path:
        return {**mapping, key: jinja2.ChainableUndefined(name=key)}
    return {**mapping, path[0]: _with_key(mapping[path[0]], path[1:], key)}


def _stand_in(value: Any) -> bool:
    return isinstance(value, jinja2.Undefined)


def _looked_up(dotted: str, context: dict[str, Any]) -> Any:
    value: Any = context
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _index_value(index: str | None, context: dict[str, Any]) -> Any:
    if index is None:
        return None
    if index[0] in "'\"":
        return index[1:-1]
    return context.get(index)


def _column(line: str, name: str | None) -> int:
    """The column of `name` on a template line (of the first expression, without one)."""
    at = re.search(rf"\b{re.escape(name)}\b", line) if name else None
    if at is None:
        at = re.search(r"\{\{|\{%", line)
    return (at.start() if at else 0) + 1


def _message(exc: Exception, context: dict[str, Any]) -> str:
    """What went wrong in a template, for a person; `context` holds the names it may use."""
    if isinstance(exc, jinja2.UndefinedError):
        return _undefined_message(exc, context)
    if isinstance(exc, TemplateRefused):
        return f"template '{exc.name}': {exc.reason}"
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template '{exc.name}' not found"
    if isinstance(exc, TemplateLimit):
        return f"template limit: {exc}"
    if isinstance(exc, RecursionError):
        return "templates nest too deep: a macro calling itself, or an include loop"
    if isinstance(exc, MemoryError):
        return f"a template ran out of memory (it may use {MAX_MEMORY >> 20:,} MB)"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in a template: {exc}"
    return f"template error: {_first_line(exc)}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _undefined_message(exc: jinja2.UndefinedError, context: dict[str, Any]) -> str:
    impure = _impure_message(str(exc))
    if impure:
        return impure
    match = _UNDEFINED_NAME.search(str(exc))
    if match:
        name = match.group(1)
        known = (str(known) for known, value in context.items() if not _stand_in(value))
        return f"undefined variable '{name}'" + did_you_mean(name, known)
    return f"undefined value: {_first_line(exc)}"


def _impure_message(text: str) -> str | None:
    for name in NOT_PURE:
        if re.search(rf"(named|^)\s*'?{name}'?[ .']", text):
            return (
                f"'{name}' is not allowed in a template: a prompt must come out the same on "
                "every build (a random one would be a new paid render each time)"
            )
    return None


def normalise(text: str) -> str:
    """One space between words, no newlines: what reaches the API is one clean line."""
    return " ".join(text.split())


@contextlib.contextmanager
def _memory_cap(extra: int) -> Iterator[None]:
    """Lower the address-space limit to what the process uses now plus `extra`, and put it
    back after. Linux only (it reads /proc); elsewhere the other limits still apply."""
    try:
        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError, IndexError):
        yield
        return
    cap = used + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class ProjectLoader(jinja2.BaseLoader):
    """Templates from the template folders, each a regular file inside the project."""

    def __init__(self, dirs: tuple[Path, ...], root: Path) -> None:
        self.dirs = dirs
        self.root = root

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        try:
            path = find_in(self.dirs, template, self.root)
        except OutsideProject as exc:
            raise TemplateRefused(template, str(exc)) from None
        if path is None:
            raise jinja2.TemplateNotFound(template)
        try:
            data = read_bounded(path, MAX_TEMPLATE_BYTES, template)
            mtime = path.stat().st_mtime
        except TooLarge:
            raise TemplateRefused(template, f"larger than {MAX_TEMPLATE_BYTES:,} bytes") from None
        except OutsideProject as exc:
            raise TemplateRefused(template, str(exc)) from None
        except OSError as exc:
            raise TemplateRefused(template, f"cannot read: {exc.strerror}") from None
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TemplateRefused(template, f"not UTF-8 text ({exc.reason})") from None
        # The name as the storyboard spells it, in the folder it was found in: errors point
        # where the user looks.
        shown = next(str(d / template) for d in self.dirs if os.path.lexists(d / template))
        return source, shown, lambda: path.stat().st_mtime == mtime


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus limits on time, text and list growth, and loops.

    Each check runs before the operation that would allocate: a refused `'a' * 10**10`
    never asks for the memory. Every `for` loop is counted (see `_parse`), and every block
    a template captures (`{% set %}`, a macro's body) is measured before it is joined.
    """

    intercepted_binops = frozenset({"*", "%", "+", "**", "//"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.deadline = float("inf")  # on the rendering thread's CPU clock
        self.loops = 0
        self.checks = 0
        self.timer = False
        self.filters = {
            name: _bounded_filter(self, name, function)
            for name, function in self.filters.items()
            if name not in NOT_PURE
        }
        self.filters[_LOOP_GUARD] = self.counted
        self.globals = {name: value for name, value in self.globals.items() if name not in NOT_PURE}
        self.globals["range"] = self.bounded_range
        self.globals["namespace"] = BoundedNamespace
        self.concat = _bounded_concat  # type: ignore[method-assign]
        self.loaded: dict[str, jinja2.Template] = {}

    def get_template(
        self,
        name: str | jinja2.Template,
        parent: str | None = None,
        globals: MutableMapping[str, Any] | None = None,
    ) -> jinja2.Template:
        """Each template is loaded once (auto_reload is off): jinja's own cache takes many
        steps, and every render of a template that imports another asks for it again.
        `parent` names the template asking: jinja's join_path, not overridden here, leaves
        the name as it is, so the same name is the same template from everywhere."""
        if not isinstance(name, str) or globals:
            return super().get_template(name, parent, globals)
        found = self.loaded.get(name)
        if found is None:
            found = self.loaded[name] = super().get_template(name)
        return found

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one plain dict: jinja's ChainMap over the environment's
        globals is merged again into every render's context, a tenth of a render's time.
        The environment's globals are all set above, before any template is loaded."""
        return {**self.globals, **(d or {})}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template's syntax tree, with the iterable of every `for` loop counted."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(
                loop.iter, _LOOP_GUARD, [], [], None, None, lineno=loop.iter.lineno
            )
        return tree

    def bounded_render(self, template: jinja2.Template, context: dict[str, Any]) -> str:
        self.deadline = time.thread_time() + MAX_SECONDS
        self.loops = 0
        if self.timer:
            signal.setitimer(signal.ITIMER_PROF, MAX_SECONDS)
        try:
            pieces: list[str] = []
            length = 0
            for piece in template.generate(context):
                length += len(piece)
                if length > MAX_TEXT:
                    raise TemplateLimit(f"the prompt is longer than {MAX_TEXT:,} characters")
                pieces.append(piece)
            return "".join(pieces)
        finally:
            if self.timer:
                signal.setitimer(signal.ITIMER_PROF, 0)
            self.deadline = float("inf")

    def on_timer(self, signum: int, frame: Any) -> None:
        """The process has spent the render's CPU time: the render is over its limit if
        this thread spent it; else other threads did, and the timer waits for the rest."""
        if self.deadline == float("inf"):
            return
        left = self.deadline - time.thread_time()
        if left <= 0:
            raise TemplateLimit(f"the template ran longer than {MAX_SECONDS:g} s")
        signal.setitimer(signal.ITIMER_PROF, left)

    def check_time(self) -> None:
        """Off the main thread, the limit is checked here; on it, the timer signal stops a
        render (reading a CPU clock on every operation would slow every render)."""
        if self.timer:
            return
        self.checks += 1
        if self.checks % CLOCK_EVERY == 0 and time.thread_time() > self.deadline:
            raise TemplateLimit(f"the template ran longer than {MAX_SECONDS:g} s")

    def counted(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            self.loops += 1
            if self.loops > MAX_LOOPS:
                raise TemplateLimit(f"loops turned more than {MAX_LOOPS:,} times")
            if not self.loops % 1024:
                self.check_time()
            yield item

    def bounded_range(self, *args: int) -> range:
        """`range`, no longer than the loops of a render may turn (the loops count them)."""
        numbers = range(*args)
        if len(numbers) > MAX_LOOPS:
            raise TemplateLimit(
                f"a range of {len(numbers):,} numbers: loops may turn {MAX_LOOPS:,} times"
            )
        return numbers

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.check_time()
        value = super().getattr(obj, attribute)
        if isinstance(obj, str) and attribute in ("format", "format_map") and callable(value):
            # The sandbox hands out its own safe `format`: checked here, before it runs.
            return functools.partial(_checked_format, attribute, obj, value)
        return value

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.check_time()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            check_growth(getattr(__obj, "__name__", ""), owner, args, kwargs)
        else:
            check_sizes(args, kwargs)
        return check_size(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.check_time()
        if operator == "*":
            check_repeat(left, right)
        elif operator == "**":
            check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            check_growth("format", left, right if isinstance(right, tuple) else (right,), {})
        return check_size(self.binop_table[operator](left, right))


class BoundedNamespace(Namespace):
    """`namespace()`, whose attributes cannot grow past the limits in a loop."""

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, check_size(value))


def _checked_format(name: str, text: str, format: Any, *args: Any, **kwargs: Any) -> Any:
    check_growth(name, text, args, kwargs)
    return check_size(format(*args, **kwargs))


def _bounded_concat(pieces: Iterable[str]) -> str:
    """Jinja's `concat` for captured blocks and macro bodies: measured before joining."""
    listed = list(pieces)
    if sum(map(len, listed)) > MAX_TEXT:
        raise TemplateLimit(f"a block of the template makes over {MAX_TEXT:,} characters")
    return "".join(listed)


_PASSED = (jinja2.runtime.Context, jinja2.nodes.EvalContext, jinja2.Environment)


def _bounded_filter(env: BoundedSandbox, name: str, function: Any) -> Any:
    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        env.check_time()
        values = [a for a in args if not isinstance(a, _PASSED)]
        if values and isinstance(values[0], str):
            check_growth(name, values[0], tuple(values[1:]), kwargs)
        elif name in GROWING:
            check_numbers(name, tuple(values[1:]), kwargs)
        else:
            check_sizes(values[1:], kwargs)
        if name == "join" and values:
            check_join(values[0], len(str(values[1])) if len(values) > 1 else 0)
        return check_size(function(*args, **kwargs))

    return bounded


def check_sizes(args: Iterable[Any], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        check_size(value)


def check_size(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict | set) and len(value) > MAX_TEXT:
        raise TemplateLimit(f"a value of {len(value):,} characters or items (limit {MAX_TEXT:,})")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4096:
        raise TemplateLimit("a number of more than 4096 bits")
    return value


def check_numbers(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A filter or method that grows text may not be given a width or count over the limit."""
    check_sizes(args, kwargs)
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMBER:
            raise TemplateLimit(f"'{name}' given {value:,}, over the limit of {MAX_NUMBER:,}")


def check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        repeated = isinstance(seq, str | list | tuple) and isinstance(times, int)
        if repeated and len(seq) * times > MAX_TEXT:
            raise TemplateLimit(
                f"repeating {len(seq):,} items {times:,} times is over {MAX_TEXT:,}"
            )


def check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 4096:
        raise TemplateLimit(f"{left} ** {right} is too large a number")


def check_growth(name: str, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Text operations whose result may be a multiple of their input, checked before they
    run."""
    if name in GROWING:
        check_numbers(name, args, kwargs)
    else:
        check_sizes(args, kwargs)
    grown = len(text)
    if name in ("format", "format_map"):
        widths = [int(digits) for digits in _WIDTH.findall(text)]
        if widths and max(widths) > MAX_NUMBER:
            raise TemplateLimit(f"a format width over {MAX_NUMBER:,}")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        count = text.count(args[0]) if args[0] else len(text) + 1
        grown = len(text) + count * len(str(args[1]))
    elif name == "expandtabs":
        grown = len(text) + text.count("\t") * _int(args[0] if args else 8)
    elif name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        step = len(width) if isinstance(width, str) else _int(width)
        grown = len(text) + (text.count("\n") + 1) * max(step, 1)
    elif name == "wordwrap":
        width = max(_int(args[0] if args else kwargs.get("width", 79)), 1)
        wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring") or "\n"
        grown = len(text) + (len(text) // width + 1) * len(str(wrap))
    elif name == "join" and args:
        check_join(args[0], len(text))
    if grown > MAX_TEXT:
        raise TemplateLimit(f"'{name}' would make {grown:,} characters (limit {MAX_TEXT:,})")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def check_join(items: Any, separator: int = 0) -> None:
    if isinstance(items, list | tuple):
        total = sum(len(str(item)) + separator for item in items[: MAX_TEXT + 1])
        if total > MAX_TEXT:
            raise TemplateLimit(f"joining makes over {MAX_TEXT:,} characters")
