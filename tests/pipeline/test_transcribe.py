"""The whole pipeline on real speech with the real offline models (Whisper-base, Silero, wetext)."""
from __future__ import annotations

import pytest

from pipeline.errors import EmptyMediaError, MediaError, MediaTooLongError, TruncatedMediaError
from contract import Hotword, Stage, Transcript
from pipeline.types import Progress, TranscribeOptions
from tests.support.metrics import assert_timeline, hanzi, wer
from tests.support.speech import REFERENCE

pytestmark = pytest.mark.slow

JFK, DAMO = REFERENCE["jfk"], REFERENCE["asr_example"]



def test_jfk_word_error_rate(transcribe_offline, speech_dir):
    transcript = transcribe_offline(speech_dir / "jfk.flac")
    assert wer(JFK, transcript.text) <= 0.05, transcript.text
    assert transcript.language == "en"
    assert transcript.duration_ms == 11_000
    assert_timeline(transcript)
    first = transcript.segments[0].words[0]
    assert first.text == "And" and first.start_ms < 1_000
    assert transcript.segments[-1].punc == "."


@pytest.mark.parametrize("name", ["asr_example.wav", "asr_example.mp3"])
def test_chinese_with_hotword_is_simplified_and_exact(transcribe_offline, speech_dir, name):
    transcript = transcribe_offline(speech_dir / name, hotwords=(Hotword("达摩院"),))
    assert hanzi(transcript.text) == DAMO, transcript.text
    assert transcript.language == "zh"
    assert_timeline(transcript)
    assert "".join(w.text for s in transcript.segments for w in s.words).startswith("欢迎")


def test_hotword_makes_comfyui(transcribe_offline, speech_dir):
    without = transcribe_offline(speech_dir / "hotwords.mp3")
    assert "ComfyUI" not in without.text
    with_hotword = transcribe_offline(speech_dir / "hotwords.mp3", hotwords=(Hotword("ComfyUI", 20.0),))
    assert "ComfyUI" in with_hotword.text, with_hotword.text
    assert "ComfyUI" in [w.text.strip(",.") for s in with_hotword.segments for w in s.words]
    assert_timeline(with_hotword)


def test_forced_language(transcribe_offline, speech_dir):
    assert transcribe_offline(speech_dir / "asr_example.wav", language="zh").language == "zh"
    forced = transcribe_offline(speech_dir / "jfk.flac", language="en")
    assert forced.language == "en" and wer(JFK, forced.text) <= 0.05


def test_progress_covers_every_stage_in_order(transcribe_offline, speech_dir):
    transcribe_offline(speech_dir / "jfk.flac")
    stages = [p.stage for p in transcribe_offline.progress]
    order = ["decode", "vad", "asr", "punc", "itn"]  # diarize only when the job asks for speakers
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == order == [
        s for s in Stage if s not in (Stage.DIARIZE, Stage.FETCH)  # fetch is the worker's, for a job by link
    ]
    assert all(type(s) is Stage for s in stages)
    fractions = [p.fraction for p in transcribe_offline.progress]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0


def test_work_dir_is_left_empty(transcribe_offline, speech_dir):
    transcribe_offline(speech_dir / "asr_example.wav")
    assert list(transcribe_offline.work_dir.iterdir()) == []


def test_transcript_round_trips_as_the_api_json(transcribe_offline, speech_dir):
    transcript = transcribe_offline(speech_dir / "jfk.flac")
    data = transcript.to_dict()
    assert set(data) >= {"text", "language", "duration_ms", "segments"}
    assert set(data["segments"][0]) >= {"start_ms", "end_ms", "text", "words"}
    assert Transcript.from_dict(data).to_dict() == data


def test_itn_on_and_off_on_concatenated_speech(transcribe_offline, speech_dir, make_media):
    """Silence between two recordings; ITN does not touch words that are not numbers."""
    joined = make_media(
        "joined.wav", "-i", str(speech_dir / "jfk.flac"), "-f", "lavfi", "-t", "3", "-i",
        "anullsrc=r=16000:cl=mono", "-i", str(speech_dir / "asr_example.wav"),
        "-filter_complex", "[0:a]aresample=16000,pan=mono|c0=c0[a];[a][1:a][2:a]concat=n=3:v=0:a=1", "-ar", "16000",
    )
    with_itn = transcribe_offline(joined, hotwords=(Hotword("达摩院"),))
    without = transcribe_offline(joined, itn=False, hotwords=(Hotword("达摩院"),))
    assert with_itn.text == without.text  # nothing here is a number
    english, chinese = with_itn.segments
    assert wer(JFK, english.text) <= 0.05 and english.end_ms <= 11_000
    assert chinese.start_ms > 13_500  # after 11 s of JFK and 3 s of silence
    assert hanzi(chinese.text) == DAMO
    assert_timeline(with_itn)


