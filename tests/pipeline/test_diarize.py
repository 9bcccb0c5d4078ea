"""Speaker labels: the request's options, the JSON shape, the diarize stage's parts, and the
offline profile's GE2E diarization of real voices taking turns (tests/support/speaker_turns.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.diarize import diarize, label_words, speaker_ids, windows
from pipeline.errors import EngineMissingError, SpeakerOptionsError
from pipeline.stages import Engine, LazyModel, SpeechSpan
from contract import Segment, Speaker, Stage, Transcript, Word
from pipeline.types import TranscribeOptions
from tests.support import speaker_turns
from tests.support.settings import REPO


@pytest.mark.parametrize(
    "counts",
    [
        dict(diarize=True, num_speakers=0),
        dict(diarize=True, min_speakers=-1),
        dict(diarize=True, max_speakers=2.5),
        dict(diarize=True, num_speakers=True),
        dict(diarize=True, min_speakers=3, max_speakers=2),
        dict(diarize=True, num_speakers=2, max_speakers=3),
        dict(num_speakers=2),
        dict(min_speakers=1),
    ],
)
def test_bad_speaker_counts_are_refused(counts):
    with pytest.raises(SpeakerOptionsError) as refused:
        TranscribeOptions(**counts)
    assert refused.value.code == "bad_speakers" and refused.value.message


def test_good_speaker_counts():
    assert TranscribeOptions().diarize is False
    assert TranscribeOptions(diarize=True, num_speakers=1).num_speakers == 1
    assert TranscribeOptions(diarize=True, min_speakers=2, max_speakers=2).max_speakers == 2
    assert TranscribeOptions(diarize=True, max_speakers=4).min_speakers is None


def _transcript(speakers):
    words = (Word(0, 400, "hello", "S1" if speakers else None, 0, 5),
             Word(400, 800, "there.", "S1" if speakers else None, 6, 12))
    return Transcript(
        text="hello there.",
        language="en",
        duration_ms=1000,
        segments=[Segment(0, 800, "hello there.", words, ".", ((0, 400), (400, 800)), "S1" if speakers else None)],
        speakers=speakers,
    )


def test_json_carries_speakers_only_when_diarized():
    plain = _transcript(None).to_dict()
    assert "speakers" not in plain
    assert "speaker" not in plain["segments"][0]
    assert plain["segments"][0]["words"][0] == {"start_ms": 0, "end_ms": 400, "text": "hello", "start_char": 0,
                                                "end_char": 5}
    assert Transcript.from_dict(plain) == _transcript(None)

    diarized = _transcript([Speaker("S1")]).to_dict()
    assert diarized["speakers"] == [{"id": "S1", "name": None}]
    assert diarized["segments"][0]["speaker"] == "S1"
    assert diarized["segments"][0]["words"][1] == {"start_ms": 400, "end_ms": 800, "text": "there.", "start_char": 6,
                                                   "end_char": 12, "speaker": "S1"}
    assert Transcript.from_dict(json.loads(json.dumps(diarized))) == _transcript([Speaker("S1")])


def test_windows_overlap_by_half_and_end_with_the_speech():
    assert windows([(0, 4000)], 1600) == [(0, 1600), (800, 2400), (1600, 3200), (2400, 4000)]
    assert windows([(5000, 6200), (100, 400), (0, 1600)], 1600) == [(0, 1600), (5000, 6200)]  # 300 ms: too short


def test_words_take_the_speaker_of_the_windows_over_them():
    spans = [(0, 1600), (800, 2400), (3000, 4600)]
    labels = [0, 0, 1]
    words = [(100, 300), (2300, 2600), (2700, 2800), (3100, 3300), (5000, 5200)]
    # (2300, 2600) overlaps only window 1; (2700, 2800) overlaps none: the nearest is window 2.
    assert label_words(words, spans, labels) == [0, 0, 1, 1, 1]
    assert speaker_ids([3, 3, 0, 3, 7, 0]) == ["S1", "S1", "S2", "S1", "S3", "S2"]


def test_a_missing_encoder_says_what_to_install(monkeypatch, tmp_path, speech_path):
    """Without resemblyzer the job fails with engine_missing before any work (no VAD, no ASR
    here to run), naming the extra to install."""
    from pipeline import transcribe
    from pipeline.speaker_ge2e import load_ge2e

    monkeypatch.setitem(sys.modules, "resemblyzer", None)  # find_spec answers None: not installed
    engine = Engine(name="offline", vad=None, asr=None, speaker=LazyModel(load_ge2e))
    with pytest.raises(EngineMissingError) as missing:
        transcribe(speech_path("jfk.flac"), TranscribeOptions(diarize=True), engine, work_dir=tmp_path)
    assert missing.value.code == "engine_missing"
    assert "pip install 'tingxie[diarize]'" in missing.value.message
    assert not engine.speaker.loaded


def test_a_profile_without_a_speaker_model_cannot_diarize():
    with pytest.raises(EngineMissingError, match="cannot diarize"):
        Engine(name="bare", vad=None, asr=None).speaker_model()


# --- GE2E on real voices ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ge2e():
    from pipeline.speaker_ge2e import Ge2eEncoder, require_packages

    try:
        require_packages()
    except EngineMissingError as exc:
        pytest.skip(exc.message)
    return Ge2eEncoder()


@pytest.fixture(scope="module")
def two_voices_speech(two_voices, ffmpeg, tmp_path_factory):
    """The two-voice file decoded, its Silero VAD spans, and 250 ms 'words' over them: what the
    diarize stage reads, without ASR."""
    from pipeline.audio import decode
    from pipeline.vad_silero import SileroVad, VadOptions

    _, pcm = decode(two_voices[0], tmp_path_factory.mktemp("pcm") / "two_voices.s16le", ffmpeg=ffmpeg)
    spans = SileroVad(VadOptions(max_span_ms=30_000)).speech_spans(pcm)
    regions = [part for span in spans for part in (span.parts or ((span.start_ms, span.end_ms),))]
    words = [(at, min(at + 250, end)) for start, end in regions for at in range(start, end, 250)]
    return pcm, spans, words


@pytest.mark.parametrize(
    "counts, expected",
    [
        (dict(), 2),
        (dict(num_speakers=1), 1),
        (dict(num_speakers=3), 3),
        (dict(max_speakers=1), 1),
        (dict(min_speakers=3), 3),
        (dict(min_speakers=1, max_speakers=4), 2),
    ],
)
def test_speaker_counts_are_honoured(ge2e, two_voices_speech, counts, expected):
    pcm, spans, words = two_voices_speech
    labels = diarize(pcm, spans, words, ge2e, TranscribeOptions(diarize=True, **counts))
    assert len(labels) == len(words)
    assert sorted(set(labels)) == [f"S{n}" for n in range(1, expected + 1)]


def test_past_the_clustering_cap_windows_join_the_nearest_cluster(ge2e, two_voices_speech, monkeypatch):
    """A long file clusters a spread sample of its windows and gives the rest the nearest cluster:
    with the cap at 6 of this file's windows, the labels are those of clustering them all."""
    import pipeline.diarize

    pcm, spans, words = two_voices_speech
    options = TranscribeOptions(diarize=True)
    whole = diarize(pcm, spans, words, ge2e, options)
    monkeypatch.setattr(pipeline.diarize, "MAX_CLUSTERED_WINDOWS", 6)
    assert diarize(pcm, spans, words, ge2e, options) == whole


