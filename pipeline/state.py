"""Whether each shot and film is current, and why not: the one place that decides.

`plan`, `status`, `review` and `build` all ask here (as doit's get_status does for its
tasks). Reasons compare with the lock, the record in git of what the storyboard last
resolved to: a new shot, a take added, a prompt changed (word by word), a model, size,
duration, setting or first frame changed, forced, a failure before, or a clip or film the
lock names that this cache does not hold.

Shot states:   cached, new, changed, missing (in the lock, not in this cache), failed (before),
               in flight (a paid task is journaled: the build collects it), remote (in the
               team cache: the build fetches it), waits (it starts from a frame of a render
               not made yet, so its key is not known yet)
Film states:   current (the file is the lock's), stored (made before: placed, not joined),
               remote (the team made it: fetched, not joined), new, changed, missing (the
               lock's file is gone and no cache has it)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.lock import Lock, LockedSequence, LockedShot
from pipeline.nodes import CARD, Sequence, Shot

CACHED = "cached"
NEW = "new"
CHANGED = "changed"
MISSING = "missing"
FAILED = "failed"
IN_FLIGHT = "in flight"
REMOTE = "remote"
WAITING = "waits"  # starts from a frame of a render not made yet: its key is known then
RENDERS = frozenset({NEW, CHANGED, MISSING, FAILED, WAITING})  # states a build renders

CURRENT = "current"
STORED = "stored"

TEAM_FILM = "in the team cache: the build fetches it, nothing is joined"
CONTEXT_WORDS = 4  # words kept around each change of a prompt


@dataclass(frozen=True)
class State:
    name: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShotFacts:
    """Everything besides the shot that its state depends on."""

    cached: frozenset[str]
    in_flight: frozenset[str]
    failures: Mapping[str, str]
    locked: LockedShots
    remote: frozenset[str] = frozenset()  # keys the team cache holds


@dataclass(frozen=True)
class LockedShots:
    """The lock's shots by what they are (label and take), to compare with what is planned."""

    by_identity: dict[tuple[str, int], list[tuple[str, LockedShot]]] = field(default_factory=dict)
    labels: frozenset[str] = frozenset()
    present: bool = False

    @classmethod
    def of(cls, lock: Lock | None) -> LockedShots:
        if lock is None:
            return cls()
        found: dict[tuple[str, int], list[tuple[str, LockedShot]]] = {}
        for key, entry in lock.shots.items():
            found.setdefault((entry.shot, entry.take), []).append((key, entry))
        return cls(found, frozenset(entry.shot for entry in lock.shots.values()), True)

    def find(self, shot: Shot, variants: Iterable[str]) -> tuple[str, LockedShot] | None:
        """The lock's entry for this shot in these variants: its own key first."""
        candidates = self.by_identity.get((shot.label, shot.take), [])
        for key, entry in candidates:
            if key == shot.key:
                return key, entry
        wanted = set(variants)
        for key, entry in candidates:
            if set(entry.variants) & wanted or not (entry.variants or wanted):
                return key, entry
        return None


def shot_state(shot: Shot, variants: tuple[str, ...], facts: ShotFacts) -> State:
    """What a shot is now, and why it renders if it does."""
    if shot.key in facts.cached:
        return State(CACHED)
    if shot.pending:
        waits_on = ", ".join(
            dict.fromkeys(a.label for a in shot.after if not shot.image_hashes[a.slot])
        )
        return State(
            WAITING,
            (
                f"starts from a frame of {waits_on}, not rendered yet: its key is known once "
                "that exists (the estimate counts it: an upper bound)",
            ),
        )
    if shot.key in facts.in_flight:
        return State(IN_FLIGHT, ("a paid task is journaled: the build collects it",))
    if shot.key in facts.remote:
        return State(REMOTE, ("in the team cache: the build fetches it, nothing is paid",))
    failure = facts.failures.get(shot.key)
    if failure is not None:
        return State(FAILED, (f"failed before: {failure}",))
    found = facts.locked.find(shot, variants)
    if found is None:
        if (shot.label, shot.take) in facts.locked.by_identity:
            return State(NEW, (f"new variant: {', '.join(variants)}",))
        if shot.label in facts.locked.labels:
            return State(NEW, (f"take {shot.take} added",))
        return State(NEW, ("new shot" if facts.locked.present else "not in a lock yet",))
    key, entry = found
    if key == shot.key:
        return State(
            MISSING,
            (
                "in the lock but not in this cache: fetch it from a shared cache, or it renders "
                "again (a new clip: the model takes no seed)",
            ),
        )
    if entry.request is None:
        return State(CHANGED, ("changed since the lock (the lock does not say what was sent)",))
    return State(CHANGED, tuple(request_changes(entry.request, shot.request)))


