"""Whether each shot and film is current, and why not: the one place that decides.

`plan`, `status`, `review` and `build` all ask here (as doit's get_status does for its
tasks). Reasons compare with the lock, the record in git of what the storyboard last
resolved to: a new shot, a take added, a prompt changed (word by word), a model, size,
duration, setting or first frame changed, forced, a failure before, or a clip or film the
lock names that this cache does not hold. A reason is data (`Reason`): it is put in words
only when someone reads it (`--why`, `-v`, `--json`), so a plan computes no word diffs.

The vocabulary of the whole build is here: what a shot or film is before a build
(`ShotState`, `FilmState`), and what the build did with it (`Ran`, `Joined`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pipeline.cache.journal import Failure
from pipeline.hashing import canonical_json
from pipeline.lock import Lock, LockedSequence, LockedShot
from pipeline.nodes import Film, Node, SoundUse


class ShotState(StrEnum):
    """What a render is, before a build."""

    CACHED = "cached"
    NEW = "new"
    CHANGED = "changed"
    MISSING = "missing"  # in the lock, not in this cache
    FAILED = "failed"  # its last render failed: it is tried again
    REFUSED = "refused"  # the provider refused its request: not sent again unless forced
    IN_FLIGHT = "in flight"  # a paid task is journaled: the build collects it
    REMOTE = "remote"  # in the team cache: the build fetches it
    WAITING = "waits"  # starts from a frame of a render not made yet: its key is known then


RENDERS = frozenset(  # the states a build renders
    {ShotState.NEW, ShotState.CHANGED, ShotState.MISSING, ShotState.FAILED, ShotState.WAITING}
)


class FilmState(StrEnum):
    """What a film is, before a build."""

    CURRENT = "current"  # the file is the lock's (or the stored film's)
    STORED = "stored"  # made before: placed from the cache, not joined
    REMOTE = "remote"  # the team made it: fetched, not joined
    NEW = "new"
    CHANGED = "changed"
    MISSING = "missing"  # the lock's file is gone and no cache has it


class Ran(StrEnum):
    """What a build did with a render."""

    RENDERED = "rendered"
    CACHED = "cached"  # another build rendered it while this one waited for its key
    PULLED = "pulled"  # fetched from the team cache
    FAILED = "failed"
    SKIPPED = "skipped"  # not started: the build stopped, the budget, an upstream failure
    # Not started yet: it starts from a take picked by default that the quality check found
    # something in; the build picks another take and makes it from that one.
    DEFERRED = "deferred"


class Joined(StrEnum):
    """What a build did with a film."""

    BUILT = "built"
    PLACED = "placed"  # made before: the stored film was placed
    CURRENT = "current"  # already the lock's, left as it is
    FAILED = "failed"
    BLOCKED = "blocked"  # a clip it needs is missing


class Why(StrEnum):
    """The kinds of reason a shot or film is not current."""

    NOT_LOCKED = "not-locked"  # there is no lock yet
    NEW_SHOT = "new-shot"
    NEW_VARIANT = "new-variant"  # variants
    TAKE_ADDED = "take-added"  # take
    CHANGED = "changed"  # by a lock of an earlier version, which does not say how
    UNSAID_REQUEST = "unsaid-request"  # changed; the lock does not say what was sent
    REQUEST_CHANGED = "request-changed"  # old request, new request
    NOT_IN_CACHE = "not-in-cache"
    FAILED_BEFORE = "failed-before"  # message
    REFUSED_BEFORE = "refused-before"  # the provider's code, message, the render's name
    IN_FLIGHT = "in-flight"
    IN_TEAM_CACHE = "in-team-cache"
    WAITS_FOR_FRAME = "waits-for-frame"  # labels
    FORCED = "forced"
    NEW_SEQUENCE = "new-sequence"
    NOT_THE_LOCKS_FILE = "not-the-locks-file"  # whether the cache has a copy
    MADE_BEFORE = "made-before"
    CAPTIONS_MISSING = "captions-missing"  # whether the cache has the film to put back
    TEAM_FILM = "team-film"
    FILM_CHANGED = "film-changed"  # the recipe the lock keeps, the film
    WAITS_FOR_RENDERS = "waits-for-renders"  # labels
    BLOCKED_BY_REFUSAL = "blocked-by-refusal"  # the refused renders, as --force names them


CONTEXT_WORDS = 4  # words kept around each change of a prompt


@dataclass(frozen=True)
class Reason:
    """Why a shot or film is not current: a kind and what it is about."""

    why: Why
    about: tuple[Any, ...] = ()

    def said(self) -> list[str]:
        """The reason in words (one or more lines)."""
        return _SAY[self.why](*self.about)


def said(reasons: Iterable[Reason]) -> tuple[str, ...]:
    """Reasons in words, in order."""
    return tuple(line for reason in reasons for line in reason.said())


Name = TypeVar("Name", ShotState, FilmState)


@dataclass(frozen=True)
class State(Generic[Name]):
    """What a render (State[ShotState]) or a film (State[FilmState]) is, and why."""

    name: Name
    reasons: tuple[Reason, ...] = ()

    @property
    def said(self) -> tuple[str, ...]:
        return said(self.reasons)


@dataclass(frozen=True)
class ShotFacts:
    """Everything besides the shot that its state depends on."""

    cached: frozenset[str]
    in_flight: frozenset[str]
    failures: Mapping[str, Failure]
    locked: LockedShots
    remote: frozenset[str] = frozenset()  # keys the team cache holds


@dataclass(frozen=True)
class LockedShots:
    """The lock's shots by what they are (label and take), to compare with what is planned."""

    by_identity: dict[tuple[str, int], list[tuple[str, LockedShot]]] = field(default_factory=dict)
    labels: frozenset[str] = frozenset()
    present: bool = False
    # (label, take, variant) -> (place in the lock, key, entry) of the first entry naming it;
    # None stands for no variant at all, on either side
    by_variant: dict[tuple[str, int, str | None], tuple[int, str, LockedShot]] = field(
        default_factory=dict
    )
    keys: frozenset[str] = frozenset()

    @classmethod
    def of(cls, lock: Lock | None) -> LockedShots:
        if lock is None:
            return cls()
        found: dict[tuple[str, int], list[tuple[str, LockedShot]]] = {}
        by_variant: dict[tuple[str, int, str | None], tuple[int, str, LockedShot]] = {}
        for place, (key, entry) in enumerate(lock.shots.items()):
            found.setdefault((entry.shot, entry.take), []).append((key, entry))
            for variant in _or_none(entry.variants):
                by_variant.setdefault((entry.shot, entry.take, variant), (place, key, entry))
        labels = frozenset(entry.shot for entry in lock.shots.values())
        return cls(found, labels, True, by_variant, frozenset(lock.shots))

    def find(self, shot: Node, variants: Iterable[str]) -> tuple[str, LockedShot] | None:
        """The lock's entry for this shot in these variants: its own key first, then the
        first entry in the lock that names one of the variants."""
        if shot.key in self.keys:
            for key, entry in self.by_identity[(shot.label, shot.take)]:
                if key == shot.key:
                    return key, entry
        named = [
            self.by_variant[at]
            for at in ((shot.label, shot.take, v) for v in _or_none(variants))
            if at in self.by_variant
        ]
        if not named:
            return None
        _, key, entry = min(named, key=lambda item: item[0])
        return key, entry


