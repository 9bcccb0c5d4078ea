"""The funasr profile end to end on real speech, with tiny random-weight FunASR models.

The text the models write is meaningless; what is asserted is everything around it: VAD spans,
word timestamps on the file's timeline, sentence records, hotwords reaching the model, the ITN
switch, progress, the ONNX twins, discovery of model directories and the missing-model error.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.requires import require_funasr, require_installed

require_funasr()
require_installed("onnxscript", reason="exporting the tiny ONNX models needs onnxscript")

from pipeline import transcribe  # noqa: E402
from pipeline.errors import ModelNotReadyError  # noqa: E402
from pipeline.funasr.profile import DEFAULTS, resolve_model  # noqa: E402
from pipeline.text import SENTENCE_END, as_written  # noqa: E402
from contract import Hotword, Transcript  # noqa: E402
from pipeline.types import Progress, TranscribeOptions  # noqa: E402
from tests.support.funasr_models import ASR_ID, PUNC_ONNX_ID, VAD_ONNX_ID, build_timestamp_paraformer  # noqa: E402

pytestmark = pytest.mark.funasr


@pytest.fixture
def transcribe_with(tmp_path):
    """run(engine, path, **options) -> Transcript; progress recorded in transcribe_with.progress."""
    progress: list[Progress] = []

    def go(engine, path, **options) -> Transcript:
        progress.clear()
        return transcribe(path, TranscribeOptions(**options), engine, work_dir=tmp_path / "work",
                          on_progress=progress.append)

    go.progress = progress
    return go


def assert_timeline(transcript: Transcript) -> None:
    """Words monotonic, inside the audio and inside their sentence; sentence records consistent."""
    assert transcript.segments
    previous_end = 0
    for segment in transcript.segments:
        assert 0 <= segment.start_ms <= segment.end_ms <= transcript.duration_ms
        assert segment.start_ms >= previous_end
        assert segment.words
        for word in segment.words:
            assert previous_end <= word.start_ms <= word.end_ms <= segment.end_ms
            assert word.start_ms >= segment.start_ms
            previous_end = word.end_ms
        # FunASR's stamp_sents: per-token spans and the closing mark travel with the sentence.
        assert list(segment.tokens) == [(w.start_ms, w.end_ms) for w in segment.words]
        assert segment.punc == (segment.text[-1] if segment.text[-1] in "。，？、.,?!！" else "")


def test_transcribes_real_speech_end_to_end(funasr_engine, transcribe_with, speech_path):
    transcript = transcribe_with(funasr_engine, speech_path("asr_example.wav"))

    assert transcript.duration_ms == pytest.approx(5546, abs=20)
    assert_timeline(transcript)
    # The tiny VAD hears the 0.6 s of silence before the speech; no word lies in it.
    assert transcript.segments[0].start_ms >= 500
    # The punctuation model closes the text with a sentence-final mark.
    assert transcript.segments[-1].text[-1] in SENTENCE_END
    assert transcript.text and transcript.language == "zh"
    assert transcript.warnings == []


def test_long_file_is_cut_at_its_pauses(funasr_engine, transcribe_with, long_zh_wav):
    """150 s in several VAD chunks and ASR batches: one span per spoken clip, times on the file."""
    from pipeline.audio import decode

    _, pcm = decode(long_zh_wav, long_zh_wav.with_suffix(".s16le"))
    spans = funasr_engine.vad.speech_spans(pcm)
    assert len(spans) == 18
    assert all(a.end_ms < b.start_ms for a, b in zip(spans, spans[1:]))
    assert all(4000 <= s.duration_ms <= 5600 for s in spans)

    small_batches = type(funasr_engine)(**{**funasr_engine.__dict__, "batch_seconds": 20.0})
    transcript = transcribe_with(small_batches, long_zh_wav)
    assert_timeline(transcript)
    assert transcript.duration_ms > 140_000
    assert transcript.segments[-1].end_ms > 140_000
    asr_steps = [p.fraction for p in transcribe_with.progress if p.stage == "asr"]
    assert len(asr_steps) >= 5  # 18 spans of ~5 s in batches of at most 20 s


def test_progress_runs_through_every_stage_in_order(funasr_engine, transcribe_with, speech_path):
    transcribe_with(funasr_engine, speech_path("asr_example.wav"))
    stages = [p.stage for p in transcribe_with.progress]
    order = ["decode", "vad", "asr", "punc", "itn"]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == order
    fractions = [p.fraction for p in transcribe_with.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


def test_itn_switch(funasr_engine, transcribe_with, speech_path):
    """ITN on rewrites each sentence exactly as the profile's FST normaliser does (then written as
    people write it, pipeline.text.as_written); off skips it."""
    itn = funasr_engine.itn
    assert itn.normalize("一百二十三", language="zh") == "123"  # wetext's real grammar
    calls: list[str] = []
    original = itn.normalize

    def counting(text, *, language):
        calls.append(text)
        return original(text, language=language)

    itn.normalize = counting
    try:
        raw = transcribe_with(funasr_engine, speech_path("asr_example.wav"), itn=False)
        assert calls == []
        normalised = transcribe_with(funasr_engine, speech_path("asr_example.wav"), itn=True)
    finally:
        del itn.normalize
    assert calls == [s.text for s in raw.segments]
    assert [s.text for s in normalised.segments] == [
        as_written(original(s.text, language="zh"), "zh") for s in raw.segments]
    assert_timeline(normalised)


@pytest.fixture
def hotword_spy(funasr_engine):
    """What SeACo's hotword encoder is given: the phrases funasr read, one list per batch."""
    model = funasr_engine.asr._model
    original = model.generate_hotwords_list
    seen: list[list[str]] = []

    def spy(hotword_list_or_file, tokenizer=None, frontend=None):
        if hotword_list_or_file is not None:
            seen.append(Path(hotword_list_or_file).read_text(encoding="utf-8").splitlines())
        return original(hotword_list_or_file, tokenizer=tokenizer, frontend=frontend)

    model.generate_hotwords_list = spy
    yield seen
    del model.generate_hotwords_list


