"""The transcript contract: its stored form round-trips, carries its version and each word's place
in its sentence's text, and rows of the previous release (version 1) still read."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract import STORED_VERSION, Segment, Speaker, Transcript, Word
from contract.transcript import place_words

V1_ROWS = json.loads((Path(__file__).parents[1] / "data" / "transcripts" / "v1-rows.json").read_text(encoding="utf-8"))


def _sample(diarized: bool = False, channel: int | None = None) -> Transcript:
    speaker = "S1" if diarized else None
    words = (Word(0, 400, "Hello,", speaker, 0, 6), Word(400, 900, "使用", speaker, 7, 9),
             Word(900, 1500, "ComfyUI。", speaker, 9, 17))
    return Transcript(text="Hello, 使用ComfyUI。", language="zh", duration_ms=2000,
                      segments=[Segment(0, 1500, "Hello, 使用ComfyUI。", words, "。", ((0, 400), (400, 900), (900, 1500)),
                                        speaker, channel)],
                      speakers=[Speaker("S1", "Ann")] if diarized else None)


@pytest.mark.parametrize("diarized", [False, True])
def test_the_stored_form_round_trips_with_its_version(diarized):
    transcript = _sample(diarized)
    stored = transcript.to_dict()
    assert stored["v"] == STORED_VERSION == 2
    assert Transcript.from_dict(json.loads(json.dumps(stored))) == transcript
    word = stored["segments"][0]["words"][1]
    assert (word["start_char"], word["end_char"]) == (7, 9)
    assert ("speaker" in word) is diarized and ("speakers" in stored) is diarized
    assert "channel" not in stored["segments"][0]


def test_a_segment_channel_is_stored_only_when_there_is_one():
    stored = _sample(channel=1).to_dict()
    assert stored["segments"][0]["channel"] == 1
    assert Transcript.from_dict(stored).segments[0].channel == 1


def test_every_word_is_its_place_in_the_text():
    segment = _sample().segments[0]
    assert [segment.text[w.start_char:w.end_char] for w in segment.words] == [w.text for w in segment.words]
    with pytest.raises(ValueError, match="not in order"):
        Segment(0, 1, "ab", (Word(0, 1, "b", None, 1, 2), Word(1, 2, "a", None, 0, 1)))


@pytest.mark.parametrize("name", sorted(V1_ROWS))
def test_rows_of_the_previous_release_read_with_every_word_placed(name):
    row = V1_ROWS[name]
    assert "v" not in row and all("start_char" not in w for s in row["segments"] for w in s["words"])
    transcript = Transcript.from_dict(row)
    for stored, segment in zip(row["segments"], transcript.segments):
        assert segment.placed and [w.text for w in segment.words] == [w["text"] for w in stored["words"]]
        assert [segment.text[w.start_char:w.end_char] for w in segment.words] == [w["text"] for w in stored["words"]]
    assert (transcript.speakers is not None) == ("speakers" in row)
    upgraded = transcript.to_dict()
    assert upgraded["v"] == 2 and Transcript.from_dict(upgraded) == transcript


def test_words_that_do_not_spell_the_text_of_an_old_row_are_left_unplaced():
    words = [Word(0, 1, "歡"), Word(1, 2, "迎")]
    assert place_words("欢迎", words) == words  # converted word by word, the sentence as a whole
    assert [(w.start_char, w.end_char) for w in place_words("“歡, 迎", words)] == [(1, 2), (4, 5)]
    assert place_words("歡x迎", words) == words  # a letter between two words: they do not spell it
    assert not Segment(0, 2, "欢迎", tuple(place_words("欢迎", words))).placed


def test_a_later_version_is_refused():
    with pytest.raises(ValueError, match="version 3"):
        Transcript.from_dict({**_sample().to_dict(), "v": 3})