def test_speech_too_short_to_embed_is_one_speaker(ge2e, two_voices_speech):
    pcm, _, _ = two_voices_speech
    short = [SpeechSpan(120, 400)]
    assert diarize(pcm, short, [(120, 300), (300, 400)], ge2e, TranscribeOptions(diarize=True)) == ["S1", "S1"]
    assert diarize(pcm, short, [], ge2e, TranscribeOptions(diarize=True)) == []


def _check_sentences(transcript: Transcript) -> None:
    """Every sentence and word carries a speaker; a sentence never holds two; the list of
    speakers is S1, S2... in the order they first speak."""
    ids = [s.id for s in transcript.speakers]
    assert ids == [f"S{n}" for n in range(1, len(ids) + 1)]
    assert list(dict.fromkeys(s.speaker for s in transcript.segments)) == ids
    for segment in transcript.segments:
        assert segment.speaker in ids
        assert {w.speaker for w in segment.words} == {segment.speaker}


@pytest.mark.slow
def test_two_voices_taking_turns_are_found(engine, two_voices, tmp_path, ge2e):
    from pipeline import transcribe

    path, turns = two_voices
    progress = []
    transcript = transcribe(path, TranscribeOptions(diarize=True), engine, work_dir=tmp_path,
                            on_progress=progress.append)
    _check_sentences(transcript)
    words = [(w.start_ms, w.end_ms, w.speaker) for s in transcript.segments for w in s.words]
    result = speaker_turns.score(words, turns)
    stages = [p.stage for p in progress]
    # Every stage the pipeline runs (fetch is the worker's, before the pipeline, for a job by link).
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == [s for s in Stage if s is not Stage.FETCH]
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    print(f"\ntwo voices: boundary errors {result.boundary_errors_ms} ms, extra changes "
          f"{result.extra_changes}, word labelling accuracy {result.accuracy:.3f}")
    assert [s.id for s in transcript.speakers] == ["S1", "S2"]
    assert result.mapping == {"A": "S1", "B": "S2"}
    assert len(result.boundary_errors_ms) == 4
    assert all(error is not None and error <= 500 for error in result.boundary_errors_ms)
    assert result.extra_changes == 0
    assert result.accuracy >= 0.95
    assert Transcript.from_dict(json.loads(json.dumps(transcript.to_dict()))).speakers == transcript.speakers


