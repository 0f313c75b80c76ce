"""A comparison of two revisions as GitHub-flavoured Markdown, for pull requests: a table of
the renders a change adds, changes and drops (each prompt's word diff, the price), the films
it touches, and what it costs before, after and still to pay.

Everything a storyboard says (prompts, names) is shown as text: no word of it becomes
markup, a link, HTML, or a mention of someone.
"""

from __future__ import annotations

import re

from pipeline.compare import Comparison, Piece, SequenceChange, ShotChange, Side

MAX_ROWS = 60  # renders listed; the rest are counted (a comment holds 65,536 characters)
MAX_FILMS = 20
MAX_VARIANTS = 4  # variant names listed in a row before "and N more"
_MARKUP = re.compile(r"([\\`*_~\[\]<>|#!$])")


def comparison_markdown(comparison: Comparison, title: str) -> str:
    """The comparison as one Markdown section headed by `title` (the storyboard)."""
    old, new = comparison.old, comparison.new
    lines = [
        f"### {text(title)}",
        "",
        f"{_revision(old)} → {_revision(new)}: {_summary(comparison)}",
    ]
    if comparison.shots:
        lines += ["", *_render_table(comparison.shots)]
    if comparison.sequences:
        lines += ["", _films(comparison.sequences)]
    lines += ["", *_cost_table(comparison), "", _cache_note(comparison)]
    return "\n".join(lines) + "\n"


def text(value: str) -> str:
    """`value` as Markdown shows it, literally, on one line: nothing in it is markup, a
    link, HTML or a mention (a zero-width space after each @)."""
    value = " ".join(value.split()).replace("&", "&amp;")
    return _MARKUP.sub(r"\\\1", value).replace("@", "@\u200b")


def dollars(value: float | None) -> str:
    """Dollars to the cent (a render of under a cent to the tenth of one), as text."""
    if value is None:
        return "unknown"
    amount = f"{value:,.3f}" if 0 < abs(value) < 0.01 else f"{value:,.2f}"
    return f"\\${amount}"


def word_diff(pieces: tuple[Piece, ...]) -> str:
    """A prompt's word diff: words removed struck through, words added in bold."""
    shown = []
    for kind, words in pieces:
        if kind == "removed":
            shown.append(f"~~{text(words)}~~")
        elif kind == "added":
            shown.append(f"**{text(words)}**")
        else:
            shown.append(text(words))
    return " ".join(shown)


def _revision(side: Side) -> str:
    """A revision's name (a storyboard it does not have: said)."""
    name = f"`{side.name}`" if "`" not in side.name else text(side.name)
    return name if side.present else f"{name}, where it is not"


def _summary(comparison: Comparison) -> str:
    counts = {
        kind: sum(max(c.renders, 1) for c in comparison.shots if c.kind == kind)
        for kind in ("changed", "added", "removed")
    }
    said = [f"{number} render(s) {kind}" for kind, number in counts.items() if number]
    films = len(comparison.sequences)
    if films:
        said.append(f"{films} film(s) affected")
    return ", ".join(said) if said else "no render or film changes"


def _render_table(shots: list[ShotChange]) -> list[str]:
    rows = [
        "| change | shot | variants | prompt (word diff) | price |",
        "|:--|:--|:--|:--|--:|",
    ]
    for change in shots[:MAX_ROWS]:
        take = f" take {change.take}" if change.take > 1 else ""
        prompt = word_diff(change.prompt_diff)
        if change.kind == "removed":
            prompt = f"~~{prompt}~~" if prompt else ""
        details = "; ".join(text(other) for other in change.others)
        cell = "<br>".join(part for part in (prompt, f"_{details}_" if details else "") if part)
        rows.append(
            f"| {change.kind} | **{text(change.label)}**{take} | {_variants(change.variants)} "
            f"| {cell or '—'} | {_price(change)} |"
        )
    if len(shots) > MAX_ROWS:
        rows.append(f"| | and {len(shots) - MAX_ROWS} more | | | |")
    return rows


def _variants(variants: tuple[str, ...]) -> str:
    if not variants:
        return "—"
    shown = ", ".join(text(v) for v in variants[:MAX_VARIANTS])
    more = len(variants) - MAX_VARIANTS
    return shown + (f" and {more} more" if more > 0 else "")


def _price(change: ShotChange) -> str:
    """A change's price: what its renders cost; of that, what is still to pay."""
    renders = f" ({change.renders} renders)" if change.renders > 1 else ""
    if change.kind == "removed":
        return f"~~{dollars(change.price)}~~{renders}"
    if change.to_pay is not None and change.price and change.to_pay < change.price:
        return f"{dollars(change.price)}{renders}, {dollars(change.to_pay)} to pay"
    return f"{dollars(change.price)}{renders}"


def _films(sequences: list[SequenceChange]) -> str:
    shown = []
    for film in sequences[:MAX_FILMS]:
        why = f" ({text('; '.join(film.reasons))})" if film.reasons else ""
        shown.append(f"**{text(film.name)}** {film.kind}{why}")
    more = len(sequences) - MAX_FILMS
    return (
        f"**Films affected ({len(sequences)}):** "
        + "; ".join(shown)
        + (f"; and {more} more" if more > 0 else "")
    )


def _cost_table(comparison: Comparison) -> list[str]:
    old, new = comparison.old, comparison.new
    unpriced = f" (+{comparison.unpriced} of unknown price)" if comparison.unpriced else ""
    return [
        "| cost | renders | USD |",
        "|:--|--:|--:|",
        f"| before ({_revision(old)}) | {old.renders} | {dollars(old.cost)} |",
        f"| after ({_revision(new)}) | {new.renders} | {dollars(new.cost)} |",
        f"| this change adds | {comparison.added_renders} | "
        f"{dollars(comparison.added_cost)}{unpriced} |",
        f"| **still to pay** | | **{dollars(comparison.to_pay)}** |",
    ]


def _cache_note(comparison: Comparison) -> str:
    held = round(comparison.added_cost - comparison.to_pay, 2)
    where = "the cache or the team cache" if comparison.team_cache else "the cache"
    said = f"What {where} already holds costs nothing"
    said += f": {dollars(held)} of what this change adds is there." if held > 0 else "."
    if not comparison.team_cache:
        said += " No team cache was asked (none is set, or it did not answer)."
    return f"<sub>{said}</sub>"
