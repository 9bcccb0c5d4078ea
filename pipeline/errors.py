"""Domain errors. ``code`` is stable (the API and the job record carry it); ``message`` is for a person.

Media errors live in the ``media`` package (the one way ffmpeg reaches a file) and are re-exported
here, so callers of the pipeline catch ``PipelineError`` and ``MediaError`` from one place.
"""
from media.errors import (
    EmptyMediaError,
    FfmpegMissingError,
    MediaError,
    MediaTimeoutError,
    MediaTooLongError,
    NoAudioStreamError,
    RefusedFormatError,
    TruncatedMediaError,
)

__all__ = [
    "ChannelOptionsError", "EmptyMediaError", "EngineMissingError", "FfmpegMissingError", "HotwordError", "MediaError",
    "MediaTimeoutError", "MediaTooLongError", "ModelNotReadyError", "NoAudioStreamError", "PipelineError",
    "RefusedFormatError", "TruncatedMediaError", "UnknownProfileError",
]


class PipelineError(Exception):
    code = "pipeline_error"

    def __init__(self, message: str, *, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail


class ModelNotReadyError(PipelineError):
    """A model's files are missing; the message names the command that fetches them."""

    code = "model_missing"


class EngineMissingError(PipelineError):
    """An optional engine (funasr, torch, faster-whisper) is not installed; the message says what to install."""

    code = "engine_missing"


class HotwordError(PipelineError):
    code = "bad_hotwords"


class SpeakerOptionsError(PipelineError):
    """Speaker counts that cannot be honoured (not positive, min above max, given without diarize)."""

    code = "bad_speakers"


class ChannelOptionsError(PipelineError):
    """Channel options that cannot be honoured (an unknown mode, names without separate channels)."""

    code = "bad_channels"


class UnknownProfileError(PipelineError):
    code = "unknown_profile"


class UnsupportedLanguageError(PipelineError):
    """The job asks for a language the profile's ASR model does not transcribe."""

    code = "unsupported_language"


class ProfileOptionsError(PipelineError, ValueError):
    """A profile option is unknown or its value cannot be read. The message is one line naming the
    key, the value and what is allowed (or the known keys); ``key`` and ``value`` let a caller name
    the setting the key came from."""

    code = "bad_profile_options"

    def __init__(self, message: str, *, key: str, value: str | None = None, allowed: str = ""):
        super().__init__(message)
        self.key = key
        self.value = value
        self.allowed = allowed  # what the key takes, for a caller that words its own message
