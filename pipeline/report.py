"""Tables for people (rich). Kept apart from cli.py so that --json never imports rich."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipeline.compare import Comparison
from pipeline.nodes import Still, depends_on
from pipeline.plan import Plan, variants_said
from pipeline.state import FilmState, ShotState, said


def money(value: float | None) -> str:
    """Dollars to the cent; a render of under a cent (a short voice) to the tenth of one."""
    if value is None:
        return "?"
    return f"${value:,.3f}" if 0 < value < 0.01 else f"${value:,.2f}"


def seconds(value: float) -> str:
    minutes, rest = divmod(value, 60)
    return f"{int(minutes)}:{rest:05.2f}" if minutes else f"{rest:.2f} s"


def make_console(stderr: bool = False) -> Console:
    """A terminal console, or a wide plain one when output goes to a file or pipe."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=160)


STYLES: dict[str, str] = {
    ShotState.CACHED: "green",
    FilmState.CURRENT: "green",
    ShotState.IN_FLIGHT: "cyan",
    ShotState.REMOTE: "blue",
    FilmState.STORED: "blue",
    ShotState.NEW: "yellow",
    ShotState.CHANGED: "yellow",
    ShotState.MISSING: "red",
    ShotState.FAILED: "red",
    ShotState.REFUSED: "red",
    ShotState.WAITING: "magenta",
}


def state_text(name: str) -> Text:
    return Text(name, style=STYLES.get(name, "white"))


def print_reasons(console: Console, reasons: tuple[str, ...], indent: int = 4) -> None:
    """Each reason on a line of its own (prompt diffs hold brackets: never read as markup)."""
    for reason in reasons:
        console.print(Text(" " * indent + reason, style="dim"), highlight=False)


def print_plan(
    plan: Plan,
    why: bool = False,
    console: Console | None = None,
) -> None:
    console = console or make_console()
    console.print(_render_table(plan))
    if why:
        _print_render_reasons(plan, console)
    _print_totals(plan, console)
    for sequence, state in ((row.film, row.state) for row in plan.film_rows):
        console.print(
            Text("  sequence ")
            + Text(sequence.name, style="bold")
            + Text(
                f": {len(sequence.uses)} clips, {seconds(sequence.duration)}, "
                f"{sequence.width}x{sequence.height}  "
            )
            + state_text(state.name),
            highlight=False,
        )
        if why:
            print_reasons(console, state.said, indent=6)


PLAN_COLUMNS = (
    ("key", "left"),
    ("shot", "left"),
    ("variant", "left"),
    ("take", "right"),
    ("model", "left"),
    ("size", "left"),
    ("dur", "right"),
    ("after", "left"),
    ("status", "left"),
    ("cost", "right"),
)


def _render_table(plan: Plan) -> Table:
    """A line per render: what it is, what it starts from, its state and cost."""
    table = Table(title=None, show_lines=False, header_style="bold")
    for name, justify in PLAN_COLUMNS:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in plan.rows:
        shot = row.shot
        variants = variants_said(row.variants, plan.variants) or "-"
        table.add_row(
            "(later)" if shot.pending else shot.key[:10],
            shot.label,
            variants,
            f"{shot.take}/{shot.takes}",
            shot.model,
            f"{shot.width}x{shot.height}" if not shot.sound else shot.kind,
            "still" if isinstance(shot, Still) else f"{shot.duration:g} s",
            depends_on(shot) or "-",
            state_text(row.status),
            money(row.estimate),
        )
    return table


def _print_render_reasons(plan: Plan, console: Console) -> None:
    """Why each render that is not cached is what it is (`--why`)."""
    for row in plan.rows:
        if not row.reasons:
            continue
        variants = variants_said(row.variants, plan.variants)
        take = f" take {row.shot.take}" if row.shot.takes > 1 else ""
        head = Text(f"{row.shot.label}{take}" + (f" [{variants}]" if variants else ""))
        console.print(head + Text(": ") + state_text(row.status), highlight=False)
        print_reasons(console, said(row.reasons))


def _in_variants(plan: Plan) -> str:
    variants = [v for v in plan.variants if v]
    return f" in {len(variants)} variants" if len(variants) > 1 else ""


def _print_totals(plan: Plan, console: Console) -> None:
    """How many renders, what they cost, and what cannot be priced yet."""
    renders = sum(1 for row in plan.rows if row.renders)
    later = sum(1 for row in plan.rows if row.shot.pending)
    collect = sum(1 for row in plan.rows if row.status == ShotState.IN_FLIGHT)
    fetch = sum(1 for row in plan.rows if row.status == ShotState.REMOTE)
    console.print(
        f"[bold]{plan.shot_count}[/bold] shots{_in_variants(plan)}, "
        f"[bold]{len(plan.rows)}[/bold] unique renders (a render variants share is one), "
        f"[bold]{renders}[/bold] to render"
        + (f", {collect} in flight to collect" if collect else "")
        + (f", {fetch} to fetch from the team cache" if fetch else "")
        + ", cost of what is needed: "
        f"[bold]{money(plan.cost_needed)}[/bold] (the whole storyboard: "
        f"{money(plan.cost_total)})"
        + (f" (+{len(plan.unpriced)} of unknown price)" if plan.unpriced else "")
    )
    if later:
        console.print(
            f"{later} key(s) are known only once the render they start from exists: they are "
            "counted at their price, an upper bound (one that turns out cached costs nothing)",
            highlight=False,
        )
    if plan.unpriced:
        names = ", ".join(dict.fromkeys(row.shot.label for row in plan.unpriced))
        console.print(
            f"[yellow]no known price for {names}[/yellow]: a build under a budget "
            "(--max-cost, budget:) refuses them; give `price:` (USD per render) to build them "
            "under one",
            highlight=False,
        )


def print_comparison(comparison: Comparison, console: Console | None = None) -> None:
    console = console or make_console()
    old, new = comparison.old, comparison.new
    console.print(Text(f"{old.name} -> {new.name}", style="bold"), highlight=False)
    for kind in ("changed", "added", "removed"):
        shots = [c for c in comparison.shots if c.kind == kind]
        if not shots:
            continue
        console.print(f"shots {kind} ({len(shots)}):", highlight=False)
        for change in shots:
            take = f" take {change.take}" if change.take > 1 else ""
            variants = f" [{', '.join(change.variants)}]" if change.variants else ""
            console.print(Text(f"  {change.label}{take}{variants}"), highlight=False)
            print_reasons(console, change.reasons)
    if not comparison.shots:
        console.print("no shot changed", highlight=False)
    if comparison.sequences:
        console.print(f"sequences affected ({len(comparison.sequences)}):", highlight=False)
        for sequence in comparison.sequences:
            console.print(Text(f"  {sequence.name}: {sequence.kind}"), highlight=False)
            print_reasons(console, sequence.reasons)
    unpriced = f" (+{comparison.unpriced} of unknown price)" if comparison.unpriced else ""
    console.print(
        Text(
            f"cost of every render: {old.name} {money(old.cost)} ({old.renders} renders), "
            f"{new.name} {money(new.cost)} ({new.renders}); the change adds "
            f"{comparison.added_renders} render(s), {money(comparison.added_cost)}{unpriced}, "
            f"of which {money(comparison.to_pay)} is not in the cache yet"
        ),
        highlight=False,
    )
