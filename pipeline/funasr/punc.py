"""CT-Transformer punctuation over the whole transcript, on onnxruntime or PyTorch.

The text is cut into the model's units (jieba words with the model's user dictionary for the
large cn-en model, characters otherwise) and scored in 20-unit windows; as in FunASR, the words
after the last full stop of a window are carried into the next one, so a sentence is always
judged whole, and a window running past 200 units without one is closed at its last comma
(or, with none, at its end).
The marks are then mapped back onto the pipeline's tokens by character position.

Each job's windows are sequential (a window starts where the last one's sentence ended), so one job
is one small forward after another. Jobs running side by side in a worker share the network
through :class:`WindowBatcher`: the windows waiting at a given moment go through as one padded batch.
"""
from __future__ import annotations

import bisect
import json
import threading
from pathlib import Path
from typing import Callable, Sequence

from pipeline.funasr.vad import _onnx_file, onnx_providers
from pipeline.text import is_cjk

WINDOW_UNITS = 20
CARRY_LIMIT_UNITS = 200
_ASCII_MARKS = {"，": ",", "。": ".", "？": "?", "、": ","}
_SENTENCE_END_MARKS = ("。", "？")


class CtPunc:
    """:class:`~pipeline.stages.PuncModel` for a CT-Transformer directory (``model.onnx`` or ``model.pt``)."""

    def __init__(self, model_dir: Path, *, device: str = "cpu"):
        # omegaconf (funasr's) only in the worker that runs this model (web and an offline worker never load it)
        from omegaconf import OmegaConf

        self.model_dir = Path(model_dir)
        config = OmegaConf.to_container(OmegaConf.load(self.model_dir / "config.yaml"), resolve=True)
        model_conf = config.get("model_conf", {})
        self._punc_list: list[str] = list(model_conf["punc_list"])
        self._sentence_end_id = int(model_conf.get("sentence_end_id", 3))
        tokens = json.loads((self.model_dir / "tokens.json").read_text(encoding="utf-8"))
        self._token_ids = {t: i for i, t in enumerate(tokens)}
        self._unk_id = self._token_ids.get("<unk>", len(tokens) - 1)
        self._jieba = None
        if (self.model_dir / "jieba_usr_dict").exists():
            # jieba (funasr's) only in the worker that runs this model, and only for a model with a user dictionary
            import jieba

            self._jieba = jieba.Tokenizer()  # our own instance: funasr's global one is left alone
            with open(self.model_dir / "jieba_usr_dict", "rb") as words:  # given a path, jieba leaves it open
                self._jieba.load_userdict(words)
        onnx_file = _onnx_file(self.model_dir)
        if (self.model_dir / "model.pt").exists() or onnx_file is None:
            forward_batch = _torch_forward(self.model_dir, device)
            self.backend = "pytorch"
        else:
            forward_batch = _onnx_forward(onnx_file, device)
            self.backend = "onnx"
        self._batcher = WindowBatcher(forward_batch)

    def punctuate(self, tokens: Sequence[str], *, language: str) -> list[str]:
        # funasr only in the worker that runs this model (web and an offline worker never load it)
        from funasr.models.ct_transformer.utils import split_words

        marks = [""] * len(tokens)
        if not tokens:
            return marks
        units = [u for u in split_words(" ".join(tokens), jieba_usr_dict=self._jieba) if u.strip()]
        ids = self._punc_ids(units)
        # Chinese words are marked on their last character, as FunASR's punc_array does.
        token_ends = _ends(tokens)
        position = 0
        for unit, punc_id in zip(units, ids):
            position += len(unit)
            mark = self._mark(punc_id, unit)
            if mark:
                index = min(len(tokens) - 1, bisect.bisect_left(token_ends, position))
                marks[index] = mark
        return marks

    def _mark(self, punc_id: int, unit: str) -> str:
        mark = self._punc_list[punc_id] if 0 <= punc_id < len(self._punc_list) else ""
        if mark in ("_", "<unk>"):
            return ""
        if unit and not is_cjk(unit[-1]):
            mark = _ASCII_MARKS.get(mark, mark)
        return mark

    def _punc_ids(self, units: list[str]) -> list[int]:
        """One punctuation id per unit; the last one always ends a sentence."""
        ids = [self._token_ids.get(u, self._unk_id) for u in units]
        out: list[int] = []
        carry: list[int] = []
        windows = [ids[i:i + WINDOW_UNITS] for i in range(0, len(ids), WINDOW_UNITS)]
        for n, window in enumerate(windows):
            chunk = carry + window
            predicted = self._batcher.forward(chunk)
            if n < len(windows) - 1:
                cut = -1
                last_comma = -1
                for i in range(len(predicted) - 2, 1, -1):
                    mark = self._punc_list[predicted[i]]
                    if mark in _SENTENCE_END_MARKS:
                        cut = i
                        break
                    if last_comma < 0 and mark == "，":
                        last_comma = i
                if cut < 0 and len(chunk) > CARRY_LIMIT_UNITS:
                    # FunASR closes an over-long sentence at its last comma; with no comma at all
                    # it would carry the words on for ever (quadratic in the text's length), so
                    # here the window's end closes it instead.
                    cut = last_comma if last_comma >= 0 else len(predicted) - 1
                    predicted[cut] = self._sentence_end_id
                carry = chunk[cut + 1:]
                predicted = predicted[:cut + 1]
            out.extend(predicted)
        if out and self._punc_list[out[-1]] not in _SENTENCE_END_MARKS:
            out[-1] = self._sentence_end_id
        return out


