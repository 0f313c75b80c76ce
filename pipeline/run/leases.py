"""The team's side of rendering a key: what another machine made is pulled, what this build
renders is leased first (so two machines never pay for one key), and what it made is shared
before the lease goes.

The scheduler asks `claim` before it renders a key, renders inside `holding`, and hands
what it made to `share`. A lease whose task is still out when the build stops stays: it
expires, and whoever takes it over collects that task instead of paying again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pipeline.cache import Cache, ClipRecord
from pipeline.cache.remote import Lease, Remote
from pipeline.errors import RemoteError, RemoteReadOnly
from pipeline.nodes import Node
from pipeline.share import pull_clip, push_clip


@dataclass(frozen=True)
class Claim:
    """What the team says of a key this build is about to render."""

    record: ClipRecord | None = None  # the team's clip: pulled, nothing to render
    lease: Lease | None = None  # held by this build (None: no lease is taken)
    task: str | None = None  # a task the lease's last holder sent: collect it
    stopped: bool = False  # the build stopped while another machine held the key


@dataclass
class Team:
    """One build's dealings with the team cache. `lease`: whether renders take leases (a
    paid renderer's do: a free render costs nothing twice)."""

    remote: Remote
    cache: Cache
    renderer: str
    note: Callable[[str], None]
    stop: asyncio.Event
    lease: bool = True
    push: bool = True
    leases: dict[str, Lease] = field(default_factory=dict)

    async def claim(self, shot: Node, forced: bool) -> Claim:
        """The team's clip of the key, else the key's lease (waiting while another machine
        renders it, then taking its clip)."""
        while True:
            if not forced:
                pulled = await pull_clip(self.remote, self.cache, shot.key, shot.label)
                if pulled is not None:
                    return Claim(record=pulled)
            if not self.lease:
                return Claim()
            try:
                lease = await self.remote.acquire(
                    shot.key,
                    self.renderer,
                    shot.label,
                    lambda: self._delivered(shot, forced),
                    self.stop,
                    self.note,
                )
            except RemoteReadOnly as exc:
                # A CI runner's key: it may render what the team lacks, as without a team
                # cache, and says so once.
                if self.lease:
                    self.lease = False
                    self.note(
                        f"warning: {exc.message}: renders take no lease (a colleague may "
                        "render the same shot)"
                    )
                continue
            if lease is not None:
                self.leases[shot.key] = lease
                return Claim(lease=lease, task=lease.body.task_uuid)
            if self.stop.is_set():
                return Claim(stopped=True)
            # Another machine delivered it meanwhile: its clip is pulled on the next turn.

    @contextlib.asynccontextmanager
    async def holding(self, shot: Node, claim: Claim) -> AsyncIterator[None]:
        """The claim's lease kept alive while the key renders, and given back after, unless
        a paid task of it is still out."""
        lease = claim.lease
        if lease is None:
            yield
            return
        keeper = asyncio.create_task(self.remote.keep(lease, self.note))
        try:
            yield
        finally:
            keeper.cancel()
            self.leases.pop(shot.key, None)
            entry = self.cache.journal.read(shot.key)
            if entry is None or entry.task_uuid is None:
                await self.remote.release(lease)

    def note_task(self, key: str, task: str) -> None:
        """Write a task into the key's lease before it is sent."""
        lease = self.leases.get(key)
        if lease is not None:
            self.remote.note_task(lease, task)

    async def share(
        self, shot: Node, record: ClipRecord, forced: bool
    ) -> tuple[ClipRecord, str | None]:
        """Share a clip just rendered: the clip the key now has (another machine's, when its
        clip got there first) and what to say about it."""
        if not self.push:
            return record, None
        try:
            kept = await push_clip(self.remote, self.cache, record, replace=forced)
        except RemoteReadOnly as exc:
            self.push = False
            self.note(f"warning: {exc.message}: this build pushes nothing")
            return record, None
        except RemoteError as exc:
            self.note(
                f"warning: {shot.label}: not shared ({exc.message}); "
                "`storyboard push` shares it later"
            )
            return record, None
        if kept.sha256 == record.sha256:
            return record, None
        return kept, (
            f"{shot.label}: another build's clip reached the team cache first; this cache now "
            "holds that one, as every machine does"
        )

    async def _delivered(self, shot: Node, forced: bool) -> bool:
        return not forced and bool(await self.remote.present("clips", [shot.key]))
