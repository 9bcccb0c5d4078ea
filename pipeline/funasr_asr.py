"""Paraformer-family ASR (SeACo, BiCif/timestamp, contextual, or a fine-tuned directory of the same
shape) through funasr's model classes, one batch of VAD segments per call.

The model's own ``inference`` does feature extraction, CIF, decoding and the token timestamps;
tingxie hands it the batch the pipeline built and turns its output into typed words. Hotwords
go to the models that have a hotword encoder (SeACo, contextual) as a one-phrase-a-line file,
the form funasr reads multi-word phrases from; FunASR's Python models take no per-word weight,
so weights are accepted and not used (FunASR's C++ runtime uses them only in its WFST decoder).
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from pipeline.stages import AsrResult, AsrWord
from pipeline.text import is_cjk, join_words
from pipeline.types import Hotword

if TYPE_CHECKING:
    import numpy as np

_LATIN = re.compile(r"[A-Za-z]")


class ParaformerAsr:
    """:class:`~pipeline.stages.AsrModel` for a Paraformer-family model directory.

    device: ``cpu``, ``cuda`` or ``cuda:N``.
    fp16: run the network under float16 autocast on CUDA (ignored on CPU); default True.
    max_batch_s: a batch is split so that its padded length times its size stays under this many
        seconds of audio, bounding GPU memory whatever the pipeline's batch; default 600 s.
    """

    def __init__(self, model_dir: Path, *, device: str = "cpu", fp16: bool = True, max_batch_s: float = 600.0):
        import torch
        from funasr import AutoModel

        self.model_dir = Path(model_dir)
        self._lock = threading.Lock()  # SeACo keeps the current hotword list on the model
        model, kwargs = AutoModel.build_model(
            model=str(self.model_dir),
            device=device,
            disable_update=True,
            ncpu=max(1, torch.get_num_threads()),
            log_level="ERROR",
        )
        self._model = model
        self._tokenizer = kwargs["tokenizer"]
        self._frontend = _Float32Frontend(kwargs["frontend"])
        self._device = kwargs["device"]  # funasr falls back to cpu when CUDA is absent
        self._fp16 = fp16 and str(self._device).startswith("cuda")
        self._max_batch_samples = int(max_batch_s * 16_000)
        self.model_class = type(model).__name__
        self.supports_hotwords = hasattr(model, "generate_hotwords_list")

    @property
    def device(self) -> str:
        return str(self._device)

    def recognize(
        self,
        segments: Sequence["np.ndarray"],
        *,
        language: str,
        hotwords: Sequence[Hotword] = (),
    ) -> list[AsrResult]:
        results: list[AsrResult] = []
        with self._lock, _HotwordFile(hotwords if self.supports_hotwords else ()) as hotword_path:
            for batch in _split(segments, self._max_batch_samples):
                results.extend(self._recognize_batch(batch, hotword_path))
        self._release()
        return results

    def _recognize_batch(self, segments: Sequence["np.ndarray"], hotword_path: str | None) -> list[AsrResult]:
        import torch

        data = [torch.from_numpy(s) for s in segments]
        if str(self._device).startswith("cuda") and _gpu_fbank():
            data = [d.to(self._device, non_blocking=True) for d in data]
        autocast = torch.autocast("cuda", dtype=torch.float16) if self._fp16 else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            output = self._model.inference(
                data_in=data,
                key=[str(i) for i in range(len(data))],
                tokenizer=self._tokenizer,
                frontend=self._frontend,
                device=self._device,
                hotword=hotword_path,
                output_timestamp=True,
            )
        del data
        items = output[0] if output else []
        if len(items) != len(segments):
            # funasr returns nothing at all for a batch in which the CIF fired no token anywhere.
            items = [{} for _ in segments]
        return [_result(item, len(seg) * 1000 // 16_000) for item, seg in zip(items, segments)]

    def _release(self) -> None:
        """Give cached GPU blocks back after each call, so a worker's footprint does not creep."""
        if str(self._device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _split(segments: Sequence["np.ndarray"], max_samples: int) -> list[Sequence["np.ndarray"]]:
    """Consecutive sub-batches whose padded size (longest x count) stays under ``max_samples``."""
    batches: list[Sequence["np.ndarray"]] = []
    start = 0
    longest = 0
    for i, seg in enumerate(segments):
        longest_with = max(longest, len(seg))
        if i > start and longest_with * (i + 1 - start) > max_samples:
            batches.append(segments[start:i])
            start, longest_with = i, len(seg)
        longest = longest_with
    if start < len(segments):
        batches.append(segments[start:])
    return batches


def _result(item: dict, duration_ms: int) -> AsrResult:
    """funasr's ``{"text", "timestamp"}`` -> words with times from the segment's start."""
    text = str(item.get("text", "")).strip()
    stamps = item.get("timestamp") or []
    units = text.split() if stamps else _units(text)
    words: list[AsrWord] = []
    if stamps and len(stamps) == len(units):
        for unit, (start_ms, end_ms) in zip(units, stamps):
            start_ms = max(0, min(int(start_ms), duration_ms))
            end_ms = max(start_ms, min(int(end_ms), duration_ms))
            words.append(AsrWord(start_ms, end_ms, unit))
    elif units:
        # No (or mismatched) token times: spread the units evenly over the segment.
        step = duration_ms / len(units)
        words = [AsrWord(int(i * step), int((i + 1) * step), u) for i, u in enumerate(units)]
    language = "zh" if any(is_cjk(ch) for ch in text) or not _LATIN.search(text) else "en"
    return AsrResult(
        text=join_words(w.text for w in words),
        language=language,
        words=tuple(words),
        punctuated=False,
    )


def _units(text: str) -> list[str]:
    """Characters for CJK, whitespace-separated words otherwise (Paraformer's token units)."""
    units: list[str] = []
    for chunk in text.split():
        latin = ""
        for ch in chunk:
            if is_cjk(ch):
                if latin:
                    units.append(latin)
                    latin = ""
                units.append(ch)
            else:
                latin += ch
        if latin:
            units.append(latin)
    return units


class _HotwordFile:
    """Hotwords as the file funasr reads (one phrase a line, ``.txt``), removed afterwards."""

    def __init__(self, hotwords: Sequence[Hotword]):
        self._phrases = [h.text.strip() for h in hotwords if h.text.strip()]
        self._path: str | None = None

    def __enter__(self) -> str | None:
        if not self._phrases:
            return None
        fd, self._path = tempfile.mkstemp(prefix="tingxie-hotwords-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(self._phrases) + "\n")
        return self._path

    def __exit__(self, *exc) -> None:
        if self._path is not None:
            os.unlink(self._path)


class _Float32Frontend:
    """funasr's frontend, run with autocast off: the fbank of 16-bit-scaled samples overflows
    float16 (every feature inf, no token decoded), so only the network runs in half precision."""

    def __init__(self, frontend):
        self._frontend = frontend

    def __getattr__(self, name):
        return getattr(self._frontend, name)

    def __call__(self, *args, **kwargs):
        import torch

        with torch.autocast("cuda", enabled=False):
            return self._frontend(*args, **kwargs)


def _gpu_fbank() -> bool:
    """funasr computes fbank with torchaudio when present, which runs on CUDA tensors as well;
    its kaldi-native-fbank fallback is CPU-only."""
    try:
        import torchaudio.compliance.kaldi  # noqa: F401
    except ImportError:
        return False
    return True
