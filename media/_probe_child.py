"""What the probe's reader runs (:mod:`media._probe_zygote`): :func:`answer` looks at one file;
with a cap the file is the first part of one still arriving (:func:`media.probe.probe_prefix`).

libavformat parses the untrusted file here, in a reader process forked for it under resource
limits and a wall-clock alarm, so a file that makes it hang, crash or allocate without end takes
down that process only.
"""
from __future__ import annotations

import errno
import os
import traceback

from media import errors
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
    """Whether audio is still there at ``at_ms`` (less the slack). True when it cannot tell
    cheaply (not seekable, damaged data, no timestamps)."""
    return _packet_at(av, container, stream, max(0, at_ms - _SEEK_SLACK_MS)) is not False


def _packet_at(av, container, stream, at_ms: int) -> bool | None:
    """Whether the file holds audio at ``at_ms``: a seek and a few packets, no decoding. A seek
    past the end of a cut file lands on its last packets, so the packets' times are what tell.
    None when it cannot tell cheaply (not seekable, damaged data, no timestamps)."""
    start = stream.start_time or 0
    target = start + int(at_ms / 1000 / stream.time_base)
    try:
        container.seek(target, stream=stream, backward=True)
    except av.error.FFmpegError:
        return None
    try:
        for read, packet in enumerate(container.demux(stream)):
            when = packet.pts if packet.pts is not None else packet.dts
            if packet.size and when is not None and when >= target:
                return True
            if read >= _SEEK_MAX_PACKETS:
                return None
        return False
    except av.error.EOFError:
        return False
    except av.error.FFmpegError:
        return None


# How far before the point it looks for the truncation check accepts a packet, and how many
# packets it reads before giving up (a few seconds of audio in any codec).
_SEEK_SLACK_MS = 1000
_SEEK_MAX_PACKETS = 500


def _wav_declared_ms(path: str, whole_bytes: int, bit_rate: int) -> int | None:
    """The length a WAV's header declares for its audio, where the whole file (``whole_bytes``)
    will hold it. ffmpeg trusts a data chunk only when it ends inside the file, so a first part
    reads as only what is there; the whole file's size is known (the source said it) and holds
    it. None when there is no data chunk yet, its size is a placeholder (0 or 0xFFFFFFFF, a
    stream), or it would not fit: the estimate from what is there stands."""
    if bit_rate <= 0:
        return None
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RIFX", b"RF64", b"BW64"):
            return None
        order = "big" if head[:4] == b"RIFX" else "little"
        ds64_bytes = None
        for _ in range(_WAV_MAX_CHUNKS):
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            tag, size = chunk[:4], int.from_bytes(chunk[4:], order)
            if tag == b"ds64" and size >= 16:
                ds64_bytes = int.from_bytes(fh.read(16)[8:], "little")  # riff size, then data size
                size -= 16
            elif tag == b"data":
                data_bytes = ds64_bytes if size == 0xFFFFFFFF and ds64_bytes else size
                if data_bytes in (0, 0xFFFFFFFF) or fh.tell() + data_bytes > whole_bytes:
                    return None
                return data_bytes * 8 * 1000 // bit_rate
            fh.seek(size + (size & 1), os.SEEK_CUR)
    return None


# The chunks a WAV header may hold before its audio (fmt, fact, LIST, bext...) that are looked at.
_WAV_MAX_CHUNKS = 64


def probe(path: str, prefix_cap_ms: int | None = None, whole_bytes: int | None = None) -> dict:
    """What the file holds. With ``prefix_cap_ms`` the file is the first part of one still
    arriving (``whole_bytes`` long once it is all there, when known): no truncation check; a WAV's
    declared length where the whole file holds it; and where the container declares no duration,
    whether audio already lies past ``prefix_cap_ms`` ("past_cap")."""
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
        past_cap = None
        if prefix_cap_ms is not None:
            if whole_bytes is not None and demuxer_name(format_name) == "wav":
                declared_ms = _wav_declared_ms(path, whole_bytes, codec.bit_rate or 0)
                if declared_ms is not None:
                    duration_ms = max(duration_ms or 0, declared_ms)
            if duration_ms is None:
                past_cap = _packet_at(av, container, stream, prefix_cap_ms) is True
        elif duration_ms and not _reaches(av, container, stream, int(duration_ms * MIN_PRESENT_SHARE)):
            raise _Failed(
                errors.TruncatedMediaError,
                f"The file is cut short: it declares {duration_ms / 1000:.1f} s of audio but ends before "
                f"{duration_ms * MIN_PRESENT_SHARE / 1000:.1f} s; upload the complete file.",
            )
        codecs = {s.codec_context.codec.canonical_name for s in (*audio, *video)
                  if s.codec_context is not None and s.codec_context.codec is not None}
        channels = codec.channels or None
        info = {
            "duration_ms": duration_ms,
            "format_name": demuxer_name(format_name),
            "audio_codec": codec.codec.canonical_name,
            "sample_rate_hz": codec.sample_rate or None,
            "channels": channels,
            "has_video": bool(video),
            "mime_type": mime_type(format_name, has_video=bool(video), codecs=codecs,
                                   brand=container.metadata.get("major_brand", "")),
        }
        return {"info": info, "past_cap": past_cap}


def answer(path: str, cap_ms: str | None, whole_bytes: str | None) -> dict:
    """What :func:`probe` found, or the error a person can act on, as the reader reports it:
    ``{"info": {...}, "past_cap": ...}`` or ``{"error": {"type", "message", "detail"}}``."""
    try:
        return probe(path, None if cap_ms is None else int(cap_ms), None if whole_bytes is None else int(whole_bytes))
    except _Failed as failed:
        return {"error": {"type": failed.error.__name__, "message": failed.message, "detail": failed.detail}}
    except Exception as exc:  # anything else the file made PyAV raise: the file is unreadable, the reader answers
        detail = traceback.format_exc()[-_DETAIL_KEEP_CHARS:]
        return {"error": {"type": "MediaError", "message": _TOO_MUCH_MEMORY if _out_of_memory(exc) else _NOT_MEDIA,
                          "detail": detail}}


def _out_of_memory(exc: Exception) -> bool:
    """Whether the reader ran out of its address space, wherever that struck: an allocation
    (MemoryError), a system call (ENOMEM), or a part of PyAV it loads as it goes (an extension
    module whose segment could not be mapped)."""
    if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM):
        return True
    return isinstance(exc, ImportError) and "failed to map segment" in str(exc)
