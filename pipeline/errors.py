"""One exception hierarchy: every error storyboard raises on purpose is a StoryboardError.

Render failures come in kinds, caught by type (as httpx's errors are):

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

import re
from pathlib import Path

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


class SpecError(UserError):
    """A problem in a storyboard or template file, located as path:line:col."""

    def __init__(
        self, path: Path | str, line: int, col: int, message: str, hint: str | None = None
    ) -> None:
        super().__init__(message, hint)
        self.path = str(path)
        self.line = line
        self.col = col

    def render(self) -> str:
        text = f"{self.path}:{self.line}:{self.col}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return printable(text)


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
    """A failure that will happen again (content policy, invalid request): no retry."""


class AccountError(RenderError):
    """The provider refuses the account (key, credit): no further submit in this build."""


class AuthError(AccountError):
    """The provider refused the credentials."""


class NotCollected(RenderError):
    """A task that was (or may have been) paid for and was not collected: it stays in the
    journal, and the next build asks for it before paying again."""

    task_over = False


class TaskUnknown(RenderError):
    """The provider does not know a journaled task: it never ran, so submitting is safe."""


class ImageGone(RenderError):
    """The provider no longer knows an uploaded image (they expire): upload it again."""
