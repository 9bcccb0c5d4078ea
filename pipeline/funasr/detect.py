"""FSMN-VAD end-point detection: FunASR's E2E VAD state machine, run over a chunk of frames at once.

FunASR's ``FsmnVADStreaming`` (funasr/models/fsmn_vad_streaming/model.py) decides speech frame by
frame in Python, reading one score per 10 ms frame out of a torch tensor; over an hour of audio
that loop costs more than the network. This is tingxie's own implementation of the same decisions
(funasr's source is the spec, not the code): the network's silence probabilities and the frame
energies for a whole chunk come in as numpy arrays, one numba-compiled loop walks the frames, and
the detector's state (a few numbers and the 200 ms window) carries over to the next chunk, so
memory stays flat and spans come out on the file's timeline.

The decisions, per 10 ms frame (``DetectOptions`` holds the thresholds):

* frame state: silence when its energy is under ``decibel_thres``; otherwise speech when
  ``P(speech) >= P(silence) + speech_noise_thres`` (computed as funasr does, through log and exp)
  and its SNR against a running noise level clears ``snr_thres``; frames the network calls
  silence update that noise level.
* a sliding window of ``window_frames`` frame states turns silence into speech once it holds
  ``sil_to_speech_frames`` speech frames and back once it holds no more than
  ``speech_to_sil_frames``.
* a span starts ``start_lookback_frames`` before the window turned to speech, ends after
  ``max_end_silence_ms`` of silence (less the lookahead it keeps), is cut at
  ``max_segment_frames``, and the last frame of the file closes an open span.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# The detector's integer state, one slot each (a numba kernel takes arrays, not objects).
_VAD_STATE = 0  # 1 start not detected, 2 in a speech segment, 3 end point detected
_SILENCE_RUN = 1  # frames of silence in a row (after the window)
_LAST_SPEECH = 2  # latest frame confirmed as speech
_LAST_SILENCE = 3  # latest frame confirmed as silence
_SEGMENT_START = 4  # confirmed start frame of the current segment, -1 if none
_ENDS = 5  # end points detected so far (real or the zero-length one of a silent file)
_BUF_START = 6  # first frame not yet handed to a segment or dropped as silence
_WIN_POS = 7
_WIN_SUM = 8  # speech frames in the window
_WIN_SPEECH = 9  # the window's current verdict: 1 speech, 0 silence
_SEG_OPEN = 10  # a segment has started and not been emitted
_SEG_START_MS = 11
_SEG_END_MS = 12
_SEG_EVER = 13  # any segment was ever started (funasr appends to its last segment otherwise)
_NEXT_FRAME = 14  # absolute index of the next frame to detect
_STATE_SLOTS = 15

_START_NOT_DETECTED, _IN_SPEECH, _END_DETECTED = 1, 2, 3
# The window's verdict on a frame (funasr's AudioChangeState).
_SPEECH_TO_SPEECH, _SPEECH_TO_SIL, _SIL_TO_SIL, _SIL_TO_SPEECH = 0, 1, 2, 3

# Integer options, in the order the kernel reads them.
_OPT_INTS = (
    "frame_ms", "window_frames", "sil_to_speech_frames", "speech_to_sil_frames",
    "start_lookback_frames", "end_lookback_frames", "lookahead_frames", "extend",
    "single_utterance", "noise_frames", "speech_allowed",
)
# Float options, in the order the kernel reads them.
_OPT_FLOATS = (
    "max_end_silence_ms", "max_segment_frames", "max_start_silence_ms", "decibel_thres",
    "snr_thres", "speech_noise_thres", "speech_2_noise_ratio",
)


@dataclass(frozen=True)
class DetectOptions:
    """The detector's thresholds, in frames (10 ms each for FunASR's models) or ms as named.

    Built from funasr's ``VADXOptions`` with :meth:`from_vad_options`, which converts its ms
    settings to frame counts the way funasr does (truncating divisions).
    """

    frame_ms: int  # frame shift (``frame_in_ms``)
    frame_length_ms: int  # the span one frame's energy covers
    sample_rate_hz: int
    window_frames: int  # sliding window of frame states (``window_size_ms``)
    sil_to_speech_frames: int  # speech frames in the window that start speech
    speech_to_sil_frames: int  # speech frames in the window at or under which speech stops
    start_lookback_frames: int  # a span starts this long before the window turned to speech
    max_end_silence_ms: float  # silence after the window that ends a span
    end_lookback_frames: int  # a span ends this long before its end was detected
    lookahead_frames: int  # silence frames kept at the end of a span (``do_extend``)
    extend: bool  # ``do_extend``: keep the lookback/lookahead margins
    max_segment_frames: float  # a span is cut when it grows past this (``max_single_segment_time``)
    single_utterance: bool  # detect one span and stop (``detect_mode`` 0); FunASR's models use 1
    max_start_silence_ms: float  # single-utterance mode: give up after this much leading silence
    decibel_thres: float  # frames quieter than this (dB, samples in [-1, 1]) are silence
    snr_thres: float  # dB over the running noise level a speech frame needs
    speech_noise_thres: float  # P(speech) must beat P(silence) by this
    speech_2_noise_ratio: float  # weight of the silence log-probability
    noise_frames: int  # frames in the running noise average
    speech_allowed: bool  # ``fe_prior_thres`` under 1: speech frames stay speech
    sil_pdf_ids: tuple[int, ...]  # network outputs whose sum is P(silence)

    @classmethod
    def from_vad_options(cls, opts: Any, max_end_silence_time_ms: int | None = None) -> "DetectOptions":
        """From funasr's ``VADXOptions`` (the model's ``vad_opts``); ``max_end_silence_time_ms``
        overrides the configured end silence, as funasr's ``max_end_silence_time`` argument does."""
        frame_ms = opts.frame_in_ms
        end_silence_ms = opts.max_end_silence_time if max_end_silence_time_ms is None else max_end_silence_time_ms
        # funasr keeps the end silence less the window's speech-to-silence time, in ms.
        max_end_silence_ms = end_silence_ms - opts.speech_to_sil_time_thres
        window_frames = int(opts.window_size_ms / frame_ms)
        start_lookback = window_frames
        end_lookback = int(max_end_silence_ms / frame_ms)
        if opts.do_extend:
            start_lookback += int(opts.lookback_time_start_point / frame_ms)
            end_lookback = max(0, end_lookback - int(opts.lookahead_time_end_point / frame_ms) - 1)
        sil_pdf_ids = tuple(int(i) for i in opts.sil_pdf_ids)
        if not sil_pdf_ids or len(sil_pdf_ids) != opts.silence_pdf_num:
            raise ValueError(
                f"FSMN-VAD needs silence_pdf_num == len(sil_pdf_ids) > 0, got {opts.silence_pdf_num} and {sil_pdf_ids}"
            )
        return cls(
            frame_ms=int(frame_ms),
            frame_length_ms=int(opts.frame_length_ms),
            sample_rate_hz=int(opts.sample_rate),
            window_frames=window_frames,
            sil_to_speech_frames=int(opts.sil_to_speech_time_thres / frame_ms),
            speech_to_sil_frames=int(opts.speech_to_sil_time_thres / frame_ms),
            start_lookback_frames=start_lookback,
            max_end_silence_ms=float(max_end_silence_ms),
            end_lookback_frames=end_lookback,
            lookahead_frames=int(opts.lookahead_time_end_point / frame_ms),
            extend=bool(opts.do_extend),
            max_segment_frames=opts.max_single_segment_time / frame_ms,
            single_utterance=opts.detect_mode == 0,
            max_start_silence_ms=float(opts.max_start_silence_time),
            decibel_thres=float(opts.decibel_thres),
            snr_thres=float(opts.snr_thres),
            speech_noise_thres=float(opts.speech_noise_thres),
            speech_2_noise_ratio=float(opts.speech_2_noise_ratio),
            noise_frames=int(opts.noise_frame_num_used_for_snr),
            speech_allowed=1.0 > opts.fe_prior_thres,
            sil_pdf_ids=sil_pdf_ids,
        )

    @property
    def frame_samples(self) -> int:
        return int(self.frame_length_ms * self.sample_rate_hz / 1000)

    @property
    def shift_samples(self) -> int:
        return int(self.frame_ms * self.sample_rate_hz / 1000)


