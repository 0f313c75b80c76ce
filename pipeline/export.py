"""A film as an editor's timeline: OpenTimelineIO, and FCPXML and CMX 3600 EDL through its
published adapters, so that DaVinci Resolve, Premiere and Final Cut open the cut.

The timeline is made from the film's recipe (nodes.JoinRecipe), the plain data the join
executes: each clip and card an item pointing at its file in the cache (an absolute file
URL) with its in and out points, each transition a centred transition between two items,
each text layer a marker over the span it shows, the voice-over and the bed on audio
tracks. Times are whole frames of the film's rate, as an editor's timeline counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import MediaError, UserError
from pipeline.nodes import Card, Film, Piece, Sound

if TYPE_CHECKING:
    import opentimelineio as otio

# --format: the adapter that writes it, the file's suffix, the package that brings it.
FORMATS = {
    "otio": ("otio_json", ".otio", "opentimelineio"),
    "fcpxml": ("fcpx_xml", ".fcpxml", "otio-fcpx-xml-adapter"),
    "edl": ("cmx_3600", ".edl", "otio-cmx3600-adapter"),
}
DISSOLVES = ("crossfade",)  # the transitions an editor's dissolve shows as they are


@dataclass(frozen=True)
class Media:
    """A file a film's recipe names, where it is and how many seconds it holds."""

    path: Path
    seconds: float


@dataclass(frozen=True)
class Exported:
    """One film's timeline: where it was written, or why it was not."""

    film: Film
    path: Path | None
    error: str = ""


def adapter(format: str) -> str:
    """The OpenTimelineIO adapter of `format`; refused, saying what to install, when it is
    not here."""
    import opentimelineio as otio

    name, _, package = FORMATS[format]
    if name not in otio.adapters.available_adapter_names():
        raise UserError(
            f"--format {format}: OpenTimelineIO's {name} adapter is not installed",
            f"pip install {package} (or pip install 'storyboard[export]')",
        )
    return name


def timeline(film: Film, media: Mapping[str, Media]) -> otio.schema.Timeline:
    """The film's timeline, from its recipe and the files it names (by key or digest)."""
    import opentimelineio as otio

    recipe = film.recipe
    made = otio.schema.Timeline(name=film.name, metadata={"storyboard": _about(film)})
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    labels = [_label(use.shot) for use in film.uses]
    joined = recipe.transition != "cut" and _frames(film, recipe.overlap) > 0
    for index, (piece, label) in enumerate(zip(recipe.pieces, labels, strict=True)):
        if index and joined:
            video.append(_transition(film))
        video.append(_item(film, index, piece, label, media[piece.source]))
    for layer in recipe.texts:
        span = _range(film, layer.start, layer.end)
        about = {"position": layer.position, "size": layer.size, "color": layer.color}
        video.markers.append(
            otio.schema.Marker(name=layer.text, marked_range=span, metadata={"storyboard": about})
        )
    made.tracks.append(video)
    for name, sound in (("A1 voice", recipe.voice), ("A2 bed", recipe.bed)):
        if sound is not None:
            made.tracks.append(_sound_track(film, name, sound, media[sound.source]))
    return made


def _about(film: Film) -> dict[str, Any]:
    recipe = film.recipe
    return {
        "film": film.name,
        "key": film.key,
        "sequence": film.id,
        "variant": film.variant,
        "format": film.format,
        "width": recipe.width,
        "height": recipe.height,
        "fit": recipe.fit,
        "transition": recipe.transition,
        "logo": recipe.logo.image if recipe.logo is not None else None,
    }


def _label(shot: Any) -> str:
    if isinstance(shot, Card):
        return f"card: {shot.prompt}"
    return shot.label + (f" take {shot.take}" if shot.takes > 1 else "")


def _frames(film: Film, seconds: float) -> int:
    return round(seconds * film.recipe.fps)


def _time(film: Film, frames: int) -> otio.opentime.RationalTime:
    import opentimelineio as otio

    return otio.opentime.RationalTime(frames, film.recipe.fps)


def _range(film: Film, start: float, end: float) -> otio.opentime.TimeRange:
    import opentimelineio as otio

    first = _frames(film, start)
    return otio.opentime.TimeRange(_time(film, first), _time(film, _frames(film, end) - first))


def _halves(film: Film) -> tuple[int, int]:
    """A transition's frames before the cut and after it: centred on the cut, as editors
    lay a dissolve; the frames of both add up to the join's overlap."""
    overlap = _frames(film, film.recipe.overlap)
    return overlap // 2, overlap - overlap // 2


