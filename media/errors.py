"""Media errors. ``code`` is stable (the API and the job record carry it); ``message`` says what a
person can do about it and never names the file (callers know which file they handed over);
``detail`` is ffmpeg's own report, for logs. The base is the contract's one error base."""
from __future__ import annotations

from contract.errors import TingxieError


class MediaError(TingxieError):
    """The input is not decodable audio/video; the base of every error this package raises."""

    code = "bad_media"


class RefusedFormatError(MediaError):
    """ffmpeg recognised the file as something that is not a media file of its own: a playlist,
    manifest or script naming other files or URLs, subtitles, an image, metadata. Refused whatever
    the file is called, so that no input reaches beyond itself."""


class EmptyMediaError(MediaError):
    """The file has no bytes at all."""

    code = "empty_file"


class NoAudioStreamError(MediaError):
    code = "no_audio"


class TruncatedMediaError(MediaError):
    """The container promises more audio than is there (an interrupted upload or copy)."""

    code = "truncated_media"


class ScratchFullError(MediaError):
    """The disk the decoded audio is written to ran out of space: a condition of the host, not of
    the file (which may be intact); the caller tries again where there is room."""

    code = "scratch_full"


class NoSuchChannelError(MediaError):
    """A channel was asked for that the file's audio stream does not have."""

    code = "no_such_channel"


class MediaTooLongError(MediaError):
    code = "too_long"


class MediaTimeoutError(MediaError):
    """Probing or decoding ran past its wall-clock or CPU-time limit and was killed: a damaged file,
    or one built to stall the demuxer."""

    code = "media_timeout"


class FfmpegMissingError(MediaError):
    """No ffmpeg binary (or no PyAV) could be found; the message says how to get one."""

    code = "ffmpeg_missing"
