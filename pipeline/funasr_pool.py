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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from pipeline.stages import SpeechSpan

if TYPE_CHECKING:
    from pipeline.audio import PcmFile

_vad = None
_punc = None
_itn = None


def _load(vad_dir: str, punc_dir: str, max_span_ms: int) -> None:
    global _vad, _punc, _itn
    import torch

    torch.set_num_threads(1)  # one core per helper; the pool is the parallelism
    from pipeline.funasr_punc import CtPunc
    from pipeline.funasr_vad import FsmnVad
    from pipeline.itn import WetextItn

    _vad = FsmnVad(Path(vad_dir), device="cpu", max_span_ms=max_span_ms)
    _punc = CtPunc(Path(punc_dir), device="cpu")
    _itn = WetextItn()


def _speech_spans(pcm_path: str) -> list[tuple[int, int]]:
    from pipeline.audio import PcmFile

    return [(s.start_ms, s.end_ms) for s in _vad.speech_spans(PcmFile(pcm_path))]


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
    backend = "pool"

    def __init__(self, pool: ProcessPoolExecutor):
        self._pool = pool

    def speech_spans(self, pcm: "PcmFile", on_progress: Callable[[float], None] | None = None) -> list[SpeechSpan]:
        spans = self._pool.submit(_speech_spans, str(pcm.path)).result()
        if on_progress is not None:
            on_progress(1.0)
        return [SpeechSpan(start, end) for start, end in spans]


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