def test_hotwords_passed_to_seaco(funasr_engine, transcribe_with, speech_path, hotword_spy):
    """(Merging with the server file and the caps are the submission path's: tests/core.)"""
    hotwords = (Hotword("达摩院", 20.0), Hotword("Comfy UI", 30.0), Hotword("语音识别", 10.0))

    with_hotwords = transcribe_with(funasr_engine, speech_path("asr_example.wav"), hotwords=hotwords)
    without = transcribe_with(funasr_engine, speech_path("asr_example.wav"))

    assert hotword_spy == [["达摩院", "Comfy UI", "语音识别"]]  # multi-word phrases stay whole
    assert with_hotwords.warnings == []
    assert with_hotwords.text != without.text  # the bias decoder changed the decoding


def test_hotwords_seaco_tokenises_with_its_seg_dict(funasr_engine):
    """Hotword phrases become the model's own units (Chinese characters, English sub-words)."""
    import tempfile

    model = funasr_engine.asr._model
    tokenizer = funasr_engine.asr._tokenizer
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as f:
        f.write("达摩院\ncomfyui\n")
        f.flush()
        ids = model.generate_hotwords_list(f.name, tokenizer=tokenizer, frontend=funasr_engine.asr._frontend)
    assert tokenizer.ids2tokens(ids[0]) == ["达", "摩", "院"]
    assert tokenizer.ids2tokens(ids[1]) == ["comfy@@", "ui"]


def test_model_without_hotwords_warns(load_funasr, funasr_model_dir, transcribe_with, speech_path, tmp_path):
    model_dir = build_timestamp_paraformer(tmp_path / "paraformer-large-vad-punc")
    engine = load_funasr(asr=str(model_dir))
    assert engine.asr.model_class == "BiCifParaformer" and not engine.supports_hotwords

    transcript = transcribe_with(engine, speech_path("asr_example.wav"), hotwords=(Hotword("达摩院", 20.0),))
    assert any("hotword" in w for w in transcript.warnings)
    assert_timeline(transcript)  # its own CIF timestamps


