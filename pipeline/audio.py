"""The decoded audio every stage reads: a 16 kHz mono s16le file on disk, read in slices.

:func:`decode` hands the input to the ``media`` package (the one hardened probe and decode), which
streams ffmpeg's output straight to the file, so neither the compressed input nor the decoded
audio is ever held in memory; later stages read slices of it through :class:`PcmFile`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import media
from media import MediaInfo

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE_HZ = media.SAMPLE_RATE_HZ
BYTES_PER_SAMPLE = 2  # s16le mono


def decode(
    path: str | os.PathLike,
    pcm_path: str | os.PathLike,
    *,
    info: MediaInfo | None = None,
    ffmpeg: str | None = None,
    max_duration_ms: int | None = None,
    on_progress: Callable[[float], None] | None = None,
    channel: int | None = None,
) -> tuple[MediaInfo, "PcmFile"]:
    """Probe ``path`` (unless the caller already did: ``info``) and decode it into ``pcm_path``:
    every channel mixed down, or only ``channel`` (0 is the first).

    Raises :class:`~media.MediaError` subclasses for input a person must fix; ``pcm_path`` is
    removed when decoding fails.
    """
    if info is None:
        info = media.probe(path, max_duration_ms=max_duration_ms)
    media.decode_to_pcm(path, pcm_path, info=info, ffmpeg=ffmpeg, max_duration_ms=max_duration_ms,
                        on_progress=on_progress, channel=channel)
    return info, PcmFile(pcm_path)


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
        # numpy only once audio is processed: importing the pipeline loads none (it comes with a profile's extra)
        import numpy as np

        start = max(0, min(start, self.num_samples))
        end = max(start, min(end, self.num_samples))
        raw = np.fromfile(self.path, dtype="<i2", count=end - start, offset=start * BYTES_PER_SAMPLE)
        return raw.astype(np.float32) / 32768.0

    def read(self, start_ms: int, end_ms: int) -> "np.ndarray":
        """Audio ``[start_ms, end_ms)`` as float32 in [-1, 1] (clipped to the file)."""
        return self.read_samples(self.ms_to_sample(start_ms), self.ms_to_sample(end_ms))