def forced(state: State) -> State:
    """A shot `--force` renders again, whatever it was."""
    return State(state.name, ("forced (--force)",))


def request_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two requests, as a person reads it."""
    reasons = []
    old_prompt, new_prompt = old.get("positivePrompt", ""), new.get("positivePrompt", "")
    if old_prompt != new_prompt:
        reasons.append(f"prompt changed: {word_diff(str(old_prompt), str(new_prompt))}")
    if old.get("model") != new.get("model"):
        reasons.append(f"model: {old.get('model')} -> {new.get('model')}")
    old_size = f"{old.get('width')}x{old.get('height')}"
    new_size = f"{new.get('width')}x{new.get('height')}"
    if old_size != new_size:
        reasons.append(f"size: {old_size} -> {new_size}")
    if old.get("duration") != new.get("duration"):
        reasons.append(f"duration: {old.get('duration')} s -> {new.get('duration')} s")
    if old.get("inputs") != new.get("inputs"):
        reasons.append(
            "first frame changed"
            if old.get("inputs") and new.get("inputs")
            else "first frame " + ("added" if new.get("inputs") else "removed")
        )
    shown = {"positivePrompt", "model", "width", "height", "duration", "inputs"}
    flat_old, flat_new = _flat(old, shown), _flat(new, shown)
    for name in sorted(flat_old.keys() | flat_new.keys()):
        if flat_old.get(name) != flat_new.get(name):
            before, after = _show(flat_old.get(name)), _show(flat_new.get(name))
            reasons.append(f"setting {name}: {before} -> {after}")
    return reasons or ["changed since the lock"]


def word_diff(old: str, new: str) -> str:
    """`… [-old words-] {+new words+} …`, with a few words of context around each change."""
    import difflib  # here: a plan with nothing changed never needs it

    a, b = old.split(), new.split()
    parts: list[str] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    opcodes = matcher.get_opcodes()
    for index, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            words = a[i1:i2]
            first, last = index == 0, index == len(opcodes) - 1
            if len(words) > 2 * CONTEXT_WORDS + 1 or (
                (first or last) and len(words) > CONTEXT_WORDS
            ):
                head = [] if first else words[:CONTEXT_WORDS]
                tail = [] if last else words[-CONTEXT_WORDS:]
                words = [*head, "…", *tail]
            parts.extend(words)
            continue
        if i2 > i1:
            parts.append(f"[-{' '.join(a[i1:i2])}-]")
        if j2 > j1:
            parts.append(f"{{+{' '.join(b[j1:j2])}+}}")
    return " ".join(parts)


def _flat(value: Mapping[str, Any], skip: set[str], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, item in value.items():
        if not prefix and name in skip:
            continue
        if isinstance(item, Mapping):
            flat.update(_flat(item, skip, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = item
    return flat


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


# -- films ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilmFacts:
    """Everything besides the sequence that a film's state depends on."""

    locked: Mapping[str, LockedSequence]
    cached_clips: frozenset[str]  # clips in the cache now
    stored_films: Mapping[str, str]  # films the cache holds: key -> sha256
    file_matches: Callable[[Sequence, str], bool]  # whether a film's file has this checksum
    lock_present: bool = False
    team_films: frozenset[str] = frozenset()  # films the team cache holds, by key


