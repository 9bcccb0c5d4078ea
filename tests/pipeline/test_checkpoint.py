"""Resume through the checkpoint seam: a transcription stopped part-way and run again skips the
batches it kept and writes exactly the transcript of an uninterrupted run (real decoding, Silero
VAD and Whisper-base; one 30 s window a batch, so a minute of speech is several batches)."""
from __future__ import annotations

import dataclasses

import pytest

from tests.support.speech import build_speech
from pipeline import transcribe
from pipeline.checkpoint import BatchResult, Checkpoint, batch_key
from pipeline.stages import SpeechSpan
from contract import Hotword
from pipeline.types import TranscribeOptions

pytestmark = pytest.mark.slow


class DictCheckpoint:
    def __init__(self, scope: str = "test", kept: dict | None = None):
        self.scope = scope
        self.kept: dict[str, BatchResult] = dict(kept or {})
        self.saved: list[str] = []

    def finished(self):
        return dict(self.kept)

    def save(self, key, result):
        # Through JSON, as a database keeps it.
        self.kept[key] = BatchResult.from_json(result.to_json())
        self.saved.append(key)


class Stop(Exception):
    pass


class CountingAsr:
    def __init__(self, asr):
        self.asr, self.batches = asr, 0
        self.supports_hotwords = asr.supports_hotwords

    def recognize(self, segments, **kwargs):
        self.batches += 1
        return self.asr.recognize(segments, **kwargs)


@pytest.fixture(scope="module")
def minute_of_speech(tmp_path_factory):
    return build_speech(1.0, out_dir=tmp_path_factory.mktemp("speech"))


def test_a_stopped_run_resumes_from_its_kept_batches_with_the_same_transcript(engine, minute_of_speech, tmp_path):
    asr = CountingAsr(engine.asr)
    one_window = dataclasses.replace(engine, asr=asr, batch_seconds=30)
    options = TranscribeOptions(language="en")
    assert isinstance(DictCheckpoint(), Checkpoint)

    whole = DictCheckpoint()
    uninterrupted = transcribe(minute_of_speech, options, one_window, work_dir=tmp_path, checkpoint=whole)
    total = asr.batches
    assert total >= 3 and len(whole.saved) == total

    # The same job, stopped after two batches (as a killed worker would be)...
    kept = DictCheckpoint()

    def stop_after_two(progress):
        if len(kept.saved) == 2:
            raise Stop

    asr.batches = 0
    with pytest.raises(Stop):
        transcribe(minute_of_speech, options, one_window, work_dir=tmp_path, on_progress=stop_after_two,
                   checkpoint=kept)
    # ...and run again: only the batches it had not finished are recognised.
    asr.batches = 0
    resumed = transcribe(minute_of_speech, options, one_window, work_dir=tmp_path, checkpoint=kept)
    assert asr.batches == total - 2
    assert resumed.to_dict() == uninterrupted.to_dict()
    assert sorted(kept.kept) == sorted(whole.kept)

    # Another model set (scope) never reuses them: its first batch is recognised again (stopped
    # there; a run that reused the kept batches would save none and end without stopping).
    other = DictCheckpoint("other", kept.kept)

    def stop_after_one(progress):
        if other.saved:
            raise Stop

    asr.batches = 0
    with pytest.raises(Stop):
        transcribe(minute_of_speech, options, one_window, work_dir=tmp_path, on_progress=stop_after_one,
                   checkpoint=other)
    assert asr.batches == 1 and other.saved[0] not in whole.kept


def test_a_batch_key_depends_on_what_decides_its_words():
    spans = [SpeechSpan(0, 1000), SpeechSpan(2000, 3000)]
    plain = TranscribeOptions(language="en")
    key = batch_key("s", "offline", plain, 1, spans)
    assert key == batch_key("s", "offline", TranscribeOptions(language="en", itn=False), 1, spans)  # ITN comes later
    assert len({
        key,
        batch_key("t", "offline", plain, 1, spans),
        batch_key("s", "funasr", plain, 1, spans),
        batch_key("s", "offline", TranscribeOptions(language="zh"), 1, spans),
        batch_key("s", "offline", TranscribeOptions(language="en", hotwords=(Hotword("x", 5.0),)), 1, spans),
        batch_key("s", "offline", plain, 2, spans),
        batch_key("s", "offline", plain, 1, spans[:1]),
    }) == 7


def test_a_stored_batch_of_another_format_is_refused():
    result = BatchResult(((0, ((0, 10, "hi", "en"),)),))
    assert BatchResult.from_json(result.to_json()) == result
    with pytest.raises(ValueError):
        BatchResult.from_json({"v": 99, "spans": []})