def test_onnx_vad_and_punctuation_match_pytorch(load_funasr, funasr_engine, transcribe_with, long_zh_wav):
    onnx_engine = load_funasr(vad=VAD_ONNX_ID, punc=PUNC_ONNX_ID)
    assert (onnx_engine.vad.backend, onnx_engine.punc.backend) == ("onnx", "onnx")
    assert (funasr_engine.vad.backend, funasr_engine.punc.backend) == ("pytorch", "pytorch")

    from_onnx = transcribe_with(onnx_engine, long_zh_wav)
    from_torch = transcribe_with(funasr_engine, long_zh_wav)
    assert [(s.start_ms, s.end_ms, s.text) for s in from_onnx.segments] == [
        (s.start_ms, s.end_ms, s.text) for s in from_torch.segments
    ]


def test_models_are_found_by_id_alias_or_directory(funasr_model_dir, tmp_path):
    asr_dir = funasr_model_dir / ASR_ID
    assert resolve_model("asr", ASR_ID, funasr_model_dir) == asr_dir
    # ModelScope moved damo/ models to iic/: either owner finds the same directory.
    assert resolve_model("asr", ASR_ID.replace("iic/", "damo/"), funasr_model_dir) == asr_dir
    # A fine-tuned model is a directory of the same shape, named by path.
    fine_tuned = tmp_path / "my-finetune"
    shutil.copytree(asr_dir, fine_tuned)
    assert resolve_model("asr", str(fine_tuned), tmp_path / "elsewhere") == fine_tuned


def test_missing_models_name_the_download_command(load_funasr, funasr_model_dir, tmp_path):
    empty = tmp_path / "models"
    with pytest.raises(ModelNotReadyError) as missing_all:
        load_funasr(model_dir=empty)
    message = missing_all.value.message
    assert "tingxie models download --profile funasr" in message and str(empty) in message
    assert all(model_id in message for model_id in DEFAULTS.values())
    assert missing_all.value.code == "model_missing"

    # A directory without weights (an interrupted download) is not a model either.
    partial = tmp_path / "partial"
    shutil.copytree(funasr_model_dir, partial)
    (partial / ASR_ID / "model.pt").unlink()
    with pytest.raises(ModelNotReadyError, match="asr model"):
        load_funasr(model_dir=partial)


def test_cpu_helper_processes_give_the_same_transcript(load_funasr, funasr_engine, transcribe_with, long_zh_wav):
    """VAD, punctuation and ITN in spawned helper processes (a GPU worker's set-up) change nothing."""
    pooled = load_funasr(cpu_workers=2)
    assert (pooled.vad.backend, pooled.punc.backend, pooled.itn.backend) == ("pool", "pool", "pool")
    assert pooled.itn.normalize("一百二十三", language="zh") == "123"
    from_pool = transcribe_with(pooled, long_zh_wav)
    in_process = transcribe_with(funasr_engine, long_zh_wav)
    assert [(s.start_ms, s.end_ms, s.text) for s in from_pool.segments] == [
        (s.start_ms, s.end_ms, s.text) for s in in_process.segments
    ]


class _HeldVad:
    """The engine's VAD, holding back the spans of the file's last minute chunk until ASR has
    started on those before: ASR can only start then if it runs beside VAD."""

    def __init__(self, vad):
        import threading

        self._vad = vad
        self.asr_started = threading.Event()
        self.held = False

    def iter_speech_spans(self, pcm, on_progress=None, stop=None):
        for span in self._vad.iter_speech_spans(pcm, on_progress, stop):
            if span.start_ms > 120_000 and not self.held:
                self.held = True
                assert self.asr_started.wait(60), "ASR did not start while VAD was still reading"
            yield span


class _ListOnlyVad:
    """The engine's VAD without its streaming method: the pipeline waits for all its spans."""

    def __init__(self, vad):
        self._vad = vad

    def speech_spans(self, pcm, on_progress=None):
        return self._vad.speech_spans(pcm, on_progress)


class _RecordingAsr:
    """The engine's ASR, recording the length of each span of each batch."""

    def __init__(self, asr, on_batch=None):
        self._asr = asr
        self._on_batch = on_batch
        self.batches: list[list[int]] = []
        self.supports_hotwords = asr.supports_hotwords

    def recognize(self, segments, **kwargs):
        self.batches.append([len(s) for s in segments])
        if self._on_batch is not None:
            self._on_batch(len(self.batches))
        return self._asr.recognize(segments, **kwargs)