class FsmnDetector:
    """Spans of one file, fed a chunk of frames at a time (:meth:`push`); one detector per file."""

    def __init__(self, options: DetectOptions):
        self.options = options
        self._kernel = _kernel()
        self._ints = np.array([int(getattr(options, name)) for name in _OPT_INTS], dtype=np.int64)
        self._floats = np.array([float(getattr(options, name)) for name in _OPT_FLOATS], dtype=np.float64)
        self._state = np.zeros(_STATE_SLOTS, dtype=np.int64)
        self._state[_VAD_STATE] = _START_NOT_DETECTED
        self._state[_LAST_SILENCE] = -1
        self._state[_SEGMENT_START] = -1
        self._noise_db = np.array([-100.0])  # funasr's starting noise level: "none yet"
        self._window = np.zeros(options.window_frames, dtype=np.int64)
        self._finished = False

    def push(self, silence_prob: "np.ndarray", decibel: "np.ndarray", final: bool) -> list[tuple[int, int]]:
        """Detect the next ``len(silence_prob)`` frames; return the spans they complete, in ms.

        ``silence_prob``: P(silence) per frame (float64, :func:`silence_probability`);
        ``decibel``: the frames' energies (float32, :class:`FrameEnergy`). ``final``: these
        frames end the file, so an open span ends at the last one.
        """
        if self._finished:
            raise RuntimeError("this detector has seen the end of its file")
        if len(silence_prob) != len(decibel):
            raise ValueError(f"{len(silence_prob)} scores for {len(decibel)} frame energies")
        if len(silence_prob) == 0:
            # funasr detects nothing on a call without frames, the final one included.
            return []
        self._finished = final
        spans = np.empty((len(silence_prob) + 2, 2), dtype=np.int64)
        count = self._kernel(
            np.ascontiguousarray(silence_prob, dtype=np.float64),
            np.ascontiguousarray(decibel, dtype=np.float32),
            final, self._ints, self._floats, self._state, self._noise_db, self._window, spans,
        )
        return [(int(s), int(e)) for s, e in spans[:count]]