def film_state(sequence: Sequence, facts: FilmFacts) -> State:
    """What a sequence's film is now, and why it is joined if it is."""
    waiting = [
        u.shot.label
        for u in sequence.uses
        if u.shot.key not in facts.cached_clips and u.shot.model != CARD
    ]  # a card is drawn when the film is joined: nothing to wait for
    wait = (
        (f"waits for {len(waiting)} render(s): {', '.join(dict.fromkeys(waiting))}",)
        if waiting
        else ()
    )
    locked = facts.locked.get(sequence.name)
    stored = facts.stored_films.get(sequence.key)
    if locked is not None and locked.key == sequence.key:
        if facts.file_matches(sequence, locked.sha256):
            return State(CURRENT)
        if stored is not None:
            return State(STORED, ("the file is not the lock's: the stored film is put back",))
        if sequence.key in facts.team_films:
            return State(REMOTE, (TEAM_FILM,))
        return State(MISSING, ("the file is not the lock's, and the cache has no copy", *wait))
    if stored is not None:
        if facts.file_matches(sequence, stored):
            return State(CURRENT)
        return State(STORED, ("made before: the stored film is placed, nothing is joined",))
    if sequence.key in facts.team_films:
        return State(REMOTE, (TEAM_FILM,))
    if locked is None:
        first = "new sequence" if facts.lock_present else "not in a lock yet"
        return State(NEW, (first, *wait))
    if not locked.clips:  # a lock of the first format
        return State(CHANGED, ("changed since the lock (the lock does not say how)", *wait))
    changes = film_changes(locked.clips, locked.settings, sequence)
    return State(CHANGED, (*changes, *wait))


def film_changes(
    old_clips: list[dict[str, Any]], old_settings: Mapping[str, Any], sequence: Sequence
) -> list[str]:
    """What differs between an earlier film and this one: its clips, and how they are
    joined."""
    reasons = []
    clips = sequence.clips()
    if old_clips and len(old_clips) != len(clips):
        reasons.append(f"clips: {len(old_clips)} -> {len(clips)}")
    changed, trimmed = [], []
    for use, old, new in zip(sequence.uses, old_clips, clips, strict=False):
        if old.get("key") != new["key"]:
            changed.append(use.shot.label)
        elif (old.get("in"), old.get("out")) != (new["in"], new["out"]):
            trimmed.append(
                f"trim of {use.shot.label}: {old.get('in')}-{old.get('out')} s -> "
                f"{new['in']}-{new['out']} s"
            )
    if changed:
        reasons.append(f"shots changed: {', '.join(dict.fromkeys(changed))}")
    reasons += trimmed
    for name in sorted(old_settings.keys() | sequence.settings.keys()):
        before, after = old_settings.get(name), sequence.settings.get(name)
        if before == after:
            continue
        if name == "text":
            reasons += text_changes(before or [], after or [])
        else:
            reasons.append(f"{name}: {_show(before)} -> {_show(after)}")
    return reasons or ["changed since the lock"]


def text_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """What differs between two films' text layers: the words, then the rest."""
    reasons = []
    if len(old) != len(new):
        reasons.append(f"text layers: {len(old)} -> {len(new)}")
    for number, (before, after) in enumerate(zip(old, new, strict=False), start=1):
        for name in sorted(before.keys() | after.keys()):
            was, now = before.get(name), after.get(name)
            if was == now:
                continue
            if name == "text":
                reasons.append(f"text {number}: {word_diff(str(was), str(now))}")
            elif name == "font":
                reasons.append(f"text {number}: the font changed")
            else:
                reasons.append(f"text {number} {name}: {_show(was)} -> {_show(now)}")
    return reasons
