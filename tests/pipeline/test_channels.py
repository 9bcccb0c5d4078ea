"""Channels apart on a real call-like recording: two real voices, each alone on its own channel,
transcribed one channel at a time by the real offline models and merged by time."""
from __future__ import annotations

import json

import pytest

from pipeline import transcribe
from pipeline.checkpoint import BatchResult
from pipeline.errors import ChannelOptionsError
from contract import Hotword
from pipeline.types import Progress, TranscribeOptions
from tests.support.media_files import STEREO_CALL_LEFT_FROM_MS, STEREO_CALL_RIGHT_FROM_MS
from tests.support.metrics import hanzi, wer

pytestmark = pytest.mark.slow

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
DAMO = "欢迎大家来体验达摩院推出的语音识别模型"


class _Kept:
    """A checkpoint held in memory, as the worker's SQL one holds it."""

    scope = "test"

    def __init__(self):
        self.batches: dict[str, BatchResult] = {}

    def finished(self):
        return dict(self.batches)

    def save(self, key, result):
        self.batches[key] = result


def test_each_voice_on_its_own_channel_merged_by_time(engine, stereo_call, tmp_path):
    progress: list[Progress] = []
    kept = _Kept()
    options = TranscribeOptions(channels="separate", channel_names=("agent", "customer"), hotwords=(Hotword("达摩院"),))
    transcript = transcribe(stereo_call, options, engine, work_dir=tmp_path / "work", on_progress=progress.append,
                            checkpoint=kept)

    by_channel = {c: [s for s in transcript.segments if s.channel == c] for c in (0, 1)}
    left = " ".join(s.text for s in by_channel[0])
    right = "".join(s.text for s in by_channel[1])
    # Channel 0 heard JFK alone, channel 1 the Mandarin speaker alone: nothing of one in the other.
    assert wer(JFK, left) <= 0.1, left
    assert hanzi(right) == DAMO, right
    assert not hanzi(left) and "country" not in right.lower()
    assert all(s.start_ms >= STEREO_CALL_LEFT_FROM_MS - 300 for s in by_channel[0])
    assert by_channel[1][0].start_ms >= STEREO_CALL_RIGHT_FROM_MS - 300
    # Merged by time: the Mandarin (channel 1, from 0.5 s) comes before JFK (channel 0, from 6 s).
    assert transcript.segments == sorted(transcript.segments, key=lambda s: s.start_ms)
    assert transcript.segments[0].channel == 1 and transcript.segments[-1].channel == 0
    for segment in transcript.segments:
        assert segment.speaker == f"C{segment.channel}"
        assert {w.speaker for w in segment.words} == {segment.speaker}
    assert [(s.id, s.name) for s in transcript.speakers] == [("C0", "agent"), ("C1", "customer")]
    assert transcript.duration_ms == 17_500 and transcript.warnings == []
    assert transcript.text.startswith(right[:4])

    data = transcript.to_dict()
    assert [s["channel"] for s in data["segments"]] == [s.channel for s in transcript.segments]
    assert data["speakers"] == [{"id": "C0", "name": "agent"}, {"id": "C1", "name": "customer"}]
    assert json.loads(json.dumps(data)) == data and type(transcript).from_dict(data).segments == transcript.segments

    # One progress bar over both channels, never going back, ending full.
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(0.45 <= f <= 0.55 for f in fractions)  # the first channel's end is half the bar

    # Each channel keeps its batches under its own scope; a second run reads them all and recognises nothing.
    assert kept.batches
    again = transcribe(stereo_call, options, engine, work_dir=tmp_path / "work", checkpoint=_Refusing(kept))
    assert again.to_dict() == data


class _Refusing(_Kept):
    """Kept batches, and no room for more: a run that needs to recognise anything fails."""

    def __init__(self, kept: _Kept):
        self.batches = kept.batches

    def save(self, key, result):
        raise AssertionError("a batch kept by the first run was recognised again")


def test_a_mono_file_is_one_channel_with_a_warning(engine, speech_dir, tmp_path):
    transcript = transcribe(speech_dir / "asr_example.wav", TranscribeOptions(channels="separate"), engine,
                            work_dir=tmp_path / "work")
    assert len(hanzi(transcript.text)) >= 15, transcript.text
    assert {s.channel for s in transcript.segments} == {0}
    assert [(s.id, s.name) for s in transcript.speakers] == [("C0", None)]
    assert len(transcript.warnings) == 1 and "one channel" in transcript.warnings[0]


def test_a_mixed_transcript_is_unchanged_by_channels():
    """Without channels=separate nothing says channel: the JSON is what it always was."""
    from contract import Segment, Transcript

    data = Transcript("hi", "en", 1000, [Segment(0, 1000, "hi")]).to_dict()
    assert "channel" not in data["segments"][0] and "speakers" not in data


@pytest.mark.parametrize("options, message", [
    (dict(channels="apart"), "channels must be one of mix, separate"),
    (dict(channel_names=("agent",)), "channel_names need channels=separate"),
    (dict(channels="separate", channel_names=tuple("abcdefghi")), "at most 8"),
    (dict(channels="separate", diarize=True), "does not go with diarize"),
    (dict(channel=-1), "channel number"),
])
def test_bad_channel_options(options, message):
    with pytest.raises(ChannelOptionsError, match=message) as err:
        TranscribeOptions(**options)
    assert err.value.code == "bad_channels"
