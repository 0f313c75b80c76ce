"""Sandboxed Jinja prompt templates: strict about undefined names, confined to their folders."""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from pipeline.errors import SpecError

INLINE_NAME = "<inline prompt>"
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")


@dataclass
class PromptTemplates:
    """Compiles each template and inline prompt once and renders them with a context."""

    dirs: tuple[Path, ...]
    env: SandboxedEnvironment = field(init=False)
    _inline: dict[str, jinja2.Template] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        # FileSystemLoader refuses '..' and absolute names: templates stay inside `dirs`.
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(d) for d in self.dirs]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
        )

    def render(
        self,
        *,
        template: str | None,
        inline: str | None,
        context: dict[str, Any],
        where: tuple[Path, int, int],
    ) -> str:
        """The prompt with whitespace normalised; `where` locates an inline prompt in the YAML."""
        try:
            compiled = self._compile(template, inline)
            text = compiled.render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise self._syntax_error(exc, where) from None
        except jinja2.UndefinedError as exc:
            raise self._runtime_error(exc, where, _undefined_message(exc)) from None
        except jinja2.TemplateNotFound as exc:
            raise self._runtime_error(exc, where, f"template '{exc.name}' not found") from None
        except jinja2.exceptions.SecurityError as exc:
            raise self._runtime_error(exc, where, f"not allowed in a template: {exc}") from None
        except jinja2.TemplateError as exc:
            raise self._runtime_error(exc, where, f"template error: {exc}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise self._runtime_error(exc, where, f"template error: {exc}") from None
        return normalise(text)

    def _compile(self, template: str | None, inline: str | None) -> jinja2.Template:
        if template is not None:
            return self.env.get_template(template)
        source = inline or ""
        compiled = self._inline.get(source)
        if compiled is None:
            compiled = self.env.from_string(source)
            self._inline[source] = compiled
        return compiled

    def _syntax_error(
        self, exc: jinja2.TemplateSyntaxError, where: tuple[Path, int, int]
    ) -> SpecError:
        if exc.filename:
            return SpecError(exc.filename, exc.lineno or 1, 1, f"template syntax: {exc.message}")
        path, line, col = where
        return SpecError(path, line + (exc.lineno or 1) - 1, col, f"prompt syntax: {exc.message}")

    def _runtime_error(
        self, exc: Exception, where: tuple[Path, int, int], message: str
    ) -> SpecError:
        """Locate the error in a template (Jinja rewrites tracebacks to template lines).

        An undefined name is reported where it is looked up: the outermost template line
        that spells it, not the macro that later used the undefined value.
        """
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
        path, line, col = where
        if chosen is None:
            return SpecError(path, line, col, message)
        if chosen.filename == "<template>":
            return SpecError(path, line + (chosen.lineno or 1) - 1, col, message)
        return SpecError(chosen.filename, chosen.lineno or 1, 1, message)


def _undefined_message(exc: jinja2.UndefinedError) -> str:
    match = _UNDEFINED_NAME.search(str(exc))
    if match:
        return f"undefined variable '{match.group(1)}'"
    return f"undefined value: {exc}"


def normalise(text: str) -> str:
    """One space between words, no newlines: what reaches the API is one clean line."""
    return " ".join(text.split())
