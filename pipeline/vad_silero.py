"""Silero VAD (v6, the ONNX file faster-whisper ships) on onnxruntime, streamed over a PCM file.

The model scores 512-sample windows (32 ms at 16 kHz), each fed with the 64 samples before it as
context and an LSTM state (h, c) carried from window to window. We read the file a chunk at a
time, carry context and state across chunks, and turn the scores into speech regions on the fly,
so memory stays flat whatever the file's length. Regions are then padded and merged into spans
no longer than the ASR model takes at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pipeline.stages import SpeechSpan

if TYPE_CHECKING:
    from pipeline.audio import PcmFile

WINDOW_SAMPLES = 512
CONTEXT_SAMPLES = 64
STATE_SHAPE = (1, 1, 128)


@dataclass(frozen=True)
class VadOptions:
    """How speech scores become spans.

    threshold: a window scoring at least this starts (or continues) speech; default 0.5.
    neg_threshold: a window below this counts as silence inside speech; default threshold - 0.15.
    min_speech_ms: regions shorter than this are dropped as clicks; default 250 ms.
    min_silence_ms: a silence this long ends a region; default 100 ms (short, so that spans can
        later be cut at pauses between phrases).
    speech_pad_ms: added before and after each region (halved when neighbours are closer); 200 ms.
    merge_gap_ms: regions closer than this are merged into one span, up to ``max_span_ms``;
        default 2000 ms.
    max_span_ms: no span is longer than this (Whisper reads 30 s at once); default 30000 ms.
    chunk_windows: windows scored per onnxruntime call (memory per call); default 625 (20 s).
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 200
    merge_gap_ms: int = 2000
    max_span_ms: int = 30_000
    chunk_windows: int = 625


def silero_model_path() -> Path:
    """The Silero v6 ONNX file inside the installed faster-whisper package."""
    from pipeline.runtimes import import_faster_whisper

    import_faster_whisper()
    from faster_whisper.utils import get_assets_path

    return Path(get_assets_path()) / "silero_vad_v6.onnx"


class SileroVad:
    """:class:`~pipeline.stages.VadModel` backed by Silero v6 on onnxruntime (CPU, one thread).

    All cores: VAD runs before ASR, not beside it, so it only delays the first ASR batch.
    """

    def __init__(self, options: VadOptions = VadOptions(), model_path: Path | None = None):
        import onnxruntime

        self.options = options
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 0  # all cores: VAD runs before ASR, not beside it
        opts.enable_cpu_mem_arena = False  # keep memory flat across long files
        opts.enable_mem_pattern = False
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(model_path or silero_model_path()), providers=["CPUExecutionProvider"], sess_options=opts
        )

    def speech_spans(
        self, pcm: "PcmFile", on_progress: Callable[[float], None] | None = None
    ) -> list[SpeechSpan]:
        rate = pcm.sample_rate_hz
        regions_ms = [(s * 1000 // rate, e * 1000 // rate) for s, e in self._regions(pcm, on_progress)]
        return _shape_spans(regions_ms, pcm.duration_ms, self.options)

    def _regions(self, pcm: "PcmFile", on_progress: Callable[[float], None] | None) -> list[tuple[int, int]]:
        """Raw speech regions in samples, found by a hysteresis over window scores."""
        import numpy as np

        opt = self.options
        neg = opt.neg_threshold if opt.neg_threshold is not None else max(opt.threshold - 0.15, 0.01)
        min_silence = opt.min_silence_ms * pcm.sample_rate_hz // 1000
        min_speech = opt.min_speech_ms * pcm.sample_rate_hz // 1000

        h = np.zeros(STATE_SHAPE, dtype=np.float32)
        c = np.zeros(STATE_SHAPE, dtype=np.float32)
        context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        regions: list[tuple[int, int]] = []
        start: int | None = None  # sample where the current region began
        silence_from: int | None = None  # sample where the current run of silence began

        chunk_samples = opt.chunk_windows * WINDOW_SAMPLES
        total = pcm.num_samples
        for chunk_start in range(0, total, chunk_samples):
            audio = pcm.read_samples(chunk_start, chunk_start + chunk_samples)
            n_windows = -(-len(audio) // WINDOW_SAMPLES)
            audio = np.pad(audio, (0, n_windows * WINDOW_SAMPLES - len(audio)))
            windows = audio.reshape(n_windows, WINDOW_SAMPLES)
            previous = np.concatenate([context[None, :], windows[:-1, -CONTEXT_SAMPLES:]], axis=0)
            batch = np.concatenate([previous, windows], axis=1)
            probs, h, c = self._session.run(None, {"input": batch, "h": h, "c": c})
            context = windows[-1, -CONTEXT_SAMPLES:].copy()

            for i, prob in enumerate(np.asarray(probs).reshape(-1).tolist()):
                at = chunk_start + i * WINDOW_SAMPLES
                if prob >= opt.threshold:
                    silence_from = None
                    if start is None:
                        start = at
                elif start is not None and prob < neg:
                    if silence_from is None:
                        silence_from = at
                    elif at - silence_from >= min_silence:
                        if silence_from - start >= min_speech:
                            regions.append((start, silence_from))
                        start = silence_from = None
            if on_progress is not None:
                on_progress(min(1.0, (chunk_start + chunk_samples) / total))
        if start is not None:
            end = silence_from if silence_from is not None else total
            if end - start >= min_speech:
                regions.append((start, min(end, total)))
        return regions


def _shape_spans(regions: list[tuple[int, int]], duration_ms: int, opt: VadOptions) -> list[SpeechSpan]:
    """Pad regions, merge those separated by short gaps, and keep every span under max_span_ms.

    Merging gives Whisper whole phrases (it reads better with context and a batch item costs the
    same 30 s either way); cutting at the widest gaps first is not needed because regions are
    already split at every pause of ``min_silence_ms``.
    """
    padded: list[tuple[int, int]] = []
    for i, (start, end) in enumerate(regions):
        prev_end = regions[i - 1][1] if i else 0
        next_start = regions[i + 1][0] if i + 1 < len(regions) else duration_ms
        lo = max(start - opt.speech_pad_ms, (prev_end + start) // 2 if i else 0)
        hi = min(end + opt.speech_pad_ms, (end + next_start) // 2 if i + 1 < len(regions) else duration_ms)
        padded.append((max(0, lo), min(duration_ms, hi)))

    pieces: list[tuple[int, int]] = []
    for start, end in padded:  # a region longer than a span is cut into equal parts
        parts = -(-(end - start) // opt.max_span_ms)
        step = -(-(end - start) // parts) if parts else 0
        pieces.extend((s, min(end, s + step)) for s in range(start, end, step) if step)

    spans: list[SpeechSpan] = []
    current: list[tuple[int, int]] = []
    for start, end in pieces:
        if current and start - current[-1][1] < opt.merge_gap_ms and end - current[0][0] <= opt.max_span_ms:
            current.append((start, end))
            continue
        if current:
            spans.append(SpeechSpan(current[0][0], current[-1][1], tuple(current)))
        current = [(start, end)]
    if current:
        spans.append(SpeechSpan(current[0][0], current[-1][1], tuple(current)))
    return spans
