"""The languages each model profile transcribes, checked when a job is submitted.

Whisper's codes (ISO 639-1, plus ``haw``, ``jw`` and ``yue`` as Whisper spells them) are a static
table here so that the web tier can list and check them without loading faster-whisper;
tests/core/test_languages.py holds it equal to faster-whisper's own list. Importing this
module loads nothing else.
"""
from __future__ import annotations

from typing import Mapping

from core.errors import BadOptionError

AUTO = "auto"

# Whisper's languages in faster-whisper's order (faster_whisper.tokenizer._LANGUAGE_CODES), with English names.
WHISPER_LANGUAGES: Mapping[str, str] = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "as": "Assamese", "az": "Azerbaijani",
    "ba": "Bashkir", "be": "Belarusian", "bg": "Bulgarian", "bn": "Bengali", "bo": "Tibetan",
    "br": "Breton", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "cy": "Welsh",
    "da": "Danish", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fo": "Faroese",
    "fr": "French", "gl": "Galician", "gu": "Gujarati", "ha": "Hausa", "haw": "Hawaiian",
    "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "ht": "Haitian Creole", "hu": "Hungarian",
    "hy": "Armenian", "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese",
    "jw": "Javanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "kn": "Kannada",
    "ko": "Korean", "la": "Latin", "lb": "Luxembourgish", "ln": "Lingala", "lo": "Lao",
    "lt": "Lithuanian", "lv": "Latvian", "mg": "Malagasy", "mi": "Maori", "mk": "Macedonian",
    "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay", "mt": "Maltese",
    "my": "Burmese", "ne": "Nepali", "nl": "Dutch", "nn": "Norwegian Nynorsk", "no": "Norwegian",
    "oc": "Occitan", "pa": "Punjabi", "pl": "Polish", "ps": "Pashto", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "sa": "Sanskrit", "sd": "Sindhi", "si": "Sinhala",
    "sk": "Slovak", "sl": "Slovenian", "sn": "Shona", "so": "Somali", "sq": "Albanian",
    "sr": "Serbian", "su": "Sundanese", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil",
    "te": "Telugu", "tg": "Tajik", "th": "Thai", "tk": "Turkmen", "tl": "Tagalog",
    "tr": "Turkish", "tt": "Tatar", "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek",
    "vi": "Vietnamese", "yi": "Yiddish", "yo": "Yoruba", "zh": "Chinese", "yue": "Cantonese",
}

# Chinese written in traditional characters: the models read it as "zh", the text is converted at the
# end (pipeline.text.to_traditional); "zh" itself is always written in simplified characters.
TRADITIONAL_CHINESE: Mapping[str, str] = {"zh-hant": "Chinese (traditional characters)",
                                          "zh-tw": "Chinese (traditional, Taiwan)"}

# Whisper large-v3 added Cantonese; Whisper-base, the offline profile's model, has no token for it.
NOT_IN_WHISPER_BASE = frozenset({"yue"})

# What each profile's ASR model transcribes (``auto`` first). The FunASR profile's Paraformer
# reads Mandarin with English words in it.
_PROFILE_LANGUAGES: dict[str, tuple[str, ...]] = {
    "offline": (AUTO, *(code for code in WHISPER_LANGUAGES if code not in NOT_IN_WHISPER_BASE), *TRADITIONAL_CHINESE),
    "funasr": (AUTO, "zh", *TRADITIONAL_CHINESE, "en"),
}


class UnsupportedLanguageError(BadOptionError):
    """A language the profile does not transcribe (or a profile with no known languages); the
    message names the profile and the languages it takes."""

    code = "unsupported_language"


def languages_for(profile: str) -> tuple[str, ...]:
    """The language codes a job on ``profile`` may ask for, ``auto`` first."""
    try:
        return _PROFILE_LANGUAGES[profile]
    except KeyError:
        raise UnsupportedLanguageError(
            f"no languages are known for the model profile {profile!r}; profiles: {', '.join(_PROFILE_LANGUAGES)}"
        ) from None


def language_name(code: str) -> str:
    """An English name for a code (``auto``: "Detect automatically"); the code itself when unknown."""
    if code == AUTO:
        return "Detect automatically"
    return WHISPER_LANGUAGES.get(code) or TRADITIONAL_CHINESE.get(code, code)


def check_language(profile: str, language: str) -> str:
    """``language`` as the profile takes it (trimmed, lower case); UnsupportedLanguageError when
    the profile does not transcribe it."""
    code = str(language).strip().lower()
    allowed = languages_for(profile)
    if code in allowed:
        return code
    hint = ""
    if code in NOT_IN_WHISPER_BASE and profile == "offline":
        hint = " (Whisper-base has no Cantonese; 'zh' writes Cantonese speech as Chinese)"
    elif code in WHISPER_LANGUAGES and profile != "offline":
        hint = " (the offline profile's Whisper transcribes it)"
    raise UnsupportedLanguageError(
        f"the {profile!r} profile does not transcribe language {language!r}{hint}; "
        f"use one of: {', '.join(allowed)}"
    )
