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
    "EmptyMediaError", "EngineMissingError", "FfmpegMissingError", "HotwordError", "MediaError",
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


class UnknownProfileError(PipelineError):
    code = "unknown_profile"
