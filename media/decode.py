"""Decoding: a probed file's first audio stream (all its channels mixed, or one of them) to 16 kHz
mono s16le in a file on disk, streamed.

The ffmpeg binary reads the input by path and writes PCM straight to a file, so neither the
compressed input nor the decoded audio is held in memory. It is hardened the same way as the
probe: the demuxer is forced to the one the probe chose (``-f``), only allowlisted demuxers and the
``file`` protocol may open, there is no stdin, and it runs in a process group of its own under a
wall-clock limit, CPU-time, address-space and file-size limits, killed as a group on every way out.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from media import errors
from media.formats import ALLOWED_DEMUXERS, demuxer_name, is_allowed, refused_kind
from media.info import MediaInfo
from media.probe import check_file, format_duration, kill_group, too_long

SAMPLE_RATE_HZ = 16_000
BYTES_PER_SAMPLE = 2  # s16le mono

# A decode that yields less than this share of the duration the container declares is refused
# as truncated; above it the audio that is there is transcribed (the caller may warn).
MIN_DECODED_SHARE = 0.5

# The wall-clock limit: this much, plus a second per DECODE_MIN_SPEED seconds of audio. ffmpeg
# decodes speech formats at hundreds of times real time, so only a stuck decoder reaches it.
DECODE_BASE_TIMEOUT_S = 120.0
DECODE_MIN_SPEED = 10.0
# Address space for ffmpeg: Debian's ffmpeg 5.1 needs about 384 MiB to decode, the static build 256.
DECODE_MEMORY_BYTES = 2 << 30

_STDERR_KEEP_CHARS = 4000
# strerror(ENOSPC), as ffmpeg reports a write that found the disk full.
_NO_SPACE = os.strerror(errno.ENOSPC)
_POLL_S = 0.5
_RLIMITED = str(Path(__file__).with_name("_rlimited.py"))


def find_ffmpeg(explicit: str | None = None) -> str:
    """The ffmpeg to run: ``explicit`` when given, else ``ffmpeg`` on PATH, else imageio-ffmpeg's.

    The fallback means a fresh machine needs no system package.
    """
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise errors.FfmpegMissingError(
                f"The configured ffmpeg {explicit!r} does not exist or is not executable."
            )
        return found
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise errors.FfmpegMissingError(
            "No ffmpeg found: install your system's ffmpeg, or `pip install imageio-ffmpeg`."
        ) from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def decode_timeout_s(duration_ms: int | None) -> float:
    """The default wall-clock limit for decoding ``duration_ms`` of audio."""
    return DECODE_BASE_TIMEOUT_S + (duration_ms or 0) / 1000 / DECODE_MIN_SPEED


def pcm_bytes(duration_ms: int) -> int:
    return duration_ms * SAMPLE_RATE_HZ // 1000 * BYTES_PER_SAMPLE


def decode_to_pcm(
    path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    info: MediaInfo,
    ffmpeg: str | None = None,
    max_duration_ms: int | None = None,
    on_progress: Callable[[float], None] | None = None,
    timeout_s: float | None = None,
    memory_bytes: int = DECODE_MEMORY_BYTES,
    channel: int | None = None,
) -> int:
    """Decode the first audio stream of ``path`` to 16 kHz mono s16le in ``out_path``; return its ms.

    ``channel``: None mixes every channel down to one; a number (0 is the first, the left of a
    stereo file) takes that channel alone, unmixed (a call recording's agent or customer).
    NoSuchChannelError for a channel the probe says the stream does not have.

    ``info`` is the file's :func:`~media.probe` (stored with a job, so the worker does not probe
    again); its demuxer is the only one ffmpeg may use. ``ffmpeg`` is the binary (default:
    :func:`find_ffmpeg`). ``max_duration_ms`` is enforced while decoding too, for containers that
    do not declare their length. ``on_progress`` gets 0..1, from the bytes written against the
    declared duration (0 while it is unknown), about twice a second; an exception it raises stops
    the decode and kills ffmpeg's process group.
    ``timeout_s`` (default :func:`decode_timeout_s`) bounds the wall-clock time and, doubled, the
    CPU time; ``memory_bytes`` ffmpeg's address space. On any failure ``out_path`` is removed and
    ffmpeg's process group is killed; if this process dies, the kernel kills ffmpeg (Linux).
    """
    path, out_path = Path(path), Path(out_path)
    check_file(path)
    if not is_allowed(info.format_name):
        raise errors.RefusedFormatError(
            f"The file is {refused_kind(info.format_name)}, not an audio or video file; tingxie does not decode it."
        )
    if max_duration_ms is not None and info.duration_ms is not None and info.duration_ms > max_duration_ms:
        raise too_long(info.duration_ms, max_duration_ms)
    _check_channel(channel, info)
    ffmpeg = find_ffmpeg(ffmpeg)
    if timeout_s is None:
        timeout_s = decode_timeout_s(info.duration_ms if info.duration_ms is not None else max_duration_ms)
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-v", "error",
           "-f", demuxer_name(info.format_name), "-protocol_whitelist", "file",
           "-format_whitelist", ",".join(ALLOWED_DEMUXERS), "-i", "file:" + str(path.resolve()),
           "-map", "0:a:0", "-vn", "-sn", "-dn",
           *(["-ac", "1"] if channel is None else ["-af", f"pan=mono|c0=c{channel}"]),
           "-ar", str(SAMPLE_RATE_HZ), "-c:a", "pcm_s16le", "-f", "s16le"]
    fsize_bytes = -1
    if max_duration_ms is not None:
        # One second past the cap is enough to know it was exceeded, and bounds the work.
        cmd += ["-t", f"{(max_duration_ms + 1000) / 1000:.3f}"]
        fsize_bytes = pcm_bytes(max_duration_ms + 60_000)
    cmd += ["-y", "file:" + str(out_path.resolve())]
    limited = [sys.executable, "-I", "-S", _RLIMITED, str(os.getpid()), str(memory_bytes),
               str(int(timeout_s * 2) + 1), str(fsize_bytes), "--", *cmd]
    expected_bytes = pcm_bytes(info.duration_ms or 0)
    out_path.unlink(missing_ok=True)  # what is there afterwards is ffmpeg's, or nothing
    try:
        with tempfile.TemporaryFile() as log:
            rc = _run(limited, log, out_path, timeout_s, expected_bytes, on_progress)
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _STDERR_KEEP_CHARS))
            stderr = log.read().decode("utf-8", errors="replace")
        duration_ms = _check_output(rc, stderr, out_path, info, max_duration_ms, timeout_s)
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    if on_progress is not None:
        on_progress(1.0)
    return duration_ms


def _check_channel(channel: int | None, info: MediaInfo) -> None:
    """Refuse a channel the stream lacks: ffmpeg's pan filter would write silence for it."""
    if channel is None:
        return
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < 0:
        raise ValueError(f"channel must be a channel number from 0, not {channel!r}")
    if info.channels is not None and channel >= info.channels:
        raise errors.NoSuchChannelError(
            f"The audio has {info.channels} channel{'s' if info.channels != 1 else ''}; "
            f"there is no channel {channel} (channels count from 0)."
        )


