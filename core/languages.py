"""The languages each model profile transcribes, checked when a job is submitted.

The table is the contract's catalogue of profiles (:data:`contract.PROFILES`, Whisper's codes
with it), so that the web tier lists and checks languages without loading a model; this module
adds the check a door makes and the names it shows. Importing it loads nothing else.
"""
from __future__ import annotations

from contract.profiles import AUTO, NOT_IN_WHISPER_BASE, PROFILES, TRADITIONAL_CHINESE, WHISPER_LANGUAGES
from core.errors import BadOptionError

__all__ = ["AUTO", "NOT_IN_WHISPER_BASE", "TRADITIONAL_CHINESE", "WHISPER_LANGUAGES", "UnsupportedLanguageError",
           "check_language", "language_name", "languages_for"]


class UnsupportedLanguageError(BadOptionError):
    """A language the profile does not transcribe (or a profile with no known languages); the
    message names the profile and the languages it takes."""

    code = "unsupported_language"


def languages_for(profile: str) -> tuple[str, ...]:
    """The language codes a job on ``profile`` may ask for, ``auto`` first."""
    try:
        return PROFILES[profile].job_languages
    except KeyError:
        raise UnsupportedLanguageError(
            f"no languages are known for the model profile {profile!r}; profiles: {', '.join(PROFILES)}"
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
