"""CPU helper processes for the funasr profile's VAD and punctuation.

FSMN-VAD's features and network run on the CPU at about 330x realtime a core (its compiled
detection is a small part), and CT-Transformer's windowing is a Python loop over words: in the GPU
worker's process they would take turns with its jobs' threads, as would wetext's ITN of a job's
sentences. With ``cpu_workers`` set, each of those calls runs in one of a few spawned
processes that load the VAD, punctuation and ITN models once (on the CPU); the worker process keeps
the one GPU model set, and concurrent jobs' VAD and punctuation run side by side.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence

from pipeline.audio import PcmFile
from pipeline.funasr.punc import CtPunc
from pipeline.funasr.vad import FsmnVad
from pipeline.itn import WetextItn
from pipeline.stages import SpeechSpan

_vad = None
_punc = None
_itn = None


def _load(vad_dir: str, punc_dir: str, max_span_ms: int) -> None:
    global _vad, _punc, _itn
    # torch only in the worker that runs this model (web and an offline worker never load it)
    import torch

    torch.set_num_threads(1)  # one core per helper; the pool is the parallelism

    _vad = FsmnVad(Path(vad_dir), device="cpu", max_span_ms=max_span_ms)
    _punc = CtPunc(Path(punc_dir), device="cpu")
    _itn = WetextItn()


# How often the worker process looks for the spans a helper has written so far.
_POLL_S = 0.02


def _stream_spans(pcm_path: str, feed_path: str) -> None:
    """FSMN-VAD over ``pcm_path``, each span (``s start end``) and each progress step (``p
    fraction``) appended to ``feed_path`` as a line as soon as it is known. The caller removes
    ``feed_path`` to stop early: the helper then ends at its next minute of audio."""
    try:
        feed = open(feed_path, "r+", encoding="ascii")
    except FileNotFoundError:
        return  # the job stopped before a helper got to it
    with feed:
        def progress(fraction: float) -> None:
            feed.write(f"p {fraction}\n")
            feed.flush()
            if not os.path.exists(feed_path):
                raise _Stopped

        try:
            for span in _vad.iter_speech_spans(PcmFile(pcm_path), on_progress=progress):
                feed.write(f"s {span.start_ms} {span.end_ms}\n")
        except _Stopped:
            pass


class _Stopped(Exception):
    pass


def _punctuate(tokens: list[str], language: str) -> list[str]:
    return _punc.punctuate(tokens, language=language)


def _normalize_many(sentences: list[tuple[str, str]]) -> list[str]:
    return _itn.normalize_many(sentences)


class CpuHelpers:
    """A spawned process pool holding VAD, punctuation and ITN; :attr:`vad`, :attr:`punc` and
    :attr:`itn` are the stage objects that send work to it."""

    def __init__(self, vad_dir: Path, punc_dir: Path, *, processes: int, max_span_ms: int = 60_000):
        self._pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),  # never fork a process that holds CUDA
            initializer=_load,
            initargs=(str(vad_dir), str(punc_dir), max_span_ms),
        )
        self.vad = _PooledVad(self._pool)
        self.punc = _PooledPunc(self._pool)
        self.itn = _PooledItn(self._pool)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _PooledVad:
    """FSMN-VAD in a helper process; :meth:`iter_speech_spans` follows the spans the helper
    appends to a small file beside the PCM file, so ASR can start before the helper is done."""

    backend = "pool"

    def __init__(self, pool: ProcessPoolExecutor):
        self._pool = pool

    def speech_spans(self, pcm: "PcmFile", on_progress: Callable[[float], None] | None = None) -> list[SpeechSpan]:
        return list(self.iter_speech_spans(pcm, on_progress))

    def iter_speech_spans(
        self,
        pcm: "PcmFile",
        on_progress: Callable[[float], None] | None = None,
        stop: "threading.Event | None" = None,
    ) -> Iterator[SpeechSpan]:
        feed_path = Path(f"{pcm.path}.spans")
        feed_path.write_bytes(b"")
        stop = stop or threading.Event()
        try:
            future = self._pool.submit(_stream_spans, str(pcm.path), str(feed_path))
            with open(feed_path, "rb") as feed:
                partial = b""
                while True:
                    finished = future.done()  # before reading: what it wrote by then is all there
                    partial += feed.read()
                    *lines, partial = partial.split(b"\n")
                    for line in lines:
                        kind, *values = line.split()
                        if kind == b"s":
                            yield SpeechSpan(int(values[0]), int(values[1]))
                        elif on_progress is not None:
                            on_progress(float(values[0]))
                    if finished:
                        future.result()  # the helper's error, if it failed
                        return
                    if stop.wait(_POLL_S):
                        future.cancel()  # still queued behind other jobs: it never starts
                        return
        finally:
            feed_path.unlink(missing_ok=True)  # also tells a helper still running to stop


class _PooledPunc:
    backend = "pool"

    def __init__(self, pool: ProcessPoolExecutor):
        self._pool = pool

    def punctuate(self, tokens: Sequence[str], *, language: str) -> list[str]:
        return self._pool.submit(_punctuate, list(tokens), language).result()


class _PooledItn:
    backend = "pool"

    def __init__(self, pool: ProcessPoolExecutor):
        self._pool = pool

    def normalize(self, text: str, *, language: str) -> str:
        return self.normalize_many([(text, language)])[0]

    def normalize_many(self, sentences: Sequence[tuple[str, str]]) -> list[str]:
        return self._pool.submit(_normalize_many, list(sentences)).result()