def silence_probability(silence_scores: "np.ndarray") -> "np.ndarray":
    """P(silence) per frame from the network's silence outputs ``(frames, len(sil_pdf_ids))``:
    their sum in float64, added left to right as funasr adds them."""
    total = silence_scores[:, 0].astype(np.float64)
    for column in range(1, silence_scores.shape[1]):
        total = total + silence_scores[:, column].astype(np.float64)
    return total


class FrameEnergy:
    """Frame energies in dB for the frames the network scores, from the file's samples.

    Frame ``t`` covers samples ``[t * shift, t * shift + frame)``; funasr computes its energy in
    float32 as ``10 * log10(sum(x**2) + 1e-6)``, and so does this, on the same arrays.
    """

    def __init__(self, frame_samples: int, shift_samples: int):
        self.frame_samples = frame_samples
        self.shift_samples = shift_samples
        self._pending = np.zeros(0, dtype=np.float32)  # samples from the next frame's start on

    def add(self, samples: "np.ndarray") -> None:
        self._pending = np.concatenate((self._pending, samples.astype(np.float32, copy=False)))

    def take(self, frames: int) -> "np.ndarray":
        """Energies of the next ``frames`` frames (float32)."""
        needed = (frames - 1) * self.shift_samples + self.frame_samples
        if frames <= 0 or len(self._pending) < needed:
            raise RuntimeError(f"{frames} frames need {needed} samples, {len(self._pending)} are here")
        windows = sliding_window_view(self._pending[:needed], self.frame_samples)[:: self.shift_samples]
        energy = 10 * np.log10(np.sum(np.square(windows), axis=1) + 0.000001)
        self._pending = self._pending[frames * self.shift_samples:]
        return energy


