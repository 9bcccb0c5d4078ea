"""The probe's child process: ``python -m media._probe_child PATH PARENT_PID MEMORY_BYTES CPU_S`` prints
one line of JSON, ``{"info": {...}}`` or ``{"error": {"type", "message", "detail"}}``.

libavformat parses the untrusted file here, under resource limits set before PyAV is imported, so
a file that makes it hang, crash or allocate without end takes down this process only.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

from media import errors
from media._rlimited import die_with_parent, set_limits
from media.formats import ALLOWED_DEMUXERS, demuxer_name, is_allowed, mime_type, refused_kind

# A file cut to less than this share of the length it declares is refused as truncated (the
# decode applies the same share to what it actually decodes).
MIN_PRESENT_SHARE = 0.5

OPEN_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": ",".join(ALLOWED_DEMUXERS)}

_DETAIL_KEEP_CHARS = 4000


class _Failed(Exception):
    def __init__(self, error: type[errors.MediaError], message: str, detail: str = ""):
        super().__init__(message)
        self.error, self.message, self.detail = error, message, detail[-_DETAIL_KEEP_CHARS:]


def _log_text(exc) -> str:
    log = getattr(exc, "log", None)
    return f"[{log[1]}] {log[2].strip()}" if log else str(exc)


def _open(av, path: str):
    try:
        # Tags are read as UTF-8 with replacement: a WAV's INFO tags are often Latin-1, and a tag
        # that is not UTF-8 made the open itself raise.
        return av.open("file:" + path, container_options=OPEN_OPTIONS, metadata_errors="replace")
    except av.error.ArgumentError as exc:
        log = getattr(exc, "log", None)
        if log and "not on whitelist" in log[2]:
            raise _Failed(
                errors.RefusedFormatError,
                f"The file is {refused_kind(log[1])}, not an audio or video file; tingxie reads media files "
                "that hold their own audio, never playlists, manifests, scripts, subtitles or images.",
                _log_text(exc),
            ) from None
        raise _Failed(errors.MediaError, _NOT_MEDIA, _log_text(exc)) from None
    except av.error.EOFError as exc:
        raise _Failed(
            errors.TruncatedMediaError,
            "The file ends before its header does: it is cut short; upload the complete file.",
            _log_text(exc),
        ) from None
    except av.error.MemoryError as exc:
        raise _Failed(errors.MediaError, _TOO_MUCH_MEMORY, _log_text(exc)) from None
    except av.error.FFmpegError as exc:
        raise _Failed(errors.MediaError, _NOT_MEDIA, _log_text(exc)) from None


_NOT_MEDIA = "The file is not an audio or video file tingxie can read; check that it is the file you meant."
_TOO_MUCH_MEMORY = ("Reading the file needed more memory than tingxie allows; it may be damaged. "
                    "Converting it to a common format (e.g. mp3 or flac) usually helps.")


def _reaches(av, container, stream, at_ms: int) -> bool:
    """Whether audio is still there at ``at_ms``: a seek and a few packets, no decoding. A seek
    past the end of a cut file lands on its last packets, so the packets' times are what tell.
    True when it cannot tell cheaply (not seekable, damaged data, no timestamps)."""
    start = stream.start_time or 0
    target = start + int(max(0, at_ms - _SEEK_SLACK_MS) / 1000 / stream.time_base)
    try:
        container.seek(target, stream=stream, backward=True)
    except av.error.FFmpegError:
        return True
    try:
        for read, packet in enumerate(container.demux(stream)):
            when = packet.pts if packet.pts is not None else packet.dts
            if packet.size and when is not None and when >= target:
                return True
            if read >= _SEEK_MAX_PACKETS:
                return True
        return False
    except av.error.EOFError:
        return False
    except av.error.FFmpegError:
        return True


# How far before the point it looks for the truncation check accepts a packet, and how many
# packets it reads before giving up (a few seconds of audio in any codec).
_SEEK_SLACK_MS = 1000
_SEEK_MAX_PACKETS = 500


def probe(path: str) -> dict:
    try:
        import av
    except ImportError as exc:
        raise _Failed(errors.FfmpegMissingError, f"PyAV could not be loaded ({exc}); `pip install av`.",
                      repr(exc)) from None
    av.logging.set_level(av.logging.ERROR)  # ffmpeg's error line travels with the exception
    container = _open(av, path)
    with container:
        format_name = container.format.name
        if not is_allowed(format_name):  # ffmpeg enforces this already; a second look costs nothing
            raise _Failed(errors.RefusedFormatError, f"The file is {refused_kind(format_name)}, not media.")
        audio = [s for s in container.streams if s.type == "audio"]
        video = [s for s in container.streams if s.type == "video"
                 and not s.disposition & av.stream.Disposition.attached_pic]
        if not audio:
            what = "it is video only" if video else "it holds no audio or video"
            raise _Failed(errors.NoAudioStreamError, f"The file has no audio track ({what}).")
        stream = audio[0]
        codec = stream.codec_context
        if codec is None or codec.codec is None:
            raise _Failed(errors.MediaError, "The file's audio is in a format ffmpeg cannot decode.")
        duration_ms = None
        if container.duration is not None and container.duration > 0:
            duration_ms = round(container.duration / 1000)  # AV_TIME_BASE is microseconds
        elif stream.duration and stream.time_base:
            duration_ms = round(float(stream.duration * stream.time_base) * 1000)
        if duration_ms and not _reaches(av, container, stream, int(duration_ms * MIN_PRESENT_SHARE)):
            raise _Failed(
                errors.TruncatedMediaError,
                f"The file is cut short: it declares {duration_ms / 1000:.1f} s of audio but ends before "
                f"{duration_ms * MIN_PRESENT_SHARE / 1000:.1f} s; upload the complete file.",
            )
        codecs = {s.codec_context.codec.canonical_name for s in (*audio, *video)
                  if s.codec_context is not None and s.codec_context.codec is not None}
        channels = codec.channels or None
        return {
            "duration_ms": duration_ms,
            "format_name": demuxer_name(format_name),
            "audio_codec": codec.codec.canonical_name,
            "sample_rate_hz": codec.sample_rate or None,
            "channels": channels,
            "has_video": bool(video),
            "mime_type": mime_type(format_name, has_video=bool(video), codecs=codecs,
                                   brand=container.metadata.get("major_brand", "")),
        }


def main(argv: list[str]) -> int:
    path, parent_pid, memory_bytes, cpu_s = argv
    die_with_parent(int(parent_pid))
    set_limits(int(memory_bytes), int(cpu_s), 0)  # a probe writes no file
    try:
        result = {"info": probe(path)}
    except _Failed as failed:
        result = {"error": {"type": failed.error.__name__, "message": failed.message, "detail": failed.detail}}
    except MemoryError:
        result = {"error": {"type": "MediaError", "message": _TOO_MUCH_MEMORY, "detail": "MemoryError"}}
    except Exception:  # anything else the file made PyAV raise: the file is unreadable, the child answers
        result = {"error": {"type": "MediaError", "message": _NOT_MEDIA,
                            "detail": traceback.format_exc()[-_DETAIL_KEEP_CHARS:]}}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