def _with(engine, **stages):
    return type(engine)(**{**engine.__dict__, "batch_seconds": 20.0, **stages})


def test_asr_runs_beside_vad_with_the_same_batches_however_fast_vad_is(funasr_engine, transcribe_with, long_zh_wav):
    """ASR's first batch starts while FSMN-VAD is still reading the file; which spans share a
    batch does not depend on how far VAD has got, so a slow VAD gives the same batches and
    transcript; every span VAD found is read once, as when the pipeline waits for all of them."""
    held = _HeldVad(funasr_engine.vad)
    slow_asr = _RecordingAsr(funasr_engine.asr, on_batch=lambda n: held.asr_started.set())
    slow = transcribe_with(_with(funasr_engine, vad=held, asr=slow_asr), long_zh_wav)
    assert held.held and held.asr_started.is_set()
    vad_steps = [p.fraction for p in transcribe_with.progress if p.stage == "vad"]
    first_asr = next(i for i, p in enumerate(transcribe_with.progress) if p.stage == "asr")
    assert all(p.stage != "vad" for p in transcribe_with.progress[first_asr:])  # progress never goes back
    assert len(vad_steps) >= 2 and vad_steps[-1] < 0.12  # VAD had not finished when ASR began
    fractions = [p.fraction for p in transcribe_with.progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert_timeline(slow)

    fast_asr = _RecordingAsr(funasr_engine.asr)
    fast = transcribe_with(_with(funasr_engine, asr=fast_asr), long_zh_wav)
    assert fast_asr.batches == slow_asr.batches
    assert [(s.start_ms, s.end_ms, s.text) for s in fast.segments] == [
        (s.start_ms, s.end_ms, s.text) for s in slow.segments
    ]
    assert all(sum(b) <= 20 * 16_000 for b in slow_asr.batches if len(b) > 1)
    assert all(b == sorted(b, reverse=True) for b in slow_asr.batches)

    waited_asr = _RecordingAsr(funasr_engine.asr)
    transcribe_with(_with(funasr_engine, vad=_ListOnlyVad(funasr_engine.vad), asr=waited_asr), long_zh_wav)
    assert sorted(sum(waited_asr.batches, [])) == sorted(sum(slow_asr.batches, []))
    assert len(sum(slow_asr.batches, [])) == 18


class _WatchedVad:
    """The engine's VAD, noting when its iteration has ended (read to the end or stopped)."""

    def __init__(self, vad):
        self._vad = vad
        self.ended = False

    def iter_speech_spans(self, pcm, on_progress=None, stop=None):
        try:
            yield from self._vad.iter_speech_spans(pcm, on_progress, stop)
        finally:
            self.ended = True


@pytest.mark.parametrize("where", ["in-process", "helper"])
def test_a_failing_batch_stops_vad_and_leaves_nothing_behind(load_funasr, funasr_engine, long_zh_wav, tmp_path, where):
    """An error in ASR while VAD still reads the file (in this process or in a helper) ends the
    job with that error once VAD has stopped, leaving neither the PCM file nor the span feed."""
    engine = funasr_engine if where == "in-process" else load_funasr(cpu_workers=1)

    class Broken(Exception):
        pass

    def fail(batch: int) -> None:
        raise Broken

    watched = _WatchedVad(engine.vad)
    with pytest.raises(Broken):
        transcribe(long_zh_wav, TranscribeOptions(),
                   _with(engine, vad=watched, asr=_RecordingAsr(engine.asr, on_batch=fail)),
                   work_dir=tmp_path / "work")
    assert watched.ended
    assert list((tmp_path / "work").iterdir()) == []
    if where == "helper":  # the helper is free again, and streams a whole file with its progress
        steps: list[Progress] = []
        transcript = transcribe(long_zh_wav, TranscribeOptions(), engine, work_dir=tmp_path / "again",
                                on_progress=steps.append)
        assert_timeline(transcript)
        assert len([p for p in steps if p.stage == "vad"]) >= 3  # a step per minute of audio, not only the end
        assert list((tmp_path / "again").iterdir()) == []
