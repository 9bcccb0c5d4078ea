"""Domain errors. ``code`` is stable (the API and the job record carry it); ``message`` is for a person."""


class PipelineError(Exception):
    code = "pipeline_error"

    def __init__(self, message: str, *, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail  # e.g. ffmpeg's stderr, for logs


class MediaError(PipelineError):
    """The input is not decodable audio/video (empty, corrupt, truncated, no audio stream)."""

    code = "bad_media"


class NoAudioStreamError(MediaError):
    code = "no_audio"


class MediaTooLongError(MediaError):
    code = "too_long"


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


class UnknownProfileError(PipelineError):
    code = "unknown_profile"


class EmptyMediaError(MediaError):
    """The uploaded file has no bytes at all."""

    code = "empty_file"


class TruncatedMediaError(MediaError):
    """The container promises more audio than could be decoded (an interrupted upload or copy)."""

    code = "truncated_media"


class FfmpegMissingError(PipelineError):
    """No ffmpeg binary could be found; the message says how to get one."""

    code = "ffmpeg_missing"
