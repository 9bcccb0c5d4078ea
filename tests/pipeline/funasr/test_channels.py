"""Channels apart on the FunASR profile (the tiny models: random weights, so the structure is
checked, not the words): each channel runs the whole FunASR pipeline on its own voice."""
from __future__ import annotations

from pipeline import transcribe
from pipeline.types import Progress, TranscribeOptions
from tests.support.media_files import STEREO_CALL_LEFT_FROM_MS, STEREO_CALL_MS


def test_funasr_labels_each_channel_and_merges_by_time(funasr_engine, stereo_call, tmp_path):
    progress: list[Progress] = []
    transcript = transcribe(stereo_call, TranscribeOptions(channels="separate", channel_names=("agent",)),
                            funasr_engine, work_dir=tmp_path / "work", on_progress=progress.append)
    assert [(s.id, s.name) for s in transcript.speakers] == [("C0", "agent"), ("C1", None)]
    assert {s.channel for s in transcript.segments} == {0, 1}, transcript.segments
    assert transcript.segments == sorted(transcript.segments, key=lambda s: s.start_ms)
    for segment in transcript.segments:
        assert segment.speaker == f"C{segment.channel}" and segment.text
        assert all(w.speaker == segment.speaker for w in segment.words)
    # Channel 0 is silent until JFK starts: FunASR's VAD found nothing of the other voice in it.
    assert min(s.start_ms for s in transcript.segments if s.channel == 0) >= STEREO_CALL_LEFT_FROM_MS - 500
    assert transcript.duration_ms == STEREO_CALL_MS
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    data = transcript.to_dict()
    assert {s["speaker"] for s in data["segments"]} == {"C0", "C1"}
