"""The one dependency order: each item after the items it starts from (depth first)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

Item = TypeVar("Item", bound=Hashable)


def upstream_first(items: Sequence[Item], upstream: Callable[[Item], Iterable[Item]]) -> list[Item]:
    """`items`, each after the items it starts from (as `upstream` names them), else in the
    order given. What `upstream` names that is not among `items` is left out; a cycle (the
    storyboard's reader refuses them) does not loop. Without recursion: a chain may be
    thousands of shots long."""
    known = set(items)
    order: list[Item] = []
    placed: set[Item] = set()
    for start in items:
        stack = [(start, False)]
        while stack:
            item, upstream_placed = stack.pop()
            if upstream_placed:
                order.append(item)
                continue
            if item in placed:
                continue
            placed.add(item)
            stack.append((item, True))
            ups = [up for up in upstream(item) if up in known and up not in placed]
            stack.extend((up, False) for up in reversed(ups))
    return order