def _item(film: Film, index: int, piece: Piece, label: str, file: Media) -> otio.schema.Clip:
    """A clip or card of the film: its file, and the frames of it the film shows between
    the transitions around it (their halves reach into its handles)."""
    import opentimelineio as otio

    before, after = _halves(film)
    last = index == len(film.recipe.pieces) - 1
    end = file.seconds if piece.to_end else min(piece.end, file.seconds)
    first = _frames(film, piece.start) + (after if index else 0)
    stop = _frames(film, end) - (0 if last else before)
    reference = otio.schema.ExternalReference(
        target_url=file.path.resolve().as_uri(),
        available_range=otio.opentime.TimeRange(_time(film, 0), _time(film, _frames(film, end))),
    )
    return otio.schema.Clip(
        name=label,
        media_reference=reference,
        source_range=otio.opentime.TimeRange(_time(film, first), _time(film, stop - first)),
        metadata={"storyboard": {"key": piece.source, "card": piece.drawn}},
    )


def _transition(film: Film) -> otio.schema.Transition:
    import opentimelineio as otio

    name = film.recipe.transition
    before, after = _halves(film)
    kind = (
        otio.schema.TransitionTypes.SMPTE_Dissolve
        if name in DISSOLVES
        else otio.schema.TransitionTypes.Custom
    )
    return otio.schema.Transition(
        name=name,
        transition_type=kind,
        in_offset=_time(film, before),
        out_offset=_time(film, after),
    )


def _sound_track(film: Film, name: str, sound: Sound, file: Media) -> otio.schema.Track:
    """A voice from where it starts, or a bed from the film's start: as much of it as the
    film plays."""
    import opentimelineio as otio

    track = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Audio)
    start = _frames(film, sound.at)
    if start:
        track.append(otio.schema.Gap(source_range=_range(film, 0, sound.at)))
    room = film.recipe.duration - sound.at
    plays = min(file.seconds, sound.length or room, room)
    whole = otio.opentime.TimeRange(_time(film, 0), _time(film, _frames(film, file.seconds)))
    reference = otio.schema.ExternalReference(
        target_url=file.path.resolve().as_uri(), available_range=whole
    )
    track.append(
        otio.schema.Clip(
            name=name.split(" ", 1)[1],
            media_reference=reference,
            source_range=_range(film, 0, plays),
            metadata={"storyboard": {"key": sound.source}},
        )
    )
    return track


# -- writing --------------------------------------------------------------------------------


def written(made: otio.schema.Timeline, format: str) -> str:
    """The timeline in `format`'s words. FCPXML keeps the markers of items only: there,
    each text marker goes on the clip it starts over, in that clip's time."""
    import opentimelineio as otio

    name = adapter(format)
    if format == "fcpxml":
        made = _markers_on_clips(made)
    return str(otio.adapters.write_to_string(made, adapter_name=name))


def _markers_on_clips(made: otio.schema.Timeline) -> otio.schema.Timeline:
    import opentimelineio as otio

    copy = made.deepcopy()
    video = copy.video_tracks()[0]
    clips = list(video.find_clips())
    for marker in list(video.markers):
        start = marker.marked_range.start_time
        for clip in clips:
            shown = clip.trimmed_range_in_parent()
            if shown is not None and shown.contains(start):
                moved = start - shown.start_time + clip.trimmed_range().start_time
                clip.markers.append(
                    otio.schema.Marker(
                        name=marker.name,
                        marked_range=otio.opentime.TimeRange(moved, marker.marked_range.duration),
                        metadata=marker.metadata,
                    )
                )
                break
    video.markers[:] = []
    return copy


def media_of(
    film: Film, clip: Callable[[str], Media | None], sound_file: Callable[[Path], float]
) -> dict[str, Media] | list[str]:
    """The files of a film's recipe, by key or digest: its clips and cards (`clip`: from the
    cache), its voice and bed (a render's, from the cache; a file's, measured with
    `sound_file`); or the labels of those the cache does not hold."""
    found: dict[str, Media] = {}
    missing: list[str] = []
    for piece, use in zip(film.recipe.pieces, film.uses, strict=True):
        held = clip(piece.source)
        if held is None:
            missing.append(use.shot.label)
        else:
            found[piece.source] = held
    for sound in (film.voice, film.bed):
        if sound is None:
            continue
        if sound.render is not None:
            held = clip(sound.render.key)
            if held is None:
                missing.append(sound.render.label)
            else:
                found[sound.render.key] = held
        else:
            path = film.files[sound.digest]
            try:
                found[sound.digest] = Media(path, sound_file(path))
            except MediaError as exc:
                missing.append(f"{path.name} ({exc.message})")
    return list(dict.fromkeys(missing)) or found