def shot_state(shot: Node, variants: tuple[str, ...], facts: ShotFacts) -> State[ShotState]:
    """What a shot is now, and why it renders if it does."""
    if shot.key in facts.cached:
        return State(ShotState.CACHED)
    if shot.pending:
        waits_on = tuple(
            dict.fromkeys(a.label for a in shot.after if not shot.image_hashes[a.slot])
        )
        return State(ShotState.WAITING, (Reason(Why.WAITS_FOR_FRAME, (waits_on,)),))
    if shot.key in facts.in_flight:
        return State(ShotState.IN_FLIGHT, (Reason(Why.IN_FLIGHT),))
    if shot.key in facts.remote:
        return State(ShotState.REMOTE, (Reason(Why.IN_TEAM_CACHE),))
    failure = facts.failures.get(shot.key)
    if failure is not None and failure.final:
        refused = Reason(Why.REFUSED_BEFORE, (failure.code, failure.message, shot.one_render))
        return State(ShotState.REFUSED, (refused,))
    if failure is not None:
        return State(ShotState.FAILED, (Reason(Why.FAILED_BEFORE, (failure.message,)),))
    found = facts.locked.find(shot, variants)
    if found is None:
        if (shot.label, shot.take) in facts.locked.by_identity:
            return State(ShotState.NEW, (Reason(Why.NEW_VARIANT, (variants,)),))
        if shot.label in facts.locked.labels:
            return State(ShotState.NEW, (Reason(Why.TAKE_ADDED, (shot.take,)),))
        first = Why.NEW_SHOT if facts.locked.present else Why.NOT_LOCKED
        return State(ShotState.NEW, (Reason(first),))
    key, entry = found
    if key == shot.key:
        return State(ShotState.MISSING, (Reason(Why.NOT_IN_CACHE),))
    if entry.request is None:
        return State(ShotState.CHANGED, (Reason(Why.UNSAID_REQUEST),))
    return State(ShotState.CHANGED, (Reason(Why.REQUEST_CHANGED, (entry.request, shot.request)),))


