"""The pipeline's own work between the models (batching, timelines, punctuation, ITN, sentences),
checked through the stage seam with a scripted ASR model standing in for a profile's: real
decoding, real Silero VAD and real wetext ITN around it."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pipeline import transcribe
from pipeline.stages import AsrModel, AsrResult, AsrWord, Engine, PuncModel
from contract import Hotword
from pipeline.types import TranscribeOptions
from pipeline.vad_silero import SileroVad

pytestmark = pytest.mark.subprocess


@dataclass
class ScriptedAsr:
    """Says the same words for every segment, spread over it: what an unpunctuated model
    (Paraformer) would hand over. Records the batches it was given."""

    tokens: tuple[str, ...]
    language: str = "zh"
    supports_hotwords: bool = False
    batches: list[list[int]] = field(default_factory=list)

    def recognize(self, segments, *, language, hotwords=()):
        self.batches.append([len(s) for s in segments])
        results = []
        for audio in segments:
            step = len(audio) * 1000 // 16_000 // (len(self.tokens) + 1)
            words = tuple(AsrWord(i * step, i * step + step - 10, t) for i, t in enumerate(self.tokens))
            results.append(AsrResult(text="".join(self.tokens), language=self.language, words=words, punctuated=False))
        return results


class EveryFifthFullStop:
    """Punctuation model: a full stop after every fifth token, a comma after every other."""

    def punctuate(self, tokens, *, language):
        return ["。" if (i + 1) % 5 == 0 else ("，" if i % 2 else "") for i in range(len(tokens))]


@pytest.fixture(scope="module")
def vad():
    return SileroVad()



@pytest.fixture
def jfk_three_times(make_media, speech_dir):
    src = str(speech_dir / "jfk.flac")
    return make_media("jfk3.wav", "-i", src, "-i", src, "-i", src, "-filter_complex",
                      "[0:a][1:a][2:a]concat=n=3:v=0:a=1", "-ac", "1", "-ar", "16000")


def test_stand_ins_satisfy_the_protocols():
    assert isinstance(ScriptedAsr(("a",)), AsrModel)
    assert isinstance(EveryFifthFullStop(), PuncModel)


def test_itn_switch_and_word_realignment(vad, itn, speech_dir, tmp_path):
    asr = ScriptedAsr(tuple("我有一百二十三个苹果"))
    engine = Engine(name="scripted", vad=vad, asr=asr, itn=itn)
    on = transcribe(speech_dir / "asr_example.wav", TranscribeOptions(), engine, work_dir=tmp_path)
    off = transcribe(speech_dir / "asr_example.wav", TranscribeOptions(itn=False), engine, work_dir=tmp_path)
    assert off.text == "我有一百二十三个苹果"
    assert on.text == "我有123个苹果"
    words_off, words_on = off.segments[0].words, on.segments[0].words
    assert [w.text for w in words_on] == ["我", "有", "123", "个", "苹", "果"]
    assert words_on[2].start_ms == words_off[2].start_ms and words_on[2].end_ms == words_off[6].end_ms


def test_english_itn_keeps_words(vad, itn, speech_dir, tmp_path):
    asr = ScriptedAsr(("no", "one", "paid", "twenty", "three", "dollars"), language="en")
    engine = Engine(name="scripted", vad=vad, asr=asr, itn=itn)
    transcript = transcribe(speech_dir / "jfk.flac", TranscribeOptions(), engine, work_dir=tmp_path)
    assert transcript.text == "no one paid $23"
    assert [w.text for w in transcript.segments[0].words] == ["no", "one", "paid", "$23"]


def test_punctuation_model_cuts_sentences_across_the_text(vad, speech_dir, tmp_path):
    asr = ScriptedAsr(tuple("一二三四五六七"))
    engine = Engine(name="scripted", vad=vad, asr=asr, punc=EveryFifthFullStop())
    transcript = transcribe(speech_dir / "asr_example.wav", TranscribeOptions(itn=False), engine, work_dir=tmp_path)
    assert [s.text for s in transcript.segments] == ["一二，三四，五。", "六，七"]
    assert [s.punc for s in transcript.segments] == ["。", ""]
    assert transcript.segments[0].tokens == tuple((w.start_ms, w.end_ms) for w in transcript.segments[0].words)
    assert transcript.warnings == []


def test_batches_hold_at_most_batch_seconds_longest_first(vad, jfk_three_times, tmp_path):
    asr = ScriptedAsr(("ask", "not"), language="en")
    engine = Engine(name="scripted", vad=vad, asr=asr, batch_seconds=12.0)
    transcript = transcribe(jfk_three_times, TranscribeOptions(itn=False), engine, work_dir=tmp_path)
    lengths = [n for batch in asr.batches for n in batch]
    assert len(lengths) >= 2
    assert lengths == sorted(lengths, reverse=True)
    assert all(sum(batch) <= 12 * 16_000 for batch in asr.batches if len(batch) > 1)
    starts = [s.start_ms for s in transcript.segments]
    assert starts == sorted(starts) and transcript.segments[-1].end_ms <= 33_000


def test_padded_windows_count_against_the_batch(vad, jfk_three_times, tmp_path):
    """Whisper pads every segment to 30 s, so a 30 s budget holds one segment however short."""
    by_seconds, by_windows = ScriptedAsr(("ask", "not"), language="en"), ScriptedAsr(("ask", "not"), language="en")
    for asr, window_ms in ((by_seconds, 0), (by_windows, 30_000)):
        engine = Engine(name="scripted", vad=vad, asr=asr, batch_seconds=30.0, asr_window_ms=window_ms)
        transcribe(jfk_three_times, TranscribeOptions(itn=False), engine, work_dir=tmp_path)
    assert max(len(batch) for batch in by_seconds.batches) >= 2
    assert max(len(batch) for batch in by_windows.batches) == 1


def test_unsupported_hotwords_and_missing_itn_are_warned(vad, speech_dir, tmp_path):
    engine = Engine(name="scripted", vad=vad, asr=ScriptedAsr(("好",)))
    transcript = transcribe(speech_dir / "asr_example.wav", TranscribeOptions(hotwords=(Hotword("达摩院"),)),
                            engine, work_dir=tmp_path)
    assert any("hotwords" in w for w in transcript.warnings)
    assert any("inverse text normalisation" in w for w in transcript.warnings)


def test_a_raising_progress_callback_stops_the_run(vad, speech_dir, tmp_path):
    class Cancelled(Exception):
        pass

    def cancel(progress):
        if progress.stage == "asr":
            raise Cancelled

    engine = Engine(name="scripted", vad=vad, asr=ScriptedAsr(("好",)))
    with pytest.raises(Cancelled):
        transcribe(speech_dir / "asr_example.wav", TranscribeOptions(), engine, work_dir=tmp_path, on_progress=cancel)
    assert list(tmp_path.iterdir()) == []
