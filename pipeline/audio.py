"""Decoding: any ffmpeg input (audio or video) to a 16 kHz mono s16le file on disk, streamed.

ffmpeg reads the input by path and writes PCM straight to a file, so neither the compressed
input nor the decoded audio is ever held in memory; later stages read slices of the PCM file
(:class:`PcmFile`). There is no ffprobe where the ffmpeg binary comes from imageio-ffmpeg, so
:func:`probe` parses ``ffmpeg -i``'s banner.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pipeline.errors import (
    EmptyMediaError,
    FfmpegMissingError,
    MediaError,
    MediaTooLongError,
    NoAudioStreamError,
    TruncatedMediaError,
)

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE_HZ = 16_000
BYTES_PER_SAMPLE = 2  # s16le mono

# A decode that yields less than this share of the duration the container declares is refused
# as truncated; above it the audio that is there is transcribed (the caller may warn).
MIN_DECODED_SHARE = 0.5

_STDERR_KEEP_CHARS = 4000


def find_ffmpeg(explicit: str | None = None) -> str:
    """The ffmpeg to run: ``explicit`` when given, else ``ffmpeg`` on PATH, else imageio-ffmpeg's.

    The fallback means a fresh machine needs no system package.
    """
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise FfmpegMissingError(f"The configured ffmpeg {explicit!r} does not exist or is not executable.")
        return found
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise FfmpegMissingError(
            "No ffmpeg found: install your system's ffmpeg, or `pip install imageio-ffmpeg`."
        ) from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class MediaInfo:
    """What ffmpeg says about an input before decoding it.

    duration_ms: None when the container does not say (raw streams, some live captures).
    """

    duration_ms: int | None
    has_audio: bool
    has_video: bool
    format_name: str
    audio_codec: str | None = None
    sample_rate_hz: int | None = None
    channels: str | None = None


_INPUT_RE = re.compile(r"^Input #0, (?P<fmt>[^,]+(?:,[^,]+)*?), from ", re.MULTILINE)
_DURATION_RE = re.compile(r"Duration: (?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)")
_AUDIO_RE = re.compile(
    r"Stream #0:\d+.*?: Audio: (?P<codec>[^\s,]+)[^,\n]*(?:, (?P<rate>\d+) Hz)?(?:, (?P<ch>[^,\n]+))?"
)
_VIDEO_RE = re.compile(r"Stream #0:\d+.*?: Video: ")


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise MediaError(f"The file {path.name!r} does not exist.") from exc
    if size == 0:
        raise EmptyMediaError(f"The file {path.name!r} is empty (0 bytes); upload it again.")


def _tail(text: str) -> str:
    return text[-_STDERR_KEEP_CHARS:]


def probe(path: str | os.PathLike, ffmpeg: str) -> MediaInfo:
    """Read the container's header: duration and which streams there are. Fast (no decoding)."""
    path = Path(path)
    _check_file(path)
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    banner = proc.stderr.decode("utf-8", errors="replace")
    match = _INPUT_RE.search(banner)
    if match is None:
        if "End of file" in banner:
            raise TruncatedMediaError(
                f"{path.name!r} ends before its header does: it is cut short; upload the complete file.",
                detail=_tail(banner),
            )
        raise MediaError(
            f"{path.name!r} is not an audio or video file ffmpeg can read; check that it is the file you meant.",
            detail=_tail(banner),
        )
    duration_ms = None
    dur = _DURATION_RE.search(banner)
    if dur:
        seconds = int(dur["h"]) * 3600 + int(dur["m"]) * 60 + float(dur["s"])
        duration_ms = int(round(seconds * 1000))
    audio = _AUDIO_RE.search(banner)
    return MediaInfo(
        duration_ms=duration_ms,
        has_audio=audio is not None,
        has_video=_VIDEO_RE.search(banner) is not None,
        format_name=match["fmt"],
        audio_codec=audio["codec"] if audio else None,
        sample_rate_hz=int(audio["rate"]) if audio and audio["rate"] else None,
        channels=audio["ch"].strip() if audio and audio["ch"] else None,
    )


def _too_long(name: str, max_duration_ms: int) -> MediaTooLongError:
    return MediaTooLongError(
        f"{name!r} is longer than the {_fmt_duration(max_duration_ms)} this service accepts; "
        "split it or ask the operator to raise the limit."
    )


