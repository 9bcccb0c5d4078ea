"""Where to cut a live stream of raw PCM into pieces, so a 2pass/online client hears each piece's
text while it is still sending.

FunASR's own 2pass server answers each VAD segment as soon as it ends; FunASR's older Python
client sends at real-time pace and closes 2 s after its last frame, so a gateway that waits for the
whole stream answers too late. :class:`PauseCutter` reads the samples as they arrive and says where
a piece ends: in the middle of a pause (``pause_ms`` of 100 ms frames well under the stream's
speech level) once the piece has ``min_piece_ms`` and some speech, or at the quietest frame once it
reaches ``max_piece_ms``. Pure Python over ``array('h')`` (the gateway loads no numpy); no I/O.
"""
from __future__ import annotations

import math
import sys
from array import array
from dataclasses import dataclass
from operator import mul

SAMPLE_BYTES = 2  # signed 16-bit little-endian


@dataclass(frozen=True)
class PauseRules:
    """How a stream is cut.

    frame_ms: the unit of analysis (RMS energy per frame); default 100.
    pause_ms: quiet this long (after some speech) ends a piece; the cut is in its middle; default 600.
    min_piece_ms: no piece is cut shorter (a pause before that is kept inside the piece); default 3000.
    max_piece_ms: a piece with no pause is cut at its quietest frame past ``min_piece_ms`` once
        it is this long; default 25000 (short enough for an answer well before the stream ends).
    quiet_ratio: a frame is quiet under this fraction of the speech level (0.15 is about -16 dB); default 0.15.
    min_speech_rms: a frame under this RMS (of 32767) is quiet whatever the level (about -44 dBFS);
        a stream that never rises above it is only cut at ``max_piece_ms``; default 200.
    level_half_life_ms: the speech level is the loudest recent frame, halving over this long; default 20000.
    """

    frame_ms: int = 100
    pause_ms: int = 600
    min_piece_ms: int = 3000
    max_piece_ms: int = 25000
    quiet_ratio: float = 0.15
    min_speech_rms: int = 200
    level_half_life_ms: int = 20000


def frame_rms(frame: bytes) -> float:
    """RMS of 16-bit little-endian samples."""
    samples = array("h")
    samples.frombytes(frame[: len(frame) // SAMPLE_BYTES * SAMPLE_BYTES])
    if not samples:
        return 0.0
    if sys.byteorder == "big":
        samples.byteswap()
    return math.sqrt(sum(map(mul, samples, samples)) / len(samples))


class PauseCutter:
    """Fed a stream's raw PCM in chunks of any size; :meth:`feed` returns the byte offsets (from
    the stream's first sample) where finished pieces end. Offsets fall on frame boundaries, which
    are whole sample frames for mono and for interleaved stereo alike. Keeps one partial frame and
    the current piece's frame levels (a few hundred numbers), not the audio."""

    def __init__(self, sample_rate_hz: int, rules: PauseRules = PauseRules()):
        self.rules = rules
        samples = max(2, sample_rate_hz * rules.frame_ms // 1000) // 2 * 2  # even: stereo stays aligned
        self.frame_bytes = samples * SAMPLE_BYTES
        self._decay = 0.5 ** (rules.frame_ms / rules.level_half_life_ms)
        self._min_frames = max(1, rules.min_piece_ms // rules.frame_ms)
        self._max_frames = max(self._min_frames + 1, rules.max_piece_ms // rules.frame_ms)
        self._pause_frames = max(1, rules.pause_ms // rules.frame_ms)
        self._carry = b""
        self._frames_seen = 0  # whole frames since the stream began
        self._piece_start = 0  # frame index where the current piece begins
        self._levels: list[float] = []  # RMS of each frame of the current piece
        self._loud: list[bool] = []
        self._level = 0.0

    def feed(self, chunk: bytes) -> list[int]:
        data = self._carry + chunk if self._carry else chunk
        whole = len(data) // self.frame_bytes * self.frame_bytes
        self._carry = bytes(data[whole:])
        cuts = []
        view = memoryview(data)
        for start in range(0, whole, self.frame_bytes):
            cut = self._frame(frame_rms(view[start:start + self.frame_bytes]))
            if cut is not None:
                cuts.append(cut * self.frame_bytes)
        return cuts

    def _frame(self, rms: float) -> int | None:
        """Account one frame; the frame index where the current piece ends, if it ends now."""
        self._level = max(rms, self._level * self._decay)
        loud = rms >= max(self.rules.min_speech_rms, self.rules.quiet_ratio * self._level)
        self._levels.append(rms)
        self._loud.append(loud)
        self._frames_seen += 1
        cut = self._pause_cut()
        if cut is None and len(self._levels) >= self._max_frames:
            cut = self._quietest_cut()
        if cut is not None:
            keep = cut - self._piece_start
            self._levels, self._loud = self._levels[keep:], self._loud[keep:]
            self._piece_start = cut
        return cut

    def _pause_cut(self) -> int | None:
        quiet = 0
        for loud in reversed(self._loud):
            if loud:
                break
            quiet += 1
        if quiet < self._pause_frames or quiet == len(self._loud):
            return None  # no pause yet, or nothing but quiet so far
        cut = self._frames_seen - quiet + quiet // 2
        return cut if cut - self._piece_start >= self._min_frames else None

    def _quietest_cut(self) -> int:
        window = self._levels[self._min_frames:]
        quietest = min(range(len(window)), key=lambda i: (window[i], -i))
        return self._piece_start + self._min_frames + quietest + 1


def piece_name(filename: str, number: int) -> str:
    """A piece's job name: ``demo.wav`` -> ``demo#1.wav``, so the job list shows which stream and
    which piece it was."""
    stem, dot, ext = filename.rpartition(".")
    return f"{stem}#{number}.{ext}" if dot and stem else f"{filename}#{number}"


def joined_text(text: str, after_earlier_piece: bool) -> str:
    """Clients append each piece's text to the last: a piece that starts with a Latin letter or
    digit after an earlier piece gets a leading space, so English words do not run together."""
    if after_earlier_piece and text[:1].isascii() and text[:1].isalnum():
        return " " + text
    return text
