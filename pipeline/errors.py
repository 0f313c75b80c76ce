"""One exception hierarchy: every error storyboard raises on purpose is a StoryboardError.

Node failures come in kinds, caught by type (as httpx's errors are):

    RenderError            a shot could not be rendered
    ├── TransientError     may succeed when tried again (network, 5xx, a provider timeout)
    ├── RefusedError       will fail again (content policy, invalid request): never retried
    ├── AccountError       the account cannot render (bad key, no credit): no more submits
    │   └── AuthError
    ├── NotCollected       paid, or maybe still running, and not collected: stays journaled
    ├── TaskUnknown        the provider does not know a journaled task: submitting anew is safe
    └── ImageGone          an uploaded image expired: upload it again
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

# Characters a terminal acts on instead of showing (escape sequences, bidirectional
# overrides): a storyboard, a template or a server's message may hold them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` safe to print: each control character spelled out (`\\x1b`), lines kept."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class StoryboardError(Exception):
    """Base of every error storyboard reports to a person instead of a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return printable(text)


class UserError(StoryboardError):
    """Bad input or a refused request: nothing was spent, exit code 2."""

    exit_code = 2


def no_such(word: str, name: str, where: object, known: Iterable[str]) -> UserError:
    """`no shot 'pur' in specs/x.yaml: did you mean 'pour'?`, naming the ones there are."""
    names = list(dict.fromkeys(known))
    return UserError(
        f"no {word} '{name}' in {where}" + did_you_mean(name, names),
        f"{word}s: {', '.join(names) or '(none)'}",
    )


@dataclass(frozen=True)
class Diagnostic:
    """One problem of a storyboard or a file it names, as ruff reports one: what kind it is
    (`code`), where (`path:line:col`, 1-based), what is wrong, and what to do; `about`:
    the items it concerns when the place is shared (a mistake in `defaults:` names the
    shots it reaches, and is said once for all of them)."""

    code: str
    path: str
    line: int
    col: int
    message: str
    hint: str | None = None
    about: tuple[str, ...] = ()
    variant: str = ""  # the variant it was found in, when its message names one

    @property
    def said(self) -> str:
        """The message with the items it concerns: `shots 'a', 'b' and 'f': ...`."""
        if not self.about:
            return self.message
        return f"{_items(self.about)}: {self.message}"

    def in_any_variant(self) -> Diagnostic:
        """This diagnostic as it is in every variant it is found in: one mistake, said once."""
        if not self.variant:
            return self
        return replace(self, message=self.message.replace(f" [{self.variant}]", "", 1), variant="")

    def with_about(self, other: Diagnostic) -> Diagnostic | None:
        """This diagnostic also saying `other`'s items, when the two are one mistake."""
        if replace(other, about=self.about) != self or not other.about:
            return None
        return replace(self, about=tuple(dict.fromkeys(self.about + other.about)))

    def render(self) -> str:
        text = f"{self.path}:{self.line}:{self.col}: {self.said}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return printable(text)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _items(about: tuple[str, ...]) -> str:
    words = {item.split(" ", 1)[0] for item in about}
    if len(about) == 1 or len(words) != 1:
        return ", ".join(about)
    names = [item.split(" ", 1)[1] for item in about]
    return f"{words.pop()}s {', '.join(names[:-1])} and {names[-1]}"


def shown(path: Path | str) -> str:
    """A path as the person at this prompt reads it: relative to the current folder when it
    is under it (`specs/a.yaml`, not `/home/ana/project/specs/a.yaml`)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`: did you mean 'takes'?` when one of `known` is close to `name`, else "".
    A choice with the same words wins over one spelt alike: `bottom-center` is `bottom`
    (the centre is what a side alone means), `left-top` is `top-left`."""
    choices = list(known)
    same = [choice for choice in choices if _words(choice) == _words(name)]
    close = same or difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f": did you mean '{close[0]}'?" if close else ""


_CENTRE_WORDS = frozenset({"center", "centre", "middle", "centered", "centred"})


def _words(name: str) -> frozenset[str]:
    words = frozenset(re.split(r"[-_ ]+", name.lower())) - {""}
    return words - _CENTRE_WORDS or words


MAX_SHOWN = 50  # problems printed at once: past these, how many more there are


class SpecError(UserError):
    """Problems in a storyboard or the files it names, each a Diagnostic located as
    path:line:col: every independent one found in a run, in the order of the files.
    `path`, `line`, `col`, `message` and `hint` are the first's."""

    def __init__(
        self,
        path: Path | str,
        line: int,
        col: int,
        message: str,
        hint: str | None = None,
        code: str = "invalid",
    ) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = (
            Diagnostic(code, str(path), line, col, message, hint),
        )
        super().__init__(message, hint)
        self.path = str(path)
        self.line = line
        self.col = col
        self.code = code

    @classmethod
    def of(cls, diagnostics: list[Diagnostic]) -> SpecError:
        """One error holding every problem found, each said once, in the order of the files."""
        unique = sorted(dict.fromkeys(diagnostics), key=lambda d: (d.path, d.line, d.col))
        first = unique[0]
        error = cls(first.path, first.line, first.col, first.said, first.hint, first.code)
        error.diagnostics = tuple(unique)
        return error

    def render(self) -> str:
        shown = [d.render() for d in self.diagnostics[:MAX_SHOWN]]
        hidden = len(self.diagnostics) - len(shown)
        if hidden:
            shown.append(f"... and {hidden} more problem(s)")
        return "\n".join(shown)