def _fmt_duration(ms: int) -> str:
    seconds = ms // 1000
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def decode_to_pcm(
    path: str | os.PathLike,
    out_path: str | os.PathLike,
    ffmpeg: str,
    max_duration_ms: int | None = None,
    *,
    info: MediaInfo | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> int:
    """Decode the first audio stream of ``path`` to 16 kHz mono s16le in ``out_path``; return its ms.

    ``info`` (from :func:`probe`, probed here when not given) rules out empty, non-media,
    audio-less and too-long inputs before decoding starts; ``max_duration_ms`` is enforced while
    decoding too, for containers that do not declare their length. ``on_progress`` gets 0..1,
    estimated from the bytes written against the declared duration, about twice a second.
    On failure ``out_path`` is removed.
    """
    path, out_path = Path(path), Path(out_path)
    if info is None:
        info = probe(path, ffmpeg)
    if not info.has_audio:
        raise NoAudioStreamError(
            f"{path.name!r} has no audio track ({'video only' if info.has_video else 'no streams ffmpeg can decode'})."
        )
    if max_duration_ms is not None and info.duration_ms is not None and info.duration_ms > max_duration_ms:
        raise _too_long(path.name, max_duration_ms)

    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-v", "error", "-i", str(path),
           "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE_HZ),
           "-c:a", "pcm_s16le", "-f", "s16le"]
    if max_duration_ms is not None:
        # One second past the cap is enough to know it was exceeded, and bounds the work.
        cmd += ["-t", f"{(max_duration_ms + 1000) / 1000:.3f}"]
    cmd += ["-y", str(out_path)]
    log_path = out_path.with_name(out_path.name + ".ffmpeg.log")
    expected_bytes = (info.duration_ms or 0) * SAMPLE_RATE_HZ // 1000 * BYTES_PER_SAMPLE
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
            try:
                while True:
                    try:
                        rc = proc.wait(timeout=0.5)
                        break
                    except subprocess.TimeoutExpired:
                        if on_progress is not None and expected_bytes and out_path.exists():
                            on_progress(min(1.0, out_path.stat().st_size / expected_bytes))
            finally:
                if proc.poll() is None:  # interrupted (KeyboardInterrupt, a progress callback raised)
                    proc.kill()
                    proc.wait()
        stderr = log_path.read_text("utf-8", errors="replace")
    finally:
        log_path.unlink(missing_ok=True)

    try:
        decoded_bytes = out_path.stat().st_size if out_path.exists() else 0
        duration_ms = decoded_bytes // BYTES_PER_SAMPLE * 1000 // SAMPLE_RATE_HZ
        if rc != 0 and decoded_bytes == 0:
            raise MediaError(
                f"ffmpeg could not decode the audio of {path.name!r}; the file may be damaged.",
                detail=_tail(stderr),
            )
        if max_duration_ms is not None and duration_ms > max_duration_ms:
            raise _too_long(path.name, max_duration_ms)
        if decoded_bytes == 0:
            raise TruncatedMediaError(
                f"{path.name!r} contains no decodable audio; it may be cut short or damaged.",
                detail=_tail(stderr),
            )
        if info.duration_ms and duration_ms < MIN_DECODED_SHARE * info.duration_ms:
            raise TruncatedMediaError(
                f"{path.name!r} is cut short: only {_fmt_duration(duration_ms)} of its "
                f"{_fmt_duration(info.duration_ms)} could be decoded; upload the complete file.",
                detail=_tail(stderr),
            )
    except MediaError:
        out_path.unlink(missing_ok=True)
        raise
    if on_progress is not None:
        on_progress(1.0)
    return duration_ms


class PcmFile:
    """A decoded s16le 16 kHz mono file, read in slices so memory does not grow with its length.

    Each :meth:`read` opens, seeks and reads only the requested samples (``np.fromfile`` with an
    offset); no memory map stays resident between reads.
    """

    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.num_samples = self.path.stat().st_size // BYTES_PER_SAMPLE

    @property
    def duration_ms(self) -> int:
        return self.num_samples * 1000 // self.sample_rate_hz

    def ms_to_sample(self, ms: int) -> int:
        return min(self.num_samples, max(0, ms * self.sample_rate_hz // 1000))

    def read_samples(self, start: int, end: int) -> "np.ndarray":
        """Samples ``[start, end)`` as float32 in [-1, 1] (clipped to the file)."""
        import numpy as np

        start = max(0, min(start, self.num_samples))
        end = max(start, min(end, self.num_samples))
        raw = np.fromfile(self.path, dtype="<i2", count=end - start, offset=start * BYTES_PER_SAMPLE)
        return raw.astype(np.float32) / 32768.0

    def read(self, start_ms: int, end_ms: int) -> "np.ndarray":
        """Audio ``[start_ms, end_ms)`` as float32 in [-1, 1] (clipped to the file)."""
        return self.read_samples(self.ms_to_sample(start_ms), self.ms_to_sample(end_ms))

