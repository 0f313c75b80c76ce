"""Expansion -> Graph: the build's renders and films, by node, with their edges.

Built once per command from the expansion (`plan.graph_for` is the one loader), and asked by
everything after it: the plan, the scheduler, the film step, the lock, gc. A node is a render
as expanded, named by the key it was expanded with. A render that starts from another's
frame is expanded with a pending key (the frame's bytes are not known yet); `resolve` is the
one place that key becomes the real one, when the frame exists (already in the cache when the
build is planned, or once the upstream render is made). The graph never changes: resolving
gives a value, and a graph with more keys known is a new graph (`with_resolved`). A film is
keyed by its clips' keys, so it is asked of the graph (`film`) with the keys known so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.errors import no_such
from pipeline.nodes import Expansion, Film, FrameOf, Node, placed, render_key
from pipeline.order import upstream_first

# Where an upstream render's frame is on disk and its hash, or None while it is not there.
# A whole output (a clip, a voice) comes with its length in seconds, a frame with None.
FrameFinder = Callable[[Node, str | float], tuple[Path, str, float | None] | None]


@dataclass(frozen=True)
class Graph:
    """Renders by node (in the order written), each with the variants that use it, the
    films, and the keys resolved so far."""

    renderer: str
    nodes: Mapping[str, Node]  # node -> the render as expanded
    variants: Mapping[str, tuple[str, ...]]  # node -> the variants that use it
    expansion: Expansion
    order: tuple[str, ...]  # the nodes, each after the renders it starts from
    resolved: Mapping[str, Node] = field(default_factory=dict)  # node -> its frames known

    @classmethod
    def of(cls, expansion: Expansion) -> Graph:
        nodes: dict[str, Node] = {}
        variants: dict[str, list[str]] = {}
        for shot in expansion.shots:
            nodes.setdefault(shot.key, shot)
            names = variants.setdefault(shot.key, [])
            if shot.variant and shot.variant not in names:
                names.append(shot.variant)
        frozen = {node: tuple(names) for node, names in variants.items()}
        order = upstream_first(list(nodes), lambda node: (a.upstream for a in nodes[node].after))
        return cls(expansion.renderer, nodes, frozen, expansion, tuple(order))

    # -- renders --------------------------------------------------------------------------

    def shot(self, node: str) -> Node:
        """The render as it is now: with the frames known so far."""
        return self.resolved.get(node) or self.nodes[node]

    def renders(self) -> list[Node]:
        """Every render, one per node, as it is now, in the order written."""
        return [self.shot(node) for node in self.nodes]

    def by_key(self) -> list[tuple[Node, tuple[str, ...]]]:
        """Each render once, by the key it has now, with every variant that uses it. Nodes
        whose keys came out the same once their inputs were known (the lip-syncs of one clip
        to the same voice bytes in two languages) are one render, of each of their
        variants."""
        found: dict[str, tuple[Node, tuple[str, ...]]] = {}
        for node in self.nodes:
            shot = self.shot(node)
            first, variants = found.get(shot.key, (shot, ()))
            found[shot.key] = (first, tuple(dict.fromkeys((*variants, *self.variants[node]))))
        return list(found.values())

    def variant_shots(self) -> list[Node]:
        """Every render of every variant (a render shared by variants once for each, each
        naming its own variant), as it is now."""
        return [replace(self.shot(shot.key), variant=shot.variant) for shot in self.expansion.shots]

    def waiting(self, node: str) -> list[FrameOf]:
        """The frames of upstream renders that the node still waits for."""
        return self.shot(node).waiting

    def frames_taken(self, among: Iterable[str]) -> dict[str, tuple[str | float, ...]]:
        """By node, the frames of its clip (times, `first`, `last`) that the nodes `among`
        start from; a still is used whole."""
        taken: dict[str, dict[str | float, None]] = {}
        for node in among:
            for ahead in self.nodes[node].after:
                if ahead.frame != "":
                    taken.setdefault(ahead.upstream, {})[ahead.frame] = None
        return {node: tuple(frames) for node, frames in taken.items()}

    def with_upstream(self, nodes: Iterable[str]) -> set[str]:
        """`nodes` and every render they start from, however far up."""
        wanted = set(nodes)
        looking = list(wanted)
        while looking:
            for ahead in self.nodes[looking.pop()].after:
                if ahead.upstream not in wanted:
                    wanted.add(ahead.upstream)
                    looking.append(ahead.upstream)
        return wanted

    # -- selection ------------------------------------------------------------------------

    def films_named(self, names: tuple[str, ...], spec: Path) -> list[Film] | None:
        """The films of the sequences named (by id, or by full name: `teaser--dusk`), as
        expanded; None when none is named (all of them)."""
        if not names:
            return None
        every = self.expansion.sequences
        chosen = [s for s in every if s.id in names or s.name in names]
        missing = [n for n in names if not any(n in (s.id, s.name) for s in chosen)]
        if missing:
            raise no_such("sequence", missing[0], spec, (s.id for s in every))
        return chosen

    def named(self, names: tuple[str, ...], spec: Path) -> set[str]:
        """The nodes of the shots named: by id (every render of the shot: its takes, its
        upscale), by label (`crew@airship`, `hero/upscale`), or one take of either
        (`hero#2`); a name that matches none is refused."""
        known = dict.fromkeys(n for shot in self.nodes.values() for n in (shot.shot_id, shot.label))
        for name in names:
            if _without_take(name)[0] not in known:
                raise no_such("shot", name, spec, known)
        asked = [_without_take(name) for name in names]
        return {node for node, shot in self.nodes.items() if any(_is(shot, *a) for a in asked)}

    def selected(self, only: set[str] | None, films: list[Film] | None) -> set[str] | None:
        """The nodes a build works on: the shots named (`only`), else the clips of the films
        chosen, with every render they start from; None for all."""
        if only:
            wanted = only
        elif films is not None:
            wanted = {render.key for film in films for render in film.renders()}
        else:
            return None
        return self.with_upstream(wanted & self.nodes.keys())

    # -- keys that wait on frames ---------------------------------------------------------

    def resolve(
        self, shot: Node, slot: int, image: Path, digest: str, seconds: float | None = None
    ) -> Node:
        """`shot` once the input in its `slot` is known (a frame, a clip, a voice): its key
        follows the input's bytes (it stays pending while another slot waits); a render
        priced by that input's length (`seconds`, when it is a whole clip or sound) is priced
        by it now. A value: the graph does not change."""
        images = list(shot.images)
        hashes = list(shot.image_hashes)
        images[slot], hashes[slot] = image, digest
        request = placed(shot.request, shot.place(slot), f"sha256:{digest}")
        price = shot.price
        if shot.priced_by is not None and shot.priced_by[0] == slot and seconds is not None:
            price = round(shot.priced_by[1] * seconds, 4)
        known = replace(
            shot,
            key=render_key(request, hashes, self.renderer, shot.keyed_take),
            request=request,
            images=tuple(images),
            image_hashes=tuple(hashes),
            price=price,
        )
        return known

    def with_resolved(self, resolved: Mapping[str, Node]) -> Graph:
        """This graph with more nodes' keys known (`resolved`, by node)."""
        return replace(self, resolved={**self.resolved, **resolved}) if resolved else self

    def resolved_from(self, find: FrameFinder) -> Graph:
        """This graph with every key known whose frames exist already (their renders are in
        the cache), upstream first, so a chain of cached renders is known all the way down."""
        known: dict[str, Node] = dict(self.resolved)
        for node in self.order:
            shot = known.get(node) or self.nodes[node]
            for ahead in shot.waiting:
                upstream = known.get(ahead.upstream) or self.nodes[ahead.upstream]
                if upstream.pending:
                    continue
                found = find(upstream, ahead.frame)
                if found is not None:
                    shot = self.resolve(shot, ahead.slot, *found)
                    known[node] = shot
        return replace(self, resolved=known)

    # -- films ----------------------------------------------------------------------------

    def film(self, sequence: Film) -> Film:
        """The film with its clips' keys as known now (its recipe, and so its key, follow)."""
        uses = tuple(
            replace(use, shot=self.resolved[use.shot.key]) if use.shot.key in self.resolved else use
            for use in sequence.uses
        )
        if uses == sequence.uses:
            return sequence
        return replace(sequence, uses=uses)

    def films(self) -> tuple[Film, ...]:
        """Every film of every variant and format, as keyed now."""
        return tuple(self.film(sequence) for sequence in self.expansion.sequences)


def _is(shot: Node, name: str, take: int | None) -> bool:
    """Whether `shot` is a render `name` names: a take of it (of the shot itself, not of
    what is made from it) when a take is asked."""
    if take is None:
        return name in (shot.shot_id, shot.label)
    own = shot.label == shot.base_label
    return take == shot.take and (name == shot.label or (own and name == shot.shot_id))


def _without_take(name: str) -> tuple[str, int | None]:
    """`hero#2` as the shot and its take; `hero` as the shot and every take."""
    shot, mark, take = name.rpartition("#")
    return (shot, int(take)) if mark and take.isdigit() else (name, None)
