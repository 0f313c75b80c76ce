"""The decision core without processes: states from hand-built facts, the graph of an
in-memory storyboard (`spec.loads`), and plans against a cache folder. Table-driven: each
row is a situation and what must be decided of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.cache import Cache, Failure
from pipeline.errors import UserError
from pipeline.expand import expand
from pipeline.graph import Graph
from pipeline.lock import Lock, LockedSequence, LockedShot
from pipeline.nodes import Film, Node
from pipeline.outputs import OutputIndex
from pipeline.plan import Where, make_plan
from pipeline.spec import loads
from pipeline.state import (
    FilmFacts,
    FilmState,
    LockedShots,
    ShotFacts,
    ShotState,
    Why,
    film_state,
    shot_state,
    word_diff,
)

HEAD = "version: 1\nname: t\n"
CHAIN = (
    HEAD
    + "shots:\n"
    + "  - {id: c, prompt: third, first_frame: {shot: b, frame: last}}\n"
    + "  - {id: b, prompt: second, first_frame: {shot: a, frame: last}}\n"
    + "  - {id: a, prompt: first}\n"
    + "sequences:\n  - {id: all, shots: [a, b, c]}\n"
)
PAIR = HEAD + "shots:\n  - {id: a, prompt: one}\n  - {id: b, prompt: two}\n"


def graph_of(tmp_path: Path, text: str, renderer: str = "runware") -> Graph:
    return Graph.of(expand(loads(text, tmp_path / "t.yaml"), renderer))


def locked(shot: Node, key: str | None = None, **changes: object) -> dict[str, LockedShot]:
    entry = LockedShot(
        shot=shot.label,
        variants=[],
        take=shot.take,
        renderer="runware",
        sha256="0" * 64,
        duration=6.0,
        request=shot.request,
    )
    return {key or shot.key: entry.model_copy(update=changes)}


def facts(lock: dict[str, LockedShot] | None = None, **given: object) -> ShotFacts:
    return ShotFacts(
        cached=frozenset(given.get("cached", ())),
        in_flight=frozenset(given.get("in_flight", ())),
        failures=dict(given.get("failures", {})),
        locked=LockedShots.of(Lock(storyboard="t", renderer="runware", shots=lock))
        if lock is not None
        else LockedShots(),
        remote=frozenset(given.get("remote", ())),
    )


# -- shots ----------------------------------------------------------------------------------

TRIED = Failure(message="timeoutProvider: the provider did not answer")
REFUSED = Failure(
    message="sensitiveContentDetected: refused", code="sensitiveContentDetected", final=True
)

SHOT_CASES = {
    # situation: (facts of render `a` (or c, the end of a chain), state, first reason)
    "in the cache": (lambda a: facts(cached={a.key}), ShotState.CACHED, None),
    "no lock yet": (lambda a: facts(), ShotState.NEW, Why.NOT_LOCKED),
    "a lock without it": (lambda a: facts({}), ShotState.NEW, Why.NEW_SHOT),
    "a paid task journaled": (
        lambda a: facts(in_flight={a.key}),
        ShotState.IN_FLIGHT,
        Why.IN_FLIGHT,
    ),
    "the team has it": (lambda a: facts(remote={a.key}), ShotState.REMOTE, Why.IN_TEAM_CACHE),
    "failed before": (
        lambda a: facts(failures={a.key: TRIED}),
        ShotState.FAILED,
        Why.FAILED_BEFORE,
    ),
    "refused before": (
        lambda a: facts(failures={a.key: REFUSED}),
        ShotState.REFUSED,
        Why.REFUSED_BEFORE,
    ),
    "journaled beats refused": (
        lambda a: facts(in_flight={a.key}, failures={a.key: REFUSED}),
        ShotState.IN_FLIGHT,
        Why.IN_FLIGHT,
    ),
    "locked, not here": (lambda a: facts(locked(a)), ShotState.MISSING, Why.NOT_IN_CACHE),
    "locked under an old key": (
        lambda a: facts(locked(a, "old", request={**a.request, "positivePrompt": "zero"})),
        ShotState.CHANGED,
        Why.REQUEST_CHANGED,
    ),
    "locked without its request": (
        lambda a: facts(locked(a, "old", request=None)),
        ShotState.CHANGED,
        Why.UNSAID_REQUEST,
    ),
    "another take locked": (
        lambda a: facts(locked(a, "old", take=2)),
        ShotState.NEW,
        Why.TAKE_ADDED,
    ),
    "journaled beats failed": (
        lambda a: facts(in_flight={a.key}, failures={a.key: TRIED}),
        ShotState.IN_FLIGHT,
        Why.IN_FLIGHT,
    ),
}


@pytest.mark.parametrize("case", sorted(SHOT_CASES))
def test_what_a_render_is_and_why(tmp_path: Path, case: str) -> None:
    known, state, why = SHOT_CASES[case]
    a = graph_of(tmp_path, PAIR).renders()[0]
    decided = shot_state(a, (), known(a))
    assert decided.name == state
    assert (decided.reasons[0].why if decided.reasons else None) == why


def test_a_render_waiting_on_a_frame_says_which(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, CHAIN)
    c = graph.shot(graph.renders()[0].key)
    decided = shot_state(c, (), facts())
    assert decided.name == ShotState.WAITING
    assert decided.said[0].startswith("starts from a frame of b, not rendered yet")


def test_a_changed_prompt_is_put_in_words_only_when_read(tmp_path: Path) -> None:
    a = graph_of(tmp_path, PAIR).renders()[0]
    old = {**a.request, "positivePrompt": "one more word"}
    decided = shot_state(a, (), facts(locked(a, "old", request=old)))
    assert decided.reasons[0].about == (old, a.request)  # data: no diff made yet
    assert decided.said == ("prompt changed: one [-more word-]",)


WORD_DIFFS = {
    # (before, after): how the change is said
    "a word replaced": ("a b c d e f g h", "a b c X e f g h", "a b c [-d-] {+X+} e f g h"),
    "a word added at the end": ("a b c", "a b c d", "a b c {+d+}"),
    "a word taken from the start": ("a b c", "b c", "[-a-] b c"),
    "far from both ends": (
        "one two three four five six seven eight nine ten",
        "one two three four FIVE six seven eight nine ten",
        "one two three four [-five-] {+FIVE+} six seven eight nine …",
    ),
    "words swapped inside": ("a b c d", "a c b d", "a {+c+} b [-c-] d"),
    "all new": ("a b", "c d", "[-a b-] {+c d+}"),
    "one of a repeated word taken": ("a a", "a", "a [-a-]"),
}


@pytest.mark.parametrize("case", WORD_DIFFS)
def test_a_changed_prompt_is_said_as_its_changed_words(case: str) -> None:
    before, after, said = WORD_DIFFS[case]
    assert word_diff(before, after) == said


def test_the_lock_entry_of_a_render_is_its_own_key_then_the_first_naming_its_variant(
    tmp_path: Path,
) -> None:
    shot = graph_of(tmp_path, PAIR).renders()[0]
    entry = next(iter(locked(shot).values()))
    lock = {
        "k-other": entry.model_copy(update={"variants": ["warm"]}),
        "k-cold": entry.model_copy(update={"variants": ["cold", "dusk"]}),
        "k-dusk": entry.model_copy(update={"variants": ["dusk"]}),
        shot.key: entry.model_copy(update={"variants": ["noon"]}),
    }
    found = LockedShots.of(Lock(storyboard="t", renderer="runware", shots=lock))
    assert found.find(shot, ("dusk", "warm"))[0] == shot.key  # its own key wins
    moved = dataclasses.replace(shot, key="k-new")
    assert found.find(moved, ("dusk", "warm"))[0] == "k-other"  # first in the lock's order
    assert found.find(moved, ("dusk",))[0] == "k-cold"
    assert found.find(moved, ("spring",)) is None
    assert found.find(moved, ()) is None  # no entry without variants


# -- films ----------------------------------------------------------------------------------


def film_facts(
    film: Film,
    *,
    lock: str = "",
    files: str = "",
    stored: str = "",
    team: bool = False,
    clips: bool = True,
) -> FilmFacts:
    """`lock`: the lock names this film under this key ("same" for its own); `files`: the
    checksum of the file in the films folder; `stored`: of the stored film."""
    key = film.key if lock == "same" else lock
    locked = (
        {film.name: LockedSequence(key=key, path="f.mp4", sha256="L", bytes=1, duration=1.0)}
        if lock
        else {}
    )
    return FilmFacts(
        locked=locked,
        cached_clips=frozenset(u.shot.key for u in film.uses) if clips else frozenset(),
        stored_films={film.key: stored} if stored else {},
        file_matches=lambda _, sha: sha == files,
        lock_present=bool(lock),
        team_films=frozenset({film.key}) if team else frozenset(),
    )


FILM_CASES = {
    "the lock's file is there": ({"lock": "same", "files": "L"}, FilmState.CURRENT, None),
    "the lock's, file gone, stored": (
        {"lock": "same", "stored": "S"},
        FilmState.STORED,
        Why.NOT_THE_LOCKS_FILE,
    ),
    "the lock's, file gone, team has it": (
        {"lock": "same", "team": True},
        FilmState.REMOTE,
        Why.TEAM_FILM,
    ),
    "the lock's, gone everywhere": ({"lock": "same"}, FilmState.MISSING, Why.NOT_THE_LOCKS_FILE),
    "stored, its file in place": ({"stored": "S", "files": "S"}, FilmState.CURRENT, None),
    "stored, no file": ({"stored": "S"}, FilmState.STORED, Why.MADE_BEFORE),
    "no lock, nothing made": ({}, FilmState.NEW, Why.NOT_LOCKED),
    "clips not rendered": ({"clips": False}, FilmState.NEW, Why.NOT_LOCKED),
    "the lock has another key": ({"lock": "old"}, FilmState.CHANGED, Why.CHANGED),
}


@pytest.mark.parametrize("case", sorted(FILM_CASES))
def test_what_a_film_is_and_why(tmp_path: Path, case: str) -> None:
    given, state, why = FILM_CASES[case]
    film = graph_of(tmp_path, PAIR + "sequences:\n  - {id: s, shots: [a, b]}\n").films()[0]
    decided = film_state(film, film_facts(film, **given))
    assert decided.name == state
    assert (decided.reasons[0].why if decided.reasons else None) == why
    if not given.get("clips", True):
        assert decided.said[-1] == "waits for 2 render(s): a, b"


# -- the graph ------------------------------------------------------------------------------


def test_a_chain_is_ordered_upstream_first_whatever_the_order_written(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, CHAIN)
    labels = {node: graph.nodes[node].label for node in graph.nodes}
    assert [labels[n] for n in graph.nodes] == ["c", "b", "a"]  # as written
    assert [labels[n] for n in graph.order] == ["a", "b", "c"]
    assert [graph.shot(n).pending for n in graph.order] == [False, True, True]


def test_a_key_is_resolved_in_one_place_and_the_film_follows(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, CHAIN)
    _, b, c = graph.order
    film = graph.films()[0]
    frame = tmp_path / "frame.png"
    known = graph.resolve(graph.shot(b), 0, frame, "f" * 64)
    assert not known.pending and known.key != b
    assert graph.shot(b).pending  # a value: the graph itself does not change
    graph = graph.with_resolved({b: known})
    assert graph.shot(b) is known
    assert graph.shot(c).pending  # it waits on b's own frame still
    assert [ahead.upstream for ahead in graph.waiting(c)] == [b]  # nodes keep their names
    assert graph.films()[0].key != film.key  # the film's clips changed keys
    assert [u.shot.key for u in graph.films()[0].uses][1] == known.key
    again = graph_of(tmp_path, CHAIN)
    assert again.resolve(again.shot(b), 0, frame, "f" * 64).key == known.key  # same frame


def test_resolving_from_the_cache_goes_down_a_chain(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, CHAIN)
    a, b, c = graph.order
    frames = {a: "1" * 64, b: "2" * 64}
    found: dict[str, str] = {}

    def find(upstream: Node, at: str | float) -> tuple[Path, str, float | None] | None:
        node = next(n for n in graph.nodes if graph.nodes[n].label == upstream.label)
        found[node] = str(at)
        return (tmp_path / "f.png", frames[node], None) if node in frames else None

    graph = graph.resolved_from(find)
    assert not graph.shot(b).pending and not graph.shot(c).pending
    assert found == {a: "last", b: "last"}


SELECTIONS = {
    # (--only, films by name): the nodes a build works on, by label
    "everything": ((), (), None),
    "one shot and what it starts from": (("c",), (), {"a", "b", "c"}),
    "the head of a chain": (("a",), (), {"a"}),
    "a film": ((), ("all",), {"a", "b", "c"}),
}


@pytest.mark.parametrize("case", sorted(SELECTIONS))
def test_what_a_build_works_on(tmp_path: Path, case: str) -> None:
    only, films, expected = SELECTIONS[case]
    graph = graph_of(tmp_path, CHAIN)
    spec = tmp_path / "t.yaml"
    chosen = graph.selected(
        graph.named(only, spec) if only else None, graph.films_named(films, spec)
    )
    labels = None if chosen is None else {graph.nodes[n].label for n in chosen}
    assert labels == expected


TAKES = HEAD + (
    "shots:\n  - {id: a, prompt: one, takes: 3, upscale: 1080p}\n  - {id: b, prompt: two}\n"
    "sequences:\n  - {id: all, shots: [a, b]}\n"
)
NAMES = {
    # what --force or --only names: the renders it reaches (label, take)
    "a shot's id: each take and its upscale": (
        ("a",),
        {("a", 1), ("a", 2), ("a", 3), ("a/upscale", 1)},
    ),
    "one take": (("a#2",), {("a", 2)}),
    "the upscale alone, as a refusal names it": (("a/upscale",), {("a/upscale", 1)}),
    "a shot of one take, by its label": (("b",), {("b", 1)}),
}


@pytest.mark.parametrize("case", sorted(NAMES))
def test_a_name_reaches_exactly_the_renders_it_says(tmp_path: Path, case: str) -> None:
    names, expected = NAMES[case]
    graph = graph_of(tmp_path, TAKES)
    reached = graph.named(names, tmp_path / "t.yaml")
    assert {(graph.nodes[n].label, graph.nodes[n].take) for n in reached} == expected
    # The name a refusal says to force is one of these: it reaches its render alone.
    for node in reached:
        shot = graph.nodes[node]
        assert graph.named((shot.one_render,), tmp_path / "t.yaml") == {node}


@pytest.mark.parametrize(
    ("ask", "message"),
    [
        (lambda graph, spec: graph.named(("a", "d"), spec), "no shot 'd' in"),
        (lambda graph, spec: graph.films_named(("none",), spec), "no sequence 'none' in"),
    ],
)
def test_a_name_that_matches_nothing_is_refused(tmp_path, ask, message) -> None:
    with pytest.raises(UserError, match=message) as caught:
        ask(graph_of(tmp_path, CHAIN), tmp_path / "t.yaml")
    assert caught.value.hint in ("shots: c, b, a", "sequences: all")


# -- the plan -------------------------------------------------------------------------------


def test_a_plan_reads_the_cache_and_writes_nothing(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, PAIR + "sequences:\n  - {id: s, shots: [a, b]}\n")
    cache = Cache(tmp_path / "cache")
    a, b = graph.renders()
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"a clip")
    cache.clips.put(
        a.key, clip, sha256="x", duration=6.0, width=1366, height=768, renderer="runware"
    )
    cache.failures.write(b.key, TRIED)
    before = sorted(p for p in (tmp_path / "cache").rglob("*"))
    where = Where(cache, None, OutputIndex(tmp_path / "outputs.json"), tmp_path / "films")
    plan = make_plan(graph, where)
    assert [row.status for row in plan.rows] == [ShotState.CACHED, ShotState.FAILED]
    assert plan.cost_needed == 0.28 and plan.cost_total == 0.56
    assert [row.state.name for row in plan.film_rows] == [FilmState.NEW]
    assert sorted(p for p in (tmp_path / "cache").rglob("*")) == before


SOUND = """\
version: 1
name: sound
matrix: {lang: [en, de]}
vars: {lines: {en: Good morning., de: Guten Morgen.}}
voices:
  - {id: hello, text: "{{ lines[lang] }}", voice: v1}
  - {id: tag, text: Coffee., voice: v1}
