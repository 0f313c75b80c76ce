"""Shell completion: `storyboard completion bash|zsh|fish` prints a script that asks
`storyboard __complete WORDS...` for the candidates: commands, options, storyboard files,
and the shot and sequence names of the storyboard on the line (read, never run)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SHELLS = ("bash", "zsh", "fish")

BASH = """\
# storyboard completion for bash: eval "$(storyboard completion bash)" in ~/.bashrc
_storyboard() {
    local IFS=$'\\n'
    COMPREPLY=($(storyboard __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
    if [ ${#COMPREPLY[@]} -eq 0 ]; then
        COMPREPLY=($(compgen -f -- "${COMP_WORDS[COMP_CWORD]}"))
    fi
}
complete -o filenames -F _storyboard storyboard
"""

ZSH = """\
#compdef storyboard
# storyboard completion for zsh: eval "$(storyboard completion zsh)" in ~/.zshrc
_storyboard() {
    local -a candidates
    candidates=("${(@f)$(storyboard __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if [[ -n "${candidates[1]}" ]]; then
        compadd -a candidates
    else
        _files
    fi
}
compdef _storyboard storyboard
"""

FISH = """\
# storyboard completion for fish: storyboard completion fish > ~/.config/fish/completions/storyboard.fish
complete -c storyboard -f -a '(storyboard __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}
# Options whose value names shots, or sequences, of the storyboard on the line.
SHOT_OPTIONS = frozenset({"--only", "--force"})
SHOT_COMMANDS = frozenset({"pick", "approve", "reject", "prompts"})
MAX_CANDIDATES = 500


def script(shell: str) -> str:
    return SCRIPTS[shell]


def candidates(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """What may come next on `storyboard WORDS`, the last word being the one typed so far."""
    *done, typed = words or [""]
    commands = _subcommands(parser)
    if not done:
        return _starting(typed, [*commands, "--help", "--version"])
    command = commands.get(done[0])
    if command is None:
        return []
    if typed.startswith("-"):
        return _starting(typed, _options(command))
    spec = next((w for w in done[1:] if w.endswith((".yaml", ".yml"))), None)
    previous = done[-1] if len(done) > 1 else ""
    if previous in SHOT_OPTIONS or (spec and done[0] in SHOT_COMMANDS and previous == spec):
        return _starting(typed, _names(spec, "shots")) if spec else []
    if _takes_value(command, previous):
        return []  # a value the shell completes as a file, if anything
    if spec is None:
        return _storyboard_files(typed)
    if done[0] == "build":
        return _starting(typed, _names(spec, "sequences"))
    return []


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {n: p for n, p in action.choices.items() if not n.startswith("_")}
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))


def _takes_value(parser: argparse.ArgumentParser, word: str) -> bool:
    action = parser._option_string_actions.get(word)
    return action is not None and action.nargs != 0


def _starting(typed: str, names: list[str]) -> list[str]:
    return [name for name in names if name.startswith(typed)][:MAX_CANDIDATES]


def _storyboard_files(typed: str) -> list[str]:
    """YAML files and folders under what was typed (`specs/`, `specs/ba`)."""
    folder = Path(typed) if typed.endswith("/") else Path(typed).parent
    found: list[str] = []
    try:
        entries = sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return []
    for entry in entries:
        shown = str(entry) + ("/" if entry.is_dir() else "")
        if folder == Path() and not typed.startswith("./"):
            shown = shown.removeprefix("./")
        if entry.name.startswith(".") or not shown.startswith(typed):
            continue
        if entry.is_dir() or entry.suffix in (".yaml", ".yml"):
            found.append(shown)
    return found[:MAX_CANDIDATES]


def _names(spec: str, field: str) -> list[str]:
    """The ids of a storyboard's shots or sequences, read from its YAML (bounded, as every
    storyboard is read); nothing when it cannot be read."""
    from pipeline.errors import StoryboardError
    from pipeline.spec import reading

    path = Path(spec)
    try:
        node = reading.parse(path, {})
        data: Any = reading.Builder(path).build(node, "", 0) if node is not None else None
    except (StoryboardError, OSError, ValueError):
        return []
    entries = data.get(field) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    ids = [e.get("id") for e in entries if isinstance(e, dict)]
    return [str(i) for i in ids if isinstance(i, str | int)]