def forced(state: State[ShotState]) -> State[ShotState]:
    """A shot `--force` renders again, whatever it was."""
    return State(state.name, (Reason(Why.FORCED),))


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
    settings = (old.keys() | new.keys()) - shown
    differing = {name for name in settings if old.get(name) != new.get(name)}
    flat_old, flat_new = _flat(old, differing), _flat(new, differing)
    for name in sorted(flat_old.keys() | flat_new.keys()):
        if flat_old.get(name) != flat_new.get(name):
            before, after = _show(flat_old.get(name)), _show(flat_new.get(name))
            reasons.append(f"setting {name}: {before} -> {after}")
    return reasons or ["changed since the lock"]


def word_diff(old: str, new: str) -> str:
    """`… [-old words-] {+new words+} …`, with a few words of context around each change."""
    a, b = old.split(), new.split()
    parts: list[str] = []
    opcodes = _word_opcodes(a, b)
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


Opcode = tuple[str, int, int, int, int]


def _word_opcodes(a: list[str], b: list[str]) -> list[Opcode]:
    """difflib's opcodes from `a` to `b`. The words both share at the start and the end are
    set aside first, and difflib only looks at what is between: an edited prompt mostly
    keeps its ends, and a plan with --why diffs every changed prompt."""
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    old, new = a[start : len(a) - end], b[start : len(b) - end]
    found: list[Opcode] = [("equal", 0, start, 0, start)] if start else []
    for tag, i1, i2, j1, j2 in _middle_opcodes(old, new):
        found.append((tag, i1 + start, i2 + start, j1 + start, j2 + start))
    if end:
        found.append(("equal", len(a) - end, len(a), len(b) - end, len(b)))
    return found


def _middle_opcodes(old: list[str], new: list[str]) -> list[Opcode]:
    if not old and not new:
        return []
    if set(old).isdisjoint(new):  # nothing in common: one change, said whole
        tag = "replace" if old and new else "delete" if old else "insert"
        return [(tag, 0, len(old), 0, len(new))]
    import difflib  # here: most edits never need it

    return list(difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes())


def _flat(value: Mapping[str, Any], among: set[str] | None, prefix: str = "") -> dict[str, Any]:
    """`value`'s settings by dotted name (only the top-level names `among`, if given)."""
    flat: dict[str, Any] = {}
    for name, item in value.items():
        if among is not None and name not in among:
            continue
        if isinstance(item, dict):
            flat.update(_flat(item, None, f"{prefix}{name}."))
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
    file_matches: Callable[[Film, str], bool]  # whether a film's file has this checksum
    # whether a film's caption files beside it have these checksums (by file name)
    captions_match: Callable[[Film, Mapping[str, str]], bool] = lambda film, sums: True
    lock_present: bool = False
    team_films: frozenset[str] = frozenset()  # films the team cache holds, by key
    refused: frozenset[str] = frozenset()  # renders the provider refused, never sent again


