"""Films delivered to spec, checked as a person would check them."""

from __future__ import annotations

import pytest

from pipeline import captions
from pipeline.nodes import CaptionCue, Captions


def test_captions_are_sentences_timed_by_their_characters() -> None:
    said = captions.sentences("One two. Three four five\nsix seven eight!  Yes?")
    assert said == ("One two.", "Three four five six seven eight!", "Yes?")
    made = Captions(said, "voice", 1.0, (CaptionCue(0.2, 0.9, "<b> & "),))
    cues = captions.timed(made, 6.0, 6.5)
    assert [cue.text for cue in cues] == ["<b> & ", *said]
    spoken = cues[1:]
    assert spoken[0].start == 1.0 and spoken[-1].end == 6.5  # cut at the film's end
    # Each sentence's share of the voice is its share of the characters.
    assert spoken[0].end - spoken[0].start == pytest.approx(6.0 * 8 / 44, abs=0.002)
    assert "&lt;b&gt; &amp;" in captions.vtt(cues) and "<b> &" in captions.srt(cues)
    long = captions.sentences("word " * 40)
    assert all(len(line) <= captions.LINE for cue in long for line in cue.split("\n"))
    assert all(cue.count("\n") < captions.LINES for cue in long)
