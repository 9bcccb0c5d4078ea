"""Silero VAD (v6, the ONNX file faster-whisper ships) on onnxruntime, streamed over a PCM file.

The model scores 512-sample windows (32 ms at 16 kHz), each fed with the 64 samples before it as
context and an LSTM state (h, c) carried from window to window. We read the file a chunk at a
time, carry context and state across chunks, and turn the scores into speech regions on the fly,
so memory stays flat whatever the file's length. Regions are then padded and merged into spans
no longer than the ASR model takes at once; the audio ASR reads reaches further out than the
regions, the speech the rest of the pipeline sees, do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from pipeline.runtimes import import_faster_whisper
from pipeline.stages import SpeechSpan

if TYPE_CHECKING:
    import threading

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
    speech_pad_ms: added before and after each region (never past halfway to a neighbour): the
        span's ``parts``, where speaker windows are cut and what the re-read check measures; 200 ms.
    span_pad_ms: how far the span itself, the audio ASR reads, reaches before its first region and
        after its last (never past halfway to a neighbour, never less than ``speech_pad_ms``);
        500 ms. Whisper reads a clip cut close to its first word worse (faster-whisper pads 400
        ms); the parts stay close to the speech, so speaker windows hold no more silence.
    merge_gap_ms: regions closer than this are merged into one span, up to ``max_span_ms``;
        default 2000 ms.
    max_pause_ms: ASR reads at most this much of the pause between two parts of a span: the rest
        is cut out (the span's ``cuts``), so a window holds more speech; with the parts' own
        padding, that leaves at most 800 ms of silence between two stretches of speech, as
        faster-whisper's batched pipeline does. Default 400 ms; None reads every pause whole.
    max_span_ms: ASR reads no more of a span than this (Whisper reads 30 s at once); default 30000 ms.
    chunk_windows: windows scored per onnxruntime call (memory per call); default 625 (20 s).
    """

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 200
    span_pad_ms: int = 500
    merge_gap_ms: int = 2000
    max_pause_ms: int | None = 400
    max_span_ms: int = 30_000
    chunk_windows: int = 625


def silero_model_path() -> Path:
    """The Silero v6 ONNX file inside the installed faster-whisper package."""
    import_faster_whisper()
    # faster_whisper only after import_faster_whisper() has loaded it with torch hidden (see pipeline.runtimes)
    from faster_whisper.utils import get_assets_path

    return Path(get_assets_path()) / "silero_vad_v6.onnx"