music:
  - {id: bed, prompt: guitar}
shots:
  - {id: hero, prompt: a cup, duration: 10, upscale: 1080p, takes: 2}
  - {id: barista, prompt: a barista, lipsync: {voice: hello}}
sequences:
  - {id: spot, shots: [hero, barista], voice: {voice: tag}, audio: {music: bed}}
"""


def test_finishing_renders_follow_their_inputs(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, SOUND)
    by_label: dict[str, list[Node]] = {}
    for node in graph.nodes.values():
        by_label.setdefault(node.label, []).append(node)
    # A voice per way it is said: `hello` twice, `tag` once for both languages; one bed.
    assert len(by_label["hello"]) == 2 and len(by_label["tag"]) == 1
    assert len(by_label["bed"]) == 1 and graph.variants[by_label["bed"][0].key] == ("en", "de")
    # The picked take only is upscaled, once for both languages; a lip-sync per voice.
    (upscale,) = by_label["hero/upscale"]
    picked = next(s for s in by_label["hero"] if s.picked)
    assert [a.upstream for a in upscale.after] == [picked.key] and upscale.pending
    assert (upscale.width, upscale.height) == (1920, 1080)
    # No price is published: counted at its upper bound ($0.0576 a second), and no size is
    # asked of the upscaler (the service picks it).
    assert upscale.price == pytest.approx(10 * 0.0576)
    assert upscale.request["inputs"] == {"video": f"after:{picked.key}:"}
    lipsyncs = by_label["barista/lipsync"]
    assert len(lipsyncs) == 2
    voices = {s.key for s in by_label["hello"]}
    assert {s.after[1].upstream for s in lipsyncs} == voices and all(s.speaks for s in lipsyncs)
    # A lip-sync is billed by the second of the whole voice: its estimate with a margin
    # until the voice is spoken, then the voice's measured length.
    lipsync = lipsyncs[0]
    voice = graph.nodes[lipsync.after[1].upstream]
    assert lipsync.price == pytest.approx(0.044 * voice.duration * 1.5, abs=1e-4)
    spoken = graph.resolve(lipsync, 1, tmp_path / "voice.mp3", "ef" * 32, 7.5)
    assert spoken.price == pytest.approx(0.044 * 7.5)
    # A film waits on all it is made of: its clips as finished, its voice and its bed.
    film = graph.films()[0]
    made_of = {r.label for r in film.renders()}
    assert made_of == {"hero/upscale", "barista/lipsync", "tag", "bed"}
    # The upscale's key is known once the take is, and follows its bytes.
    resolved = graph.resolve(upscale, 0, tmp_path / "take.mp4", "ab" * 32)
    assert not resolved.pending and resolved.request["inputs"]["video"] == "sha256:" + "ab" * 32
    again = graph.resolve(upscale, 0, tmp_path / "take.mp4", "cd" * 32)
    assert again.key != resolved.key
    graph = graph.with_resolved({upscale.key: again})
    assert graph.film(film).key != film.key  # the film follows its upscaled clip


def test_the_upscale_of_a_take_the_same_as_another_is_one_render(tmp_path: Path) -> None:
    graph = graph_of(
        tmp_path,
        """\
