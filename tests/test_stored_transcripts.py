"""Transcripts stored by the previous release (tests/data/transcripts) render as that release
rendered them: the exports byte for byte, the gateway's frame byte for byte where each word was
one unit of FunASR's count; where a word holds several units (Whisper's "大家"), each unit now
takes its share of its own word's span instead of a spread over the whole sentence."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract import Transcript
from core.export import render
from gateway.protocol import FileRequest, encode, result_frame, text_units

DATA = Path(__file__).parent / "data" / "transcripts"
ROWS = json.loads((DATA / "v1-rows.json").read_text(encoding="utf-8"))
RENDERS = json.loads((DATA / "v1-renders.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(ROWS))
@pytest.mark.parametrize("fmt", ["srt", "vtt", "txt"])
def test_exports_of_old_rows_are_byte_identical(name, fmt):
    assert render(Transcript.from_dict(ROWS[name]), fmt) == RENDERS[name][fmt]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_exports_of_old_rows_are_the_same_after_the_upgrade(name):
    """A row read, written at version 2 and read again renders the same."""
    upgraded = Transcript.from_dict(Transcript.from_dict(ROWS[name]).to_dict())
    assert all(render(upgraded, fmt) == RENDERS[name][fmt] for fmt in ("srt", "vtt", "txt"))


@pytest.mark.parametrize("name", ["jfk.flac", "jfk.flac#diarized", "hotwords.mp3"])
def test_gateway_frames_of_old_rows_are_byte_identical_where_each_word_is_one_unit(name):
    frame = encode(result_frame(FileRequest(wav_name="w", mode="offline"), Transcript.from_dict(ROWS[name]), "job1"))
    assert frame == RENDERS[name]["frame"]


@pytest.mark.parametrize("name", ["asr_example.wav", "asr_example.wav#zh-tw"])
def test_a_word_of_several_units_shares_its_own_span(name):
    transcript = Transcript.from_dict(ROWS[name])
    frame = json.loads(encode(result_frame(FileRequest(wav_name="w", mode="offline"), transcript, "job1")))
    before = json.loads(RENDERS[name]["frame"])
    assert {k: v for k, v in frame.items() if k not in ("timestamp", "stamp_sents")} == \
        {k: v for k, v in before.items() if k not in ("timestamp", "stamp_sents")}
    spans = json.loads(frame["timestamp"])
    assert len(spans) == len(json.loads(before["timestamp"])) == sum(len(text_units(s.text)) for s in transcript.segments)
    assert [s["text_seg"] for s in frame["stamp_sents"]] == [s["text_seg"] for s in before["stamp_sents"]]
    segment = transcript.segments[0]
    pair = next(w for w in segment.words if len(w.text) == 2)  # "大家": two units, one word
    at = sum(1 for a, _ in text_units(segment.text) if a < pair.start_char)
    middle = round((pair.start_ms + pair.end_ms) / 2)
    assert spans[at:at + 2] == [[pair.start_ms, middle], [middle, pair.end_ms]]
    assert all(a <= b for a, b in spans) and [a for a, _ in spans] == sorted(a for a, _ in spans)
