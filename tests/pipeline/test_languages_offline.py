"""Every language Whisper-base knows, on the offline profile with its real models.

The shared speech is Chinese and English only, so other languages are asked for on it: that
proves a job in Japanese or French runs and says its language (and that ITN stands aside with a
note), not how well Whisper-base reads real Japanese or French, which nothing here measures.
"""
from __future__ import annotations

import pytest

from core.languages import languages_for
from pipeline.errors import UnsupportedLanguageError
from contract import Hotword, Transcript
from pipeline.types import TranscribeOptions
from tests.support.metrics import assert_timeline, hanzi, wer
from tests.support.speech import REFERENCE

JFK, DAMO = REFERENCE["jfk"], REFERENCE["asr_example"]

pytestmark = pytest.mark.slow



def test_the_engine_takes_what_core_lists(engine):
    """The model's own language tokens are the list the web tier checks jobs against, with the two
    codes that ask for Chinese in traditional characters (read as "zh")."""
    assert ("auto", *engine.languages, "zh-hant", "zh-tw") == languages_for("offline")


def test_auto_still_finds_english_and_chinese(transcribe_offline, speech_dir):
    english = transcribe_offline(speech_dir / "jfk.flac")
    assert english.language == "en" and wer(JFK, english.text) <= 0.05, english.text
    chinese = transcribe_offline(speech_dir / "asr_example.wav", hotwords=(Hotword("达摩院"),))
    assert chinese.language == "zh" and hanzi(chinese.text) == DAMO, chinese.text
    assert english.warnings == [] and chinese.warnings == []


@pytest.mark.parametrize("language", ["ja", "fr", "de", "ko", "th", "ar"])
def test_another_language_runs_and_says_so(transcribe_offline, speech_dir, language):
    transcript = transcribe_offline(speech_dir / "jfk.flac", language=language)
    assert transcript.language == language
    assert transcript.text and transcript.segments
    assert_timeline(transcript)
    assert any(f"recognised as '{language}'" in w and "exists only for 'zh', 'en'" in w for w in transcript.warnings)


def test_no_itn_no_note(transcribe_offline, speech_dir):
    assert transcribe_offline(speech_dir / "jfk.flac", language="ja", itn=False).warnings == []


def test_french_words_join_as_french_is_written(transcribe_offline, speech_dir):
    """Whisper's aligner writes "c'est" as "c" + "'est": the pieces join without a space."""
    text = transcribe_offline(speech_dir / "jfk.flac", language="fr").text
    assert " '" not in text and " -" not in text, text


def test_chinese_stays_simplified_when_asked_for(transcribe_offline, speech_dir):
    transcript = transcribe_offline(speech_dir / "asr_example.wav", language="zh", hotwords=(Hotword("达摩院"),))
    assert hanzi(transcript.text) == DAMO


@pytest.mark.parametrize("language", ["yue", "xx", "zh-hk"])
def test_a_language_whisper_base_lacks_is_refused_before_any_work(transcribe_offline, tmp_path, language):
    with pytest.raises(UnsupportedLanguageError) as err:
        transcribe_offline(tmp_path / "never-opened.wav", language=language)
    assert err.value.code == "unsupported_language"
    assert f"does not transcribe language {language!r}" in err.value.message and "ja" in err.value.message
