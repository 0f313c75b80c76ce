"""One exception hierarchy: every error storyboard raises on purpose is a StoryboardError."""

from __future__ import annotations

from pathlib import Path


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
        return text


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
        return text


class MediaError(StoryboardError):
    """A clip or image that ffmpeg cannot use as asked (missing, corrupt, wrong size)."""


class RenderError(StoryboardError):
    """A shot could not be rendered. `transient` errors may succeed when tried again."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        transient: bool = False,
        fatal: bool = False,
        keep_journal: bool = False,
    ) -> None:
        super().__init__(message, hint)
        self.transient = transient
        self.fatal = fatal
        # A paid task that may still deliver: leave it in the journal for the next build.
        self.keep_journal = keep_journal


class AuthError(RenderError):
    """The provider refused the credentials: the whole build stops."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint, fatal=True)


class BudgetError(UserError):
    """The estimated cost of a build is over the budget given."""
