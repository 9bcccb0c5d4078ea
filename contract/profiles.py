"""The catalogue of model profiles: each one's name, where its code lives, what to install for it,
and the languages its ASR model transcribes. The doors list and check languages from it without
loading a model; the pipeline names its profiles and engines' languages from it.

Whisper's codes (ISO 639-1, plus ``haw``, ``jw`` and ``yue`` as Whisper spells them) are a static
table so that the web tier can list them without loading faster-whisper; a test holds it equal to
faster-whisper's own list, and the offline engine's to the model's tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

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



@dataclass(frozen=True)
class ProfileInfo:
    """A built-in profile: ``module`` declares its ``PROFILE`` (imported on first use), ``install``
    is what to run when that import fails, ``languages`` the codes its ASR model reads (the job
    may also ask for ``auto`` and, where ``zh`` is read, for traditional Chinese)."""

    name: str
    module: str
    install: str
    languages: tuple[str, ...]

    @property
    def job_languages(self) -> tuple[str, ...]:
        """The codes a job on this profile may ask for, ``auto`` first."""
        codes: list[str] = [AUTO]
        for code in self.languages:
            codes += [code, *TRADITIONAL_CHINESE] if code == "zh" else [code]
        return tuple(codes)


PROFILES: Mapping[str, ProfileInfo] = {
    # faster-whisper's Whisper-base, Silero VAD, wetext ITN.
    "offline": ProfileInfo(
        "offline", "pipeline.offline", "pip install 'tingxie[offline]'",
        tuple(code for code in WHISPER_LANGUAGES if code not in NOT_IN_WHISPER_BASE),
    ),
    # FSMN-VAD, Paraformer (Mandarin with English words in it), CT-Transformer.
    "funasr": ProfileInfo("funasr", "pipeline.funasr.profile", "pip install 'tingxie[funasr]'", ("zh", "en")),
}
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)
