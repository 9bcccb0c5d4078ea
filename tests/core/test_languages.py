"""core.languages: Whisper's table kept equal to faster-whisper's, each profile's languages, the check."""
from __future__ import annotations

import subprocess
import sys

import pytest

from core.languages import (
    AUTO,
    NOT_IN_WHISPER_BASE,
    WHISPER_LANGUAGES,
    UnsupportedLanguageError,
    check_language,
    language_name,
    languages_for,
)


def test_the_table_is_faster_whispers_own_list():
    tokenizer = pytest.importorskip("faster_whisper.tokenizer", reason="the offline extra is not installed")
    assert tuple(WHISPER_LANGUAGES) == tuple(tokenizer._LANGUAGE_CODES)
    assert all(name and name[0].isupper() for name in WHISPER_LANGUAGES.values())
    assert len(set(WHISPER_LANGUAGES.values())) == len(WHISPER_LANGUAGES)


def test_languages_per_profile():
    offline = languages_for("offline")
    assert offline[0] == AUTO and len(offline) == 1 + 99 + 2
    assert {"zh", "en", "ja", "fr", "de", "ko", "th", "haw", "jw"} <= set(offline)
    assert "yue" not in offline and NOT_IN_WHISPER_BASE == {"yue"}
    assert languages_for("funasr") == (AUTO, "zh", "zh-hant", "zh-tw", "en")
    with pytest.raises(UnsupportedLanguageError, match="no languages are known for the model profile 'nope'"):
        languages_for("nope")


def test_names():
    assert language_name("zh") == "Chinese" and language_name("ja") == "Japanese" and language_name("yue") == "Cantonese"
    assert language_name(AUTO) == "Detect automatically"
    assert language_name("xx") == "xx"


def test_check_language_takes_what_the_profile_transcribes():
    assert check_language("offline", "ja") == "ja"
    assert check_language("offline", "zh-Hant") == "zh-hant" and check_language("funasr", "zh-TW") == "zh-tw"
    assert check_language("offline", " FR ") == "fr"
    assert check_language("offline", "auto") == "auto"
    assert check_language("funasr", "zh") == "zh" and check_language("funasr", "EN") == "en"


@pytest.mark.parametrize("profile, language, says", [
    ("funasr", "ja", "the 'funasr' profile does not transcribe language 'ja' (the offline profile's Whisper "
                     "transcribes it); use one of: auto, zh, zh-hant, zh-tw, en"),
    ("offline", "yue", "Whisper-base has no Cantonese; 'zh' writes Cantonese speech as Chinese"),
    ("offline", "xx", "the 'offline' profile does not transcribe language 'xx'; use one of: auto, af, am,"),
    ("offline", "", "does not transcribe language ''"),
])
def test_check_language_refuses_naming_the_profile_and_the_list(profile, language, says):
    with pytest.raises(UnsupportedLanguageError) as err:
        check_language(profile, language)
    assert says in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.subprocess
def test_importing_it_loads_nothing_else():
    code = "import sys; import core.languages; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert not {m for m in loaded if m.split(".")[0] in ("faster_whisper", "pipeline", "numpy", "torch", "flask")}
