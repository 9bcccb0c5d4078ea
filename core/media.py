"""A quick look at an upload with ffmpeg, so the web tier can refuse what will never decode.

There may be no ffprobe (imageio-ffmpeg ships ffmpeg alone), so this reads ``ffmpeg -i``'s report.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

_DURATION = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


class ProbeError(Exception):
    """The file is not media ffmpeg can read; ``code`` and ``message`` are for the API."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class MediaInfo:
    duration_ms: int | None
    has_audio: bool


def ffmpeg_binary(explicit: str = "") -> str:
    """The configured ffmpeg, else the system's, else the binary imageio-ffmpeg ships."""
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def probe(path: str, ffmpeg: str, timeout_s: float = 60.0) -> MediaInfo:
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout_s,
    )
    report = proc.stderr.decode("utf-8", "replace")
    if "Invalid data found when processing input" in report or "Input #0" not in report:
        raise ProbeError("bad_media", "the file is not audio or video that ffmpeg can read")
    has_audio = bool(re.search(r"Stream #\S+.*: Audio:", report))
    if not has_audio:
        raise ProbeError("no_audio", "the file has no audio stream")
    match = _DURATION.search(report)
    duration_ms = None
    if match:
        hours, minutes, seconds = match.groups()
        duration_ms = int(round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000))
    return MediaInfo(duration_ms=duration_ms, has_audio=has_audio)