version: 1
name: twice
shots:
  - {id: hero, prompt: a cup, upscale: 1080p, takes: 2}
sequences:
  - {id: one, shots: [{shot: hero, take: 1}]}
  - {id: two, shots: [{shot: hero, take: 2}]}
""",
    )
    upscales = [node for node in graph.nodes.values() if node.label == "hero/upscale"]
    assert sorted(u.take for u in upscales) == [1, 2] and upscales[0].key != upscales[1].key
    same = [graph.resolve(u, 0, tmp_path / "take.mp4", "ab" * 32).key for u in upscales]
    assert same[0] == same[1]  # the same bytes, upscaled once, whichever take they are


def test_renders_that_come_out_as_one_are_locked_once_for_every_variant(tmp_path: Path) -> None:
    """Two languages' lip-syncs of one clip whose voices came out the same bytes resolve to
    one key: the lock names that render once, with both variants (not the last one only)."""
    graph = graph_of(
        tmp_path,
        """\
version: 1
name: same
matrix: {lang: [en, de]}
vars: {hellos: {en: Hello., de: Hallo.}}
voices:
  - {id: hi, text: "{{ hellos[lang] }}", voice: narrator}
shots:
  - {id: barista, prompt: a barista, lipsync: {voice: hi}}
sequences:
  - {id: spot, shots: [barista]}
""",
    )
    lipsyncs = [n for n in graph.nodes.values() if n.label == "barista/lipsync"]
    assert len(lipsyncs) == 2
    known = {}
    for node in lipsyncs:
        shot = graph.resolve(node, 0, tmp_path / "clip.mp4", "aa" * 32)
        known[node.key] = graph.resolve(shot, 1, tmp_path / "voice.mp3", "bb" * 32, 1.2)
    graph = graph.with_resolved(known)
    once = [v for s, v in graph.by_key() if s.label == "barista/lipsync"]
    assert once == [("en", "de")]