class SileroVad:
    """:class:`~pipeline.stages.StreamingVad` backed by Silero v6 on onnxruntime (CPU, one thread).

    It hands out each span once the next speech region is known (padding and merging look one
    region ahead), so the pipeline runs it in a thread beside ASR: one thread, since ASR keeps
    the other cores busy, and one thread reads a file at about 100x real time.
    """

    def __init__(self, options: VadOptions = VadOptions(), model_path: Path | None = None):
        # onnxruntime only in the worker that runs this model (importing the pipeline loads none)
        import onnxruntime

        self.options = options
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1  # beside ASR, which has the other cores
        opts.enable_cpu_mem_arena = False  # keep memory flat across long files
        opts.enable_mem_pattern = False
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(model_path or silero_model_path()), providers=["CPUExecutionProvider"], sess_options=opts
        )

    def speech_spans(
        self, pcm: "PcmFile", on_progress: Callable[[float], None] | None = None
    ) -> list[SpeechSpan]:
        return list(self.iter_speech_spans(pcm, on_progress))

    def iter_speech_spans(
        self, pcm: "PcmFile", on_progress: Callable[[float], None] | None = None,
        stop: "threading.Event | None" = None,
    ) -> Iterator[SpeechSpan]:
        rate = pcm.sample_rate_hz
        regions_ms = ((s * 1000 // rate, e * 1000 // rate) for s, e in self._regions(pcm, on_progress, stop))
        return _iter_spans(regions_ms, pcm.duration_ms, self.options)

    def _regions(
        self, pcm: "PcmFile", on_progress: Callable[[float], None] | None, stop: "threading.Event | None" = None,
    ) -> Iterator[tuple[int, int]]:
        """Raw speech regions in samples, found by a hysteresis over window scores, as each ends."""
        # numpy only once audio is processed: importing the pipeline loads none (it comes with a profile's extra)
        import numpy as np

        opt = self.options
        neg = opt.neg_threshold if opt.neg_threshold is not None else max(opt.threshold - 0.15, 0.01)
        min_silence = opt.min_silence_ms * pcm.sample_rate_hz // 1000
        min_speech = opt.min_speech_ms * pcm.sample_rate_hz // 1000

        h = np.zeros(STATE_SHAPE, dtype=np.float32)
        c = np.zeros(STATE_SHAPE, dtype=np.float32)
        context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        start: int | None = None  # sample where the current region began
        silence_from: int | None = None  # sample where the current run of silence began

        chunk_samples = opt.chunk_windows * WINDOW_SAMPLES
        total = pcm.num_samples
        for chunk_start in range(0, total, chunk_samples):
            if stop is not None and stop.is_set():
                return
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
                            yield start, silence_from
                        start = silence_from = None
            if on_progress is not None:
                on_progress(min(1.0, (chunk_start + chunk_samples) / total))
        if start is not None:
            end = silence_from if silence_from is not None else total
            if end - start >= min_speech:
                yield start, min(end, total)


def _shape_spans(regions: list[tuple[int, int]], duration_ms: int, opt: VadOptions) -> list[SpeechSpan]:
    """:func:`_iter_spans` over a list."""
    return list(_iter_spans(iter(regions), duration_ms, opt))


def _iter_spans(regions: Iterable[tuple[int, int]], duration_ms: int, opt: VadOptions) -> Iterator[SpeechSpan]:
    """Pad regions, merge those separated by short gaps while ASR reads no more than max_span_ms of
    the span (long pauses inside it cut down to ``max_pause_ms``); each span as soon as the region
    after it is known.

    Merging gives Whisper whole phrases (it reads better with context and a batch item costs the
    same 30 s either way); cutting at the widest gaps first is not needed because regions are
    already split at every pause of ``min_silence_ms``.
    """
    current: list[tuple[int, int]] = []
    cuts: list[tuple[int, int]] = []
    outer = (0, 0)  # the span's bounds: the first part's outer start, the last one's outer end
    for start, end, outer_start, outer_end in _pieces(_padded(iter(regions), duration_ms, opt), opt):
        if current and start - current[-1][1] < opt.merge_gap_ms:
            cut = _cut(current[-1][1], start, opt.max_pause_ms)
            cut_ms = sum(e - s for s, e in cuts) + (cut[1] - cut[0] if cut else 0)
            if outer_end - outer[0] - cut_ms <= opt.max_span_ms:
                current.append((start, end))
                cuts += [cut] if cut else []
                outer = (outer[0], outer_end)
                continue
        if current:
            yield SpeechSpan(*outer, tuple(current), tuple(cuts))
        current, cuts, outer = [(start, end)], [], (outer_start, outer_end)
    if current:
        yield SpeechSpan(*outer, tuple(current), tuple(cuts))


def _cut(pause_start: int, pause_end: int, keep_ms: int | None) -> tuple[int, int] | None:
    """The middle of a pause between two parts that ASR skips, keeping ``keep_ms`` of it (half
    on each side); None when the pause is no longer than that."""
    if keep_ms is None or pause_end - pause_start <= keep_ms:
        return None
    return pause_start + keep_ms // 2, pause_end - (keep_ms - keep_ms // 2)


def _padded(regions: Iterator[tuple[int, int]], duration_ms: int,
            opt: VadOptions) -> Iterator[tuple[int, int, int, int]]:
    """Each region widened by ``speech_pad_ms``, and by ``span_pad_ms`` (its outer bounds), never
    past halfway to its neighbours: ``(start, end, outer_start, outer_end)``."""
    previous_end: int | None = None
    region = next(regions, None)
    while region is not None:
        following = next(regions, None)
        start, end = region
        floor = max(0, (previous_end + start) // 2 if previous_end is not None else 0)
        ceiling = min(duration_ms, (end + following[0]) // 2 if following is not None else duration_ms)
        outer = max(opt.speech_pad_ms, opt.span_pad_ms)
        yield (max(floor, start - opt.speech_pad_ms), min(ceiling, end + opt.speech_pad_ms),
               max(floor, start - outer), min(ceiling, end + outer))
        previous_end, region = end, following


def _pieces(padded: Iterator[tuple[int, int, int, int]], opt: VadOptions) -> Iterator[tuple[int, int, int, int]]:
    """A region whose outer bounds are longer than a span, cut into equal parts (the cuts inside
    it have no padding: the pieces touch)."""
    for start, end, outer_start, outer_end in padded:
        if outer_end <= outer_start:
            continue
        parts = -(-(outer_end - outer_start) // opt.max_span_ms)
        step = -(-(outer_end - outer_start) // parts)
        for s in range(outer_start, outer_end, step):
            e = min(outer_end, s + step)
            if max(s, start) < min(e, end):
                yield max(s, start), min(e, end), s, e