def film_state(sequence: Film, facts: FilmFacts) -> State[FilmState]:
    """What a sequence's film is now, and why it is joined if it is."""
    # A card is drawn when the film is joined: nothing to wait for.
    missing = [r for r in sequence.renders() if r.key not in facts.cached_clips]
    refused = tuple(r.one_render for r in missing if r.key in facts.refused)
    waiting = tuple(r.label for r in missing if r.key not in facts.refused)
    wait = (Reason(Why.WAITS_FOR_RENDERS, (waiting,)),) if waiting else ()
    if refused:
        wait = (Reason(Why.BLOCKED_BY_REFUSAL, (refused,)), *wait)
    locked = facts.locked.get(sequence.name)
    stored = facts.stored_films.get(sequence.key)
    if locked is not None and locked.key == sequence.key:
        return _as_locked(sequence, facts, locked, stored is not None, wait)
    if stored is not None:
        # Caption files are vouched for by the lock alone: a film it does not name yet is
        # put back and captioned again.
        if facts.file_matches(sequence, stored) and sequence.recipe.captions is None:
            return State(FilmState.CURRENT)
        return State(FilmState.STORED, (Reason(Why.MADE_BEFORE),))
    if sequence.key in facts.team_films:
        return State(FilmState.REMOTE, (Reason(Why.TEAM_FILM),))
    if locked is None:
        first = Why.NEW_SEQUENCE if facts.lock_present else Why.NOT_LOCKED
        return State(FilmState.NEW, (Reason(first), *wait))
    if locked.recipe is None:  # a lock written before recipes: it cannot say what changed
        return State(FilmState.CHANGED, (Reason(Why.CHANGED), *wait))
    changed = Reason(Why.FILM_CHANGED, (locked.recipe, sequence))
    return State(FilmState.CHANGED, (changed, *wait))


def _as_locked(
    sequence: Film,
    facts: FilmFacts,
    locked: LockedSequence,
    stored: bool,
    wait: tuple[Reason, ...],
) -> State[FilmState]:
    """A film the lock names as it is now: current when its file (and its caption files)
    are the lock's; else put back from the cache, fetched from the team's, or joined."""
    if facts.file_matches(sequence, locked.sha256):
        if facts.captions_match(sequence, locked.captions):
            return State(FilmState.CURRENT)
        # The film is there, its caption files are not: put back, and captioned again.
        uncaptioned = Reason(Why.CAPTIONS_MISSING, (stored,))
        return State(FilmState.STORED if stored else FilmState.MISSING, (uncaptioned, *wait))
    if stored:
        return State(FilmState.STORED, (Reason(Why.NOT_THE_LOCKS_FILE, (True,)),))
    if sequence.key in facts.team_films:
        return State(FilmState.REMOTE, (Reason(Why.TEAM_FILM),))
    return State(FilmState.MISSING, (Reason(Why.NOT_THE_LOCKS_FILE, (False,)), *wait))


def film_changes(old: Mapping[str, Any], film: Film) -> list[str]:
    """What differs between an earlier film's recipe (as the lock keeps it) and this one's,
    in words: its clips, its sound, its text, and how it is joined."""
    # Both as the lock keeps them, JSON: a tuple of the recipe is a list there.
    old = json.loads(canonical_json(dict(old)))
    new = json.loads(canonical_json(film.recipe.data()))
    reasons = _piece_changes(old.get("pieces") or [], new["pieces"], film)
    for name, use in (("voice-over", film.voice), ("bed", film.bed)):
        field_name = "voice" if name == "voice-over" else "bed"
        reasons += _sound_changes(name, old.get(field_name), new[field_name], use)
    reasons += text_changes(old.get("texts") or [], new["texts"])
    if old.get("logo") != new["logo"]:
        reasons.append(
            "the logo changed" if old.get("logo") and new["logo"] else "logo: added or removed"
        )
    for name in (
        "transition",
        "overlap",
        "width",
        "height",
        "fps",
        "fit",
        "focus",
        "quality",
        "preset",
        "loudness",
        "safe",
        "encoding",
    ):
        if old.get(name) != new[name]:
            reasons.append(f"{name}: {_show(old.get(name))} -> {_show(new[name])}")
    if old.get("captions") != new["captions"]:
        reasons.append(_captions_change(old.get("captions"), new["captions"]))
    return reasons or ["changed since the lock"]