@dataclass
class Problems:
    """The problems found so far; past MANY, the rest are not looked for."""

    found: list[Diagnostic] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)  # ids of the items a problem fails

    MANY: ClassVar[int] = 200

    def add(self, error: SpecError, fails: Iterable[str] = ()) -> None:
        """`error`'s problems, each said once; `fails`: the ids of the items they fail,
        which later checks leave alone (a second complaint about one mistake is noise)."""
        self.failed.update(fails)
        for diagnostic in error.diagnostics:
            self._add(diagnostic)

    def attempt_in(self, variant: str, check: Callable[..., Any], *args: Any) -> Any:
        """`check(*args)` in one variant: a problem it raises that an earlier variant had is
        not said again."""
        try:
            return check(*args)
        except SpecError as exc:
            for diagnostic in exc.diagnostics:
                self._add(replace(diagnostic, variant=variant))
            return None

    def _add(self, diagnostic: Diagnostic) -> None:
        for index, known in enumerate(self.found):
            merged = known.with_about(diagnostic)
            if known.in_any_variant() == diagnostic.in_any_variant() or merged is not None:
                self.found[index] = merged or known
                return
        self.found.append(diagnostic)

    def places(self) -> set[tuple[str, int, int]]:
        return {(d.path, d.line, d.col) for d in self.found}

    def attempt(self, check: Callable[..., Any], *args: Any) -> Any:
        """`check(*args)`, a problem it raises added; None then."""
        try:
            return check(*args)
        except SpecError as exc:
            self.add(exc)
            return None

    @property
    def full(self) -> bool:
        return len(self.found) >= self.MANY

    def raise_any(self) -> None:
        if self.found:
            raise SpecError.of(self.found)


class BudgetError(UserError):
    """The estimated cost of a build is over the budget given, or cannot be known."""


class MediaError(StoryboardError):
    """A clip or image that ffmpeg cannot use as asked (missing, corrupt, wrong size)."""


class CacheError(StoryboardError):
    """A file of the cache that cannot be read or written as it must be."""


class RemoteError(StoryboardError):
    """The team cache (object storage) cannot be reached, refuses us, or holds a damaged
    object."""


class RemoteDamaged(RemoteError):
    """An object of the team cache does not match its record's checksum: never used."""


class RemoteReadOnly(RemoteError):
    """The team cache refuses writes to these credentials: pull, never push."""


class RenderError(StoryboardError):
    """A shot could not be rendered; the subclass says what may be done about it."""

    # Whether the remote task, if one was sent, is over (failed, refused, never started):
    # then its journal entry may go. A task that may still deliver keeps it.
    task_over = True


class TransientError(RenderError):
    """A failure that may not happen again: the shot may be tried again (with backoff)."""


class RefusedError(RenderError):
    """A failure that will happen again (content policy, invalid request): no retry.

    `code` is the provider's, when the provider refused the request itself: then the same
    request is refused every time, and later builds do not send it again unless forced."""

    def __init__(self, message: str, hint: str | None = None, code: str = "") -> None:
        super().__init__(message, hint)
        self.code = code


class AccountError(RenderError):
    """The provider refuses the account (key, credit): no further submit in this build."""


class AuthError(AccountError):
    """The provider refused the credentials."""


class Unreachable(AccountError):
    """The provider's API could not be reached before anything was submitted: no render of
    this build can be sent."""


class NotCollected(RenderError):
    """A task that was (or may have been) paid for and was not collected: it stays in the
    journal, and the next build asks for it before paying again."""

    task_over = False


class TaskUnknown(RenderError):
    """The provider does not know a journaled task: it never ran, so submitting is safe."""


class ImageGone(RenderError):
    """The provider no longer knows an uploaded image (they expire): upload it again."""


_CHOICE = re.compile(r"'((?:[^'\\]|\\.)*)'")


def in_words(error: Any) -> tuple[str, str | None] | None:
    """What pydantic says of a value (one of `ValidationError.errors()`), as a person says
    it, with what to write instead; None for a kind of problem said as pydantic says it."""
    kind, given, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    shown = repr(given) if isinstance(given, str) else str(given)
    if kind == "literal_error":
        choices = _CHOICE.findall(str(ctx.get("expected", "")))
        guess = did_you_mean(str(given), choices) if isinstance(given, str) else ""
        return f"{shown} is not one of its choices{guess}", f"choose {', '.join(choices)}"
    bounds = {
        "less_than_equal": ("is more than", "le", "the most it may be"),
        "less_than": ("is not under", "lt", "what it must be under"),
        "greater_than_equal": ("is less than", "ge", "the least it may be"),
        "greater_than": ("is not over", "gt", "what it must be over"),
    }
    if kind in bounds:
        verb, name, what = bounds[kind]
        bound = ctx.get(name)
        limit = f"{bound:g}" if isinstance(bound, int | float) else str(bound)
        return f"{shown} {verb} {limit}, {what}", None
    if kind in ("int_parsing", "float_parsing", "int_type", "float_type"):
        return f"{shown} is not a number", None
    if kind in ("bool_parsing", "bool_type"):
        return f"{shown} is not true or false", None
    if kind == "string_too_long":
        return f"is longer than the {ctx.get('max_length')} characters it may be", None
    if kind == "string_too_short":
        shortest = ctx.get("min_length")
        return ("is empty" if shortest == 1 else f"is under {shortest} characters"), None
    return None


def message_of(error: Any) -> str:
    """What pydantic says of a value, in words where it can be."""
    worded = in_words(error)
    return worded[0] if worded else str(error["msg"]).removeprefix("Value error, ")