@pytest.mark.slow
def test_three_voices_are_three_speakers(engine, speech_dir, ffmpeg, tmp_path, ge2e):
    from pipeline import transcribe

    turns = speaker_turns.build(speech_dir, tmp_path / "three.wav", ffmpeg, speaker_turns.THREE_VOICES)
    transcript = transcribe(tmp_path / "three.wav", TranscribeOptions(diarize=True), engine, work_dir=tmp_path / "w")
    _check_sentences(transcript)
    words = [(w.start_ms, w.end_ms, w.speaker) for s in transcript.segments for w in s.words]
    result = speaker_turns.score(words, turns)
    print(f"\nthree voices: boundary errors {result.boundary_errors_ms} ms, accuracy {result.accuracy:.3f}")
    assert result.mapping == {"A": "S1", "B": "S2", "C": "S3"}
    assert all(error is not None and error <= 500 for error in result.boundary_errors_ms)
    assert result.accuracy >= 0.95


@pytest.mark.slow
def test_one_voice_is_one_speaker(engine, speech_dir, speech_path, ffmpeg, tmp_path, ge2e):
    from pipeline import transcribe

    speaker_turns.build(speech_dir, tmp_path / "jfk_twice.wav", ffmpeg, speaker_turns.ONE_VOICE)
    for path in (speech_path("jfk.flac"), tmp_path / "jfk_twice.wav"):
        transcript = transcribe(path, TranscribeOptions(diarize=True), engine, work_dir=tmp_path / "w")
        _check_sentences(transcript)
        assert transcript.speakers == [Speaker("S1")]


@pytest.mark.subprocess
@pytest.mark.slow
def test_a_job_without_speakers_loads_no_speaker_model(tmp_path, speech_path):
    """A fresh process, as a worker: a transcription without diarize neither loads the encoder
    nor imports its module, nor torch (CTranslate2's converters would import it, pipeline.runtimes hides it)."""
    code = f"""
import sys
from pathlib import Path
from pipeline import transcribe
from pipeline.profiles import EngineConfig, load_engine
from pipeline.types import TranscribeOptions
engine = load_engine("offline", EngineConfig(model_dir=Path({str(tmp_path / 'models')!r}), cache_dir=Path({str(tmp_path / 'cache')!r})))
transcript = transcribe({str(speech_path('jfk.flac'))!r}, TranscribeOptions(), engine, work_dir=Path({str(tmp_path / 'work')!r}))
print(transcript.speakers, engine.speaker.loaded, "pipeline.speaker_ge2e" in sys.modules, "sklearn" in sys.modules, "torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "False", "False", "False", "False"]


@pytest.mark.slow
def test_silence_has_no_speakers(engine, make_media, tmp_path, ge2e):
    from pipeline import transcribe

    silence = make_media("silence.wav", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3")
    transcript = transcribe(silence, TranscribeOptions(diarize=True), engine, work_dir=tmp_path / "w")
    assert transcript.segments == [] and transcript.speakers == []
    assert transcript.to_dict()["speakers"] == []
