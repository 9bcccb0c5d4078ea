"""The one way tingxie lets ffmpeg near a file: a structured, sandboxed probe (PyAV in a child
process) and a hardened decode (the ffmpeg binary), both limited to an allowlist of real media
demuxers and the ``file`` protocol. A leaf package: stdlib and PyAV only, used by core and pipeline.
"""
from media.decode import SAMPLE_RATE_HZ, decode_to_pcm, find_ffmpeg, pcm_bytes
from media.errors import (
    EmptyMediaError,
    FfmpegMissingError,
    MediaError,
    MediaTimeoutError,
    MediaTooLongError,
    NoAudioStreamError,
    NoSuchChannelError,
    RefusedFormatError,
    ScratchFullError,
    TruncatedMediaError,
)
from media.formats import ALLOWED_DEMUXERS
from media.info import MediaInfo
from media.probe import probe, probe_prefix

__all__ = [
    "ALLOWED_DEMUXERS",
    "SAMPLE_RATE_HZ",
    "EmptyMediaError",
    "FfmpegMissingError",
    "MediaError",
    "MediaInfo",
    "MediaTimeoutError",
    "MediaTooLongError",
    "NoAudioStreamError",
    "NoSuchChannelError",
    "RefusedFormatError",
    "ScratchFullError",
    "TruncatedMediaError",
    "decode_to_pcm",
    "find_ffmpeg",
    "pcm_bytes",
    "probe",
    "probe_prefix",
]