def test_silence_gives_an_empty_transcript(transcribe_offline, make_media):
    quiet = make_media("quiet.wav", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "4")
    transcript = transcribe_offline(quiet)
    assert transcript.text == "" and transcript.segments == [] and transcript.duration_ms == 4_000


def test_bad_media_raise_media_errors_and_leave_nothing(transcribe_offline, tmp_path, speech_dir):
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(EmptyMediaError):
        transcribe_offline(empty)
    text = tmp_path / "readme.wav"
    text.write_text("not audio at all\n" * 10)
    with pytest.raises(MediaError) as err:
        transcribe_offline(text)
    assert err.value.code == "bad_media"
    cut = tmp_path / "cut.mp3"
    cut.write_bytes((speech_dir / "asr_example.mp3").read_bytes()[:5000])
    with pytest.raises(TruncatedMediaError):
        transcribe_offline(cut)
    with pytest.raises(MediaTooLongError):
        transcribe_offline(speech_dir / "jfk.flac", max_duration_ms=10_000)
    assert not transcribe_offline.work_dir.exists() or list(transcribe_offline.work_dir.iterdir()) == []


def test_speech_in_another_language_inside_one_window_is_not_lost(transcribe_offline, speech_dir, make_media):
    """Chinese then English with a short pause: one Whisper window, read in one language; the
    part it skips is read again on its own."""
    joined = make_media(
        "zh-en.wav", "-i", str(speech_dir / "asr_example.wav"), "-f", "lavfi", "-t", "0.7", "-i",
        "anullsrc=r=16000:cl=mono", "-i", str(speech_dir / "jfk.flac"),
        "-filter_complex", "[2:a]aresample=16000,pan=mono|c0=c0[b];[0:a][1:a][b]concat=n=3:v=0:a=1", "-ar", "16000",
    )
    transcript = transcribe_offline(joined, hotwords=(Hotword("达摩院"),))
    assert hanzi(transcript.text), transcript.text
    assert wer(JFK, transcript.text) <= 0.1, transcript.text
    assert_timeline(transcript)


def test_chinese_is_simplified_with_full_width_marks_unless_traditional_is_asked(transcribe_offline, speech_dir):
    """Real speech: "zh" is written in simplified characters, "zh-hant"/"zh-tw" in traditional ones,
    word by word (each word keeps its times); full-width marks either way (issue 25)."""
    simplified = transcribe_offline(speech_dir / "asr_example.wav", language="zh", hotwords=(Hotword("达摩院"),))
    assert hanzi(simplified.text) == DAMO and not set(simplified.text) & set(",.?!:;"), simplified.text
    for language in ("zh-hant", "zh-tw"):
        traditional = transcribe_offline(speech_dir / "asr_example.wav", language=language, hotwords=(Hotword("达摩院"),))
        assert hanzi(traditional.text) == "歡迎大家來體驗達摩院推出的語音識別模型", traditional.text
        assert traditional.language == "zh"
        assert_timeline(traditional)
        assert "".join(w.text for s in traditional.segments for w in s.words).startswith("歡迎")


def test_windows_encoded_a_few_at_a_time_give_the_batch_encoding(engine, speech_dir, tmp_path):
    """The encoder takes ENCODE_SEGMENTS windows at a time (its attention over eight at once took a
    worker to 1.6 GiB); the output is the one a single call gives, rows in order (issue 25, P3)."""
    import numpy as np
    from faster_whisper.audio import pad_or_trim

    from pipeline.audio import decode
    from pipeline.whisper import ENCODE_SEGMENTS

    _, pcm = decode(speech_dir / "jfk.flac", tmp_path / "jfk.s16le")
    asr = engine.asr
    clips = [pcm.read(start, start + 5_000) for start in range(0, 10_000, 2_000)]  # five different windows
    features = np.stack([pad_or_trim(asr._model.feature_extractor(c)[..., :-1]) for c in clips])
    assert len(features) > ENCODE_SEGMENTS
    np.testing.assert_allclose(np.asarray(asr._encode(features)), np.asarray(asr._model.encode(features)),
                               rtol=1e-4, atol=1e-4)


def test_every_sentence_of_a_long_chinese_window_is_written(transcribe_offline, speech_dir, make_media):
    """Prompted, Whisper may write only a window's first sentence: what a pass leaves without words
    is read again until every part has its words (issue 25: 4 of 6 sentences were written)."""
    src = str(speech_dir / "asr_example.wav")
    joined = make_media(
        "zh4.wav", "-i", src, "-i", src, "-i", src, "-i", src, "-f", "lavfi", "-t", "1", "-i", "anullsrc=r=16000:cl=mono",
        "-filter_complex", "[4:a]asplit=4[s0][s1][s2][s3];[0:a][s0][1:a][s1][2:a][s2][3:a][s3]concat=n=8:v=0:a=1",
        "-ar", "16000", "-ac", "1",
    )
    transcript = transcribe_offline(joined, language="zh")
    assert transcript.text.count("欢迎") == 4, transcript.text
    assert_timeline(transcript)
