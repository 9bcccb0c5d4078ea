"""Domain errors. ``code`` is stable (the API and the job record carry it); ``message`` is for a person.

Every one extends the contract's one error base (:class:`contract.TingxieError`: code, message,
detail). Media errors live in the ``media`` package (the one way ffmpeg reaches a file) and the
speaker-count error in the contract; both are re-exported here, so callers of the pipeline catch
``PipelineError``, ``MediaError`` and ``SpeakerOptionsError`` from one place.
"""
from contract import SpeakerOptionsError, TingxieError
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
    "ChannelOptionsError", "EmptyMediaError", "EngineMissingError", "FfmpegMissingError", "MediaError",
    "MediaTimeoutError", "MediaTooLongError", "ModelNotReadyError", "NoAudioStreamError", "PipelineError",
    "ProfileOptionsError", "RefusedFormatError", "SpeakerOptionsError", "TruncatedMediaError", "UnknownProfileError",
    "UnsupportedLanguageError",
]


class PipelineError(TingxieError):
    code = "pipeline_error"


class ModelNotReadyError(PipelineError):
    """A model's files are missing; the message names the command that fetches them."""

    code = "model_missing"


class EngineMissingError(PipelineError):
    """An optional engine (funasr, torch, faster-whisper) is not installed; the message says what to install."""

    code = "engine_missing"


class UnsupportedTaskError(PipelineError):
    """The job asks for a task (translate) the profile's ASR model cannot do."""

    code = "unsupported_task"


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
