"""The funasr profile transcribes what Paraformer reads (Mandarin with English words in it) and
refuses other languages with a clear error before any work, rather than reading them as Chinese."""
from __future__ import annotations

import pytest

from tests.support.requires import require_funasr

require_funasr()

from core.languages import TRADITIONAL_CHINESE, languages_for  # noqa: E402
from pipeline import transcribe  # noqa: E402
from pipeline.errors import UnsupportedLanguageError  # noqa: E402
from pipeline.types import TranscribeOptions  # noqa: E402

pytestmark = pytest.mark.funasr


def test_the_engine_takes_what_core_lists(funasr_engine):
    """Everything core lists for the profile, but the Traditional-character forms of zh, which the
    pipeline writes from the engine's zh (converted word by word at the end)."""
    listed = languages_for("funasr")
    assert ("auto", *funasr_engine.languages) == tuple(code for code in listed if code not in TRADITIONAL_CHINESE)
    assert "zh" in funasr_engine.languages and set(TRADITIONAL_CHINESE) <= set(listed)


@pytest.mark.parametrize("language", ["ja", "fr", "yue"])
def test_other_languages_are_refused(funasr_engine, speech_dir, tmp_path, language):
    with pytest.raises(UnsupportedLanguageError) as err:
        transcribe(speech_dir / "asr_example.wav", TranscribeOptions(language=language), funasr_engine,
                   work_dir=tmp_path / "work")
    assert err.value.code == "unsupported_language"
    assert err.value.message == (
        f"The 'funasr' profile does not transcribe language {language!r}; use 'auto' or one of: zh, en."
    )
    assert not (tmp_path / "work").exists()  # refused before decoding


@pytest.mark.parametrize("language", ["auto", "zh", "en"])
def test_its_languages_run(funasr_engine, speech_dir, tmp_path, language):
    transcript = transcribe(speech_dir / "asr_example.wav", TranscribeOptions(language=language), funasr_engine,
                            work_dir=tmp_path / "work")
    assert transcript.duration_ms > 5000 and transcript.language in ("zh", "en")
    assert not any("inverse text normalisation" in w for w in transcript.warnings)
