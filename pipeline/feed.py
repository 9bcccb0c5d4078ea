"""VAD's spans as the ASR side takes them: a streaming VAD runs in a kept thread beside ASR (where
the engine says a core is free for it), any other VAD runs to the end first."""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable, Sequence

from pipeline.audio import PcmFile
from pipeline.stages import SpeechSpan, StreamingVad


class SpanFeed:
    """VAD's spans as they come. A :class:`~pipeline.stages.StreamingVad` runs in a thread of
    its own, so ASR starts on the first spans while VAD reads the rest of the file; any other VAD,
    or any VAD with ``beside=False`` (the engine's ASR keeps every core busy, so a VAD thread beside
    it would only take their time slices), runs to the end first (``whole``). Progress and errors
    reach the job's thread through :meth:`next`; leaving the ``with`` block stops the VAD and waits
    for it (the PCM file is removed next)."""

    def __init__(self, vad, pcm: PcmFile, on_progress: Callable[[float], None], *, beside: bool = True):
        self.spans: list[SpeechSpan] = []  # every span taken so far, in time order
        self.finished = False
        self.progress = 0.0  # VAD's position in the file, 0..1
        self._on_progress = on_progress
        self._queue: queue.Queue = queue.Queue()  # unbounded: the producer never blocks on it
        self._stop = threading.Event()
        self._producer: Future | None = None
        # every span known before the first is taken
        self.whole = not (beside and isinstance(vad, StreamingVad))
        if not self.whole:
            self._producer = _vad_threads().submit(self._produce, vad, pcm)
        else:
            for span in vad.speech_spans(pcm, on_progress=self._progressed):
                self._queue.put(("span", span))
            self._queue.put(("end", None))

    def _produce(self, vad: StreamingVad, pcm: PcmFile) -> None:
        try:
            for span in vad.iter_speech_spans(pcm, lambda f: self._queue.put(("progress", f)), self._stop):
                self._queue.put(("span", span))
            self._queue.put(("end", None))
        except BaseException as exc:  # handed to the job's thread, raised there
            self._queue.put(("error", exc))

    def _progressed(self, fraction: float) -> None:
        self.progress = fraction
        self._on_progress(fraction)

    def next(self) -> SpeechSpan | None:
        """The next span, waiting for VAD to find it; None once VAD has finished."""
        while not self.finished:
            kind, value = self._queue.get()
            if kind == "span":
                self.spans.append(value)
                return value
            if kind == "progress":
                self._progressed(value)
            elif kind == "end":
                self.finished = True
                if self.progress < 1.0:
                    self._progressed(1.0)
            else:
                raise value
        return None

    def __enter__(self) -> "SpanFeed":
        return self

    def __exit__(self, *exc) -> None:
        if self._producer is not None:
            self._stop.set()
            wait([self._producer])


_VAD_THREADS: ThreadPoolExecutor | None = None
_VAD_THREADS_LOCK = threading.Lock()


def _vad_threads() -> ThreadPoolExecutor:
    """The threads streaming VADs run in, one per job at a time, kept for the next jobs: a fresh
    thread per job left about half a MiB behind each time (tests/pipeline/funasr/test_memory.py),
    a kept one leaves nothing."""
    global _VAD_THREADS
    with _VAD_THREADS_LOCK:
        if _VAD_THREADS is None:
            _VAD_THREADS = ThreadPoolExecutor(max_workers=256, thread_name_prefix="tingxie-vad")
        return _VAD_THREADS


class ListedVad:
    """Spans already known, as a VAD that returns them (the retry pass feeds its spans this way)."""

    def __init__(self, spans: Sequence[SpeechSpan]):
        self._spans = list(spans)

    def speech_spans(self, pcm: PcmFile, on_progress: Callable[[float], None] | None = None) -> list[SpeechSpan]:
        return self._spans