def _captions_change(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    if old is None or new is None:
        return "captions: " + ("added" if old is None else "removed")
    if old.get("said") != new["said"]:
        return "captions: the voice-over's words changed"
    return "captions: their timing or the subtitle cues changed"


def _piece_changes(old: list[dict[str, Any]], new: list[dict[str, Any]], film: Film) -> list[str]:
    """Which shots of a film changed, or are used otherwise (trimmed, cropped elsewhere)."""
    reasons = []
    if len(old) != len(new):
        reasons.append(f"clips: {len(old)} -> {len(new)}")
    changed, used = [], []
    for use, was, now in zip(film.uses, old, new, strict=False):
        if was.get("source") != now["source"]:
            changed.append(use.shot.label)
        elif (was.get("start"), was.get("end")) != (now["start"], now["end"]):
            used.append(
                f"trim of {use.shot.label}: {was.get('start')}-{was.get('end')} s -> "
                f"{now['start']}-{now['end']} s"
            )
        elif was.get("focus") != now["focus"]:
            used.append(
                f"focus of {use.shot.label}: {_show(was.get('focus'))} -> {_show(now['focus'])}"
            )
    if changed:
        reasons.append(f"shots changed: {', '.join(dict.fromkeys(changed))}")
    return reasons + used


def _sound_changes(
    name: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, use: SoundUse | None
) -> list[str]:
    """How a film's voice-over or bed changed, in words."""
    if old == new:
        return []
    if old is None or new is None:
        return [f"{name}: {'added' if old is None else 'removed'}"]
    reasons = []
    if old.get("source") != new["source"]:
        what = f"{use.render.label}'s render" if use is not None and use.render else "its file"
        reasons.append(f"the {name} changed ({what})")
    if old.get("at") != new["at"]:
        reasons.append(f"{name} starts at: {old.get('at')} s -> {new['at']} s")
    if old.get("length") != new["length"]:
        reasons.append(f"{name} kept: {_show(old.get('length'))} -> {_show(new['length'])} s")
    return reasons


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


# -- reasons in words -------------------------------------------------------------------


def _one(text: str) -> Callable[..., list[str]]:
    return lambda: [text]


_SAY: dict[Why, Callable[..., list[str]]] = {
    Why.NOT_LOCKED: _one("not in a lock yet"),
    Why.NEW_SHOT: _one("new shot"),
    Why.NEW_VARIANT: lambda variants: [f"new variant: {', '.join(variants)}"],
    Why.TAKE_ADDED: lambda take: [f"take {take} added"],
    Why.CHANGED: _one(
        "keyed otherwise by the earlier version of storyboard that wrote the lock, which "
        "keeps no join recipe to compare: joined once more (free)"
    ),
    Why.UNSAID_REQUEST: _one("changed since the lock (the lock does not say what was sent)"),
    Why.REQUEST_CHANGED: lambda old, new: request_changes(old, new),
    Why.NOT_IN_CACHE: _one(
        "in the lock but not in this cache: fetch it from a shared cache, or it renders "
        "again (a new clip: the model takes no seed)"
    ),
    Why.FAILED_BEFORE: lambda message: [f"failed before: {message}"],
    Why.REFUSED_BEFORE: lambda code, message, name: [
        f"refused ({code}); --force {name} to try again: {message}"
    ],
    Why.IN_FLIGHT: _one("a paid task is journaled: the build collects it"),
    Why.IN_TEAM_CACHE: _one("in the team cache: the build fetches it, nothing is paid"),
    Why.WAITS_FOR_FRAME: lambda labels: [
        f"starts from a frame of {', '.join(labels)}, not rendered yet: its key is known once "
        "that exists (the estimate counts it: an upper bound)"
    ],
    Why.FORCED: _one("forced (--force)"),
    Why.NEW_SEQUENCE: _one("new sequence"),
    Why.NOT_THE_LOCKS_FILE: lambda stored: [
        "the file is not the lock's: the stored film is put back"
        if stored
        else "the file is not the lock's, and the cache has no copy"
    ],
    Why.MADE_BEFORE: _one("made before: the stored film is placed, nothing is joined"),
    Why.CAPTIONS_MISSING: lambda stored: [
        "its caption files are missing or changed: "
        + ("the stored film is put back and captioned" if stored else "the cache has no copy")
    ],
    Why.TEAM_FILM: _one("in the team cache: the build fetches it, nothing is joined"),
    Why.FILM_CHANGED: lambda recipe, film: film_changes(recipe, film),
    Why.BLOCKED_BY_REFUSAL: lambda names: [
        f"blocked: the provider refused {', '.join(names)} before, and it is not sent again "
        f"(--force {' '.join(names)} to try again)"
    ],
    Why.WAITS_FOR_RENDERS: lambda labels: [
        f"waits for {len(labels)} render(s): {', '.join(dict.fromkeys(labels))}"
    ],
}


def _or_none(variants: Iterable[str]) -> list[str | None]:
    """The variants, or the one entry None (a lock entry that names no variant)."""
    return [*variants] or [None]