def _ends(tokens: Sequence[str]) -> list[int]:
    """Character offset just past each token in the tokens' concatenation without spaces."""
    ends: list[int] = []
    at = 0
    for t in tokens:
        at += len(t.replace(" ", ""))
        ends.append(at)
    return ends


class WindowBatcher:
    """Runs windows from concurrent callers through ``forward_batch`` together.

    Whoever finds the network idle takes every window waiting at that moment (up to
    ``max_windows``) and runs them as one batch while the others wait for their rows; a caller on
    its own runs at once, so a single job pays nothing for this.
    """

    def __init__(self, forward_batch: Callable[[list[list[int]]], list[list[int]]], *, max_windows: int = 64):
        self._forward_batch = forward_batch
        self._max_windows = max_windows
        self._pending: list[_Window] = []
        self._busy = False
        self._changed = threading.Condition()
        self.batches = 0  # forwards run, for tests and benchmarks
        self.windows = 0

    def forward(self, ids: list[int]) -> list[int]:
        window = _Window(ids)
        with self._changed:
            self._pending.append(window)
            while not window.done and self._busy:
                self._changed.wait()
            if window.done:
                return window.result()
            self._busy = True
            self._pending.remove(window)
            batch = [window] + self._pending[: self._max_windows - 1]
            del self._pending[: self._max_windows - 1]
        try:
            rows = self._forward_batch([w.ids for w in batch])
            for w, row in zip(batch, rows):
                w.output = row
        except Exception as exc:  # every caller in the batch gets the failure, not only this one
            for w in batch:
                w.error = exc
        finally:
            with self._changed:
                for w in batch:
                    w.done = True
                self.batches += 1
                self.windows += len(batch)
                self._busy = False
                self._changed.notify_all()
        return window.result()


class _Window:
    __slots__ = ("ids", "output", "error", "done")

    def __init__(self, ids: list[int]):
        self.ids = ids
        self.output: list[int] | None = None
        self.error: Exception | None = None
        self.done = False

    def result(self) -> list[int]:
        if self.error is not None:
            raise self.error
        return self.output


def _padded(batch: list[list[int]]):
    """``batch`` as an int32 matrix padded with 0, and its row lengths."""
    # numpy only once audio is processed: importing the pipeline loads none (it comes with a profile's extra)
    import numpy as np

    lengths = np.array([len(ids) for ids in batch], dtype=np.int32)
    matrix = np.zeros((len(batch), int(lengths.max())), dtype=np.int32)
    for row, ids in enumerate(batch):
        matrix[row, : len(ids)] = ids
    return matrix, lengths


def _torch_forward(model_dir: Path, device: str) -> Callable[[list[list[int]]], list[list[int]]]:
    # torch and funasr only in the worker that runs this model (web and an offline worker never load them)
    import torch
    from funasr import AutoModel

    model, kwargs = AutoModel.build_model(
        model=str(model_dir), device=device, disable_update=True, ncpu=max(1, torch.get_num_threads()),
        log_level="ERROR",
    )
    target = kwargs["device"]

    def forward(batch: list[list[int]]) -> list[list[int]]:
        matrix, lengths = _padded(batch)
        with torch.inference_mode():
            text = torch.from_numpy(matrix).to(target)
            logits, _ = model.punc_forward(text=text, text_lengths=torch.from_numpy(lengths).to(target))
            best = logits.argmax(dim=-1).cpu().tolist()
        return [row[:n] for row, n in zip(best, lengths.tolist())]

    return forward


def _onnx_forward(onnx_file: Path, device: str) -> Callable[[list[list[int]]], list[list[int]]]:
    # numpy and onnxruntime only in the worker that runs this model (importing the pipeline loads neither)
    import numpy as np
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=onnx_providers(device))

    def forward(batch: list[list[int]]) -> list[list[int]]:
        matrix, lengths = _padded(batch)
        logits = session.run(["logits"], {"inputs": matrix, "text_lengths": lengths})[0]
        best = logits.argmax(axis=-1).tolist()
        return [row[:n] for row, n in zip(best, lengths.tolist())]

    return forward