@functools.cache
def _kernel():
    """:func:`_detect_frames` compiled by numba (once per process; numba caches the machine
    code on disk, beside this file or in the user's cache directory, as librosa's kernels are)."""
    # numba (the funasr extra, slow to import) only when the kernel is first compiled
    from numba import njit

    return njit(cache=True, nogil=True)(_detect_frames)


def _detect_frames(silence_prob, decibel, final, opt_i, opt_f, state, noise_db, window, spans):
    """Detect ``len(silence_prob)`` frames, updating ``state``, ``noise_db`` and ``window`` in
    place; write the spans they complete (ms) to ``spans`` and return how many.

    Plain Python in numba's subset: compiled by :func:`_kernel`.
    """
    frame_ms = opt_i[0]
    window_frames = opt_i[1]
    sil_to_speech = opt_i[2]
    speech_to_sil = opt_i[3]
    start_lookback = opt_i[4]
    end_lookback = opt_i[5]
    lookahead = opt_i[6]
    extend = opt_i[7] != 0
    single = opt_i[8] != 0
    noise_frames = opt_i[9]
    speech_allowed = opt_i[10] != 0
    max_end_silence_ms = opt_f[0]
    max_segment_frames = opt_f[1]
    max_start_silence_ms = opt_f[2]
    decibel_thres = opt_f[3]
    snr_thres = opt_f[4]
    speech_noise_thres = opt_f[5]
    noise_ratio = opt_f[6]

    count = 0
    frames = silence_prob.shape[0]
    first_frame = state[_NEXT_FRAME]
    state[_NEXT_FRAME] += frames
    for i in range(frames):
        if state[_VAD_STATE] == _END_DETECTED:
            break  # single-utterance mode after its one span: nothing more is detected
        frame = first_frame + i
        final_frame = final and i == frames - 1

        # The frame's state from its energy and the network's silence probability.
        db = float(decibel[i])
        speech = False
        if db >= decibel_thres:
            s = silence_prob[i]
            if math.exp(math.log(1.0 - s)) >= math.exp(math.log(s) * noise_ratio) + speech_noise_thres:
                speech = db - noise_db[0] >= snr_thres
            elif noise_db[0] < -99.9:
                noise_db[0] = db
            else:
                noise_db[0] = (db + noise_db[0] * (noise_frames - 1)) / noise_frames
        speech = speech and speech_allowed

        # The sliding window's verdict on this frame.
        pos = state[_WIN_POS]
        cur = 1 if speech else 0
        state[_WIN_SUM] += cur - window[pos]
        window[pos] = cur
        state[_WIN_POS] = (pos + 1) % window_frames
        if state[_WIN_SPEECH] == 0 and state[_WIN_SUM] >= sil_to_speech:
            state[_WIN_SPEECH] = 1
            change = _SIL_TO_SPEECH
        elif state[_WIN_SPEECH] == 1 and state[_WIN_SUM] <= speech_to_sil:
            state[_WIN_SPEECH] = 0
            change = _SPEECH_TO_SIL
        elif state[_WIN_SPEECH] == 1:
            change = _SPEECH_TO_SPEECH
        else:
            change = _SIL_TO_SIL

        # What the verdict does to the current segment: it may start at ``start``, take the
        # frames ``speech_from..speech_to`` as speech, or end at ``end``.
        start = -1
        speech_from = 0
        speech_to = -1
        end = -1
        no_speech = False
        vad = state[_VAD_STATE]
        too_long = frame - state[_SEGMENT_START] + 1 > max_segment_frames
        if change == _SIL_TO_SPEECH:
            state[_SILENCE_RUN] = 0
            if vad == _START_NOT_DETECTED:
                start = max(state[_BUF_START], frame - start_lookback)
                speech_from, speech_to = start + 1, frame
            elif vad == _IN_SPEECH:
                if too_long or final_frame:
                    end = frame
                else:
                    speech_from, speech_to = state[_LAST_SPEECH] + 1, frame
        elif change == _SPEECH_TO_SIL or change == _SPEECH_TO_SPEECH:
            state[_SILENCE_RUN] = 0
            if vad == _IN_SPEECH:
                if too_long or final_frame:
                    end = frame
                else:
                    speech_from, speech_to = frame, frame
        else:
            state[_SILENCE_RUN] += 1
            if vad == _START_NOT_DETECTED:
                gave_up = single and state[_SILENCE_RUN] * frame_ms > max_start_silence_ms
                if gave_up or (final_frame and state[_ENDS] == 0):
                    no_speech = True
                elif frame >= start_lookback:
                    # Silence confirmed this far back: a later span starts no earlier.
                    state[_LAST_SILENCE] = frame - start_lookback
                    state[_BUF_START] = max(state[_BUF_START], frame - start_lookback)
            elif vad == _IN_SPEECH:
                if state[_SILENCE_RUN] * frame_ms >= max_end_silence_ms:
                    end = frame - end_lookback
                elif too_long:
                    end = frame
                elif extend and not final_frame:
                    if state[_SILENCE_RUN] <= lookahead:
                        speech_from, speech_to = frame, frame
                elif final_frame:
                    end = frame

        if start >= 0:
            state[_BUF_START] = max(state[_BUF_START], start) + 1
            state[_SEG_EVER] = 1
            state[_SEG_OPEN] = 1
            state[_SEG_START_MS] = start * frame_ms
            state[_SEG_END_MS] = (start + 1) * frame_ms
            state[_SEGMENT_START] = start
            state[_VAD_STATE] = _IN_SPEECH
        if end >= 0:
            # Every frame between the last speech frame and the end point is speech.
            speech_from, speech_to = state[_LAST_SPEECH] + 1, end - 1
        if speech_to >= speech_from:
            if state[_SEG_EVER] == 0:
                state[_SEG_EVER] = 1
                state[_SEG_OPEN] = 1
                state[_SEG_START_MS] = speech_from * frame_ms
            # Each frame t moves the consumed-frame mark to max(mark, t) + 1.
            state[_BUF_START] = max(state[_BUF_START] + speech_to - speech_from + 1, speech_to + 1)
            state[_SEG_END_MS] = (speech_to + 1) * frame_ms
            state[_LAST_SPEECH] = speech_to
        if end >= 0:
            if state[_SEG_EVER] == 0:
                state[_SEG_EVER] = 1
                state[_SEG_OPEN] = 1
                state[_SEG_START_MS] = end * frame_ms
            state[_BUF_START] = max(state[_BUF_START], end) + 1
            state[_SEG_END_MS] = (end + 1) * frame_ms
            if state[_SEG_OPEN] == 1:
                spans[count, 0] = state[_SEG_START_MS]
                spans[count, 1] = state[_SEG_END_MS]
                state[_SEG_OPEN] = 0
                count += 1
            state[_ENDS] += 1
            state[_VAD_STATE] = _END_DETECTED
        if no_speech:
            # funasr's zero-length result for a file (or a single utterance) without speech:
            # the frames so far are silence and nothing is emitted.
            if frame - 1 > state[_LAST_SILENCE]:
                state[_BUF_START] = max(state[_BUF_START], frame - 1)
                state[_LAST_SILENCE] = frame - 1
            if state[_SEGMENT_START] == -1:
                state[_SEGMENT_START] = 0
            state[_ENDS] += 1
            state[_VAD_STATE] = _END_DETECTED

        if state[_VAD_STATE] == _END_DETECTED and not single:
            # Multiple-utterance mode: start over, keeping the frame clock and noise level.
            state[_SILENCE_RUN] = 0
            state[_LAST_SPEECH] = 0
            state[_LAST_SILENCE] = -1
            state[_SEGMENT_START] = -1
            state[_VAD_STATE] = _START_NOT_DETECTED
            state[_WIN_POS] = 0
            state[_WIN_SUM] = 0
            state[_WIN_SPEECH] = 0
            window[:] = 0

    if final and state[_SEG_OPEN] == 1:
        # The file ends inside a span that never saw its end point.
        spans[count, 0] = state[_SEG_START_MS]
        spans[count, 1] = state[_SEG_END_MS]
        state[_SEG_OPEN] = 0
        count += 1
    return count