def _run(cmd: list[str], log, out_path: Path, timeout_s: float, expected_bytes: int,
         on_progress: Callable[[float], None] | None) -> int:
    """Run ``cmd`` in a session of its own; report progress; kill its group on any way out."""
    deadline = time.monotonic() + timeout_s
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                            start_new_session=True)
    try:
        while True:
            try:
                return proc.wait(timeout=max(0.0, min(_POLL_S, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() >= deadline:
                raise errors.MediaTimeoutError(
                    f"Decoding took longer than {timeout_s:g} s and was stopped; the file may be damaged. "
                    "Converting it to a common format (e.g. mp3 or flac) usually helps."
                )
            if on_progress is not None:
                # Every poll, written or not: the callback is also where the caller stops a decode
                # (a canceled job), and a decoder that has written nothing yet is where it hangs.
                written = out_path.stat().st_size if expected_bytes and out_path.exists() else 0
                on_progress(min(1.0, written / expected_bytes) if expected_bytes else 0.0)
    finally:
        kill_group(proc)


def _check_output(rc: int, stderr: str, out_path: Path, info: MediaInfo, max_duration_ms: int | None,
                  timeout_s: float) -> int:
    decoded_bytes = out_path.stat().st_size if out_path.exists() else 0
    duration_ms = decoded_bytes // BYTES_PER_SAMPLE * 1000 // SAMPLE_RATE_HZ
    if rc == -signal.SIGXCPU:
        raise errors.MediaTimeoutError(
            f"Decoding used more than {int(timeout_s * 2) + 1} s of CPU and was stopped; the file may be damaged.",
            detail=stderr,
        )
    # Whatever the exit status: Debian's ffmpeg 5.1 reports a full disk ("Error writing trailer ...:
    # No space left on device") and still exits 0, with the output cut where the disk filled.
    if _NO_SPACE in stderr:
        raise errors.ScratchFullError(
            f"The scratch disk ran out of space after {format_duration(duration_ms)} of decoded audio "
            f"({decoded_bytes // 1024**2} MiB in {out_path.parent}); the file itself is not at fault.",
            detail=stderr,
        )
    if max_duration_ms is not None and (duration_ms > max_duration_ms or rc == -signal.SIGXFSZ):
        raise too_long(None, max_duration_ms)
    if rc != 0 and decoded_bytes == 0:
        raise errors.MediaError(
            "ffmpeg could not decode the file's audio; the file may be damaged.", detail=stderr
        )
    if decoded_bytes == 0:
        raise errors.TruncatedMediaError(
            "The file contains no decodable audio; it may be cut short or damaged.", detail=stderr
        )
    if info.duration_ms and duration_ms < MIN_DECODED_SHARE * info.duration_ms:
        raise errors.TruncatedMediaError(
            f"The file is cut short: only {format_duration(duration_ms)} of its "
            f"{format_duration(info.duration_ms)} could be decoded; upload the complete file.",
            detail=stderr,
        )
    return duration_ms
