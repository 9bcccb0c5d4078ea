"""CT-Transformer punctuation: windows of concurrent jobs batched through one network call give
exactly what each job gets on its own, on both backends."""
from __future__ import annotations

import threading
import time

import pytest

from tests.support.requires import require_funasr, require_installed

require_funasr()
require_installed("onnxscript", reason="exporting the tiny ONNX models needs onnxscript")

from pipeline.funasr.punc import CtPunc, WindowBatcher  # noqa: E402
from tests.support.funasr_models import PUNC_ID, PUNC_ONNX_ID  # noqa: E402

pytestmark = pytest.mark.funasr

# Text in the model's own vocabulary, of different lengths, so jobs need 1 to ~8 windows.
SENTENCE = "欢迎大家来体验达摩院推出的语音识别模型"


def _texts() -> list[list[str]]:
    texts = []
    for n in (1, 3, 5, 8, 13, 21):
        chars = list((SENTENCE * n)[: 9 * n + 4])
        texts.append(chars)
    return texts


@pytest.fixture(scope="module", params=[PUNC_ID, PUNC_ONNX_ID], ids=["pytorch", "onnx"])
def punc(request, funasr_model_dir) -> CtPunc:
    return CtPunc(funasr_model_dir / request.param)


def test_a_padded_batch_gives_each_window_its_own_answer(punc):
    token_ids = punc._token_ids
    windows = [[token_ids.get(ch, punc._unk_id) for ch in text[:length]]
               for text, length in zip(_texts(), (3, 7, 20, 33, 57, 150))]
    forward = punc._batcher._forward_batch
    alone = [forward([w])[0] for w in windows]
    together = forward(windows)
    assert together == alone
    assert [len(row) for row in together] == [len(w) for w in windows]


def test_concurrent_jobs_share_forwards_and_get_their_serial_marks(punc, monkeypatch):
    """The first forward is held until every other job has a window waiting, so the next forward
    must carry windows of all of them: counted, not timed (it passes however busy the machine is)."""
    texts = _texts()
    serial = [punc.punctuate(t, language="zh") for t in texts]
    assert all(marks[-1] in ("。", "？") for marks in serial)

    batcher = punc._batcher
    forward = batcher._forward_batch
    sizes: list[int] = []

    def counted(batch):
        if not sizes:  # the first forward waits for the other jobs' first windows
            deadline = time.monotonic() + 120  # a hang guard only
            while len(batcher._pending) < len(texts) - 1:
                assert time.monotonic() < deadline, "the other jobs never queued a window"
                time.sleep(0.01)
        sizes.append(len(batch))
        return forward(batch)

    monkeypatch.setattr(batcher, "_forward_batch", counted)
    results: dict[int, list[str]] = {}

    def job(n: int) -> None:
        results[n] = punc.punctuate(texts[n], language="zh")

    threads = [threading.Thread(target=job, args=(n,)) for n in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[n] for n in range(len(texts))] == serial
    assert sizes[0] == 1
    # One window of each of the other jobs (and perhaps the first job's next) in one forward.
    assert sizes[1] >= len(texts) - 1
    assert sum(sizes) > len(texts) and len(sizes) < sum(sizes)


def test_a_failing_forward_reaches_every_caller_in_its_batch():
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def forward(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            started.set()
            release.wait(120)  # set once the three are queued; a hang guard
            return [[0] * len(ids) for ids in batch]
        raise RuntimeError("CUDA out of memory")

    batcher = WindowBatcher(forward)
    outcomes: list[object] = []

    def call(ids):
        try:
            outcomes.append(batcher.forward(ids))
        except RuntimeError as exc:
            outcomes.append(exc)

    first = threading.Thread(target=call, args=([1, 2],))
    first.start()
    assert started.wait(120)
    waiting = [threading.Thread(target=call, args=([3],)) for _ in range(3)]
    for t in waiting:
        t.start()
    deadline = time.monotonic() + 120  # a hang guard only
    while len(batcher._pending) < 3:
        assert time.monotonic() < deadline, "the three callers never queued"
        time.sleep(0.01)
    release.set()
    for t in [first, *waiting]:
        t.join(120)
    assert calls == [1, 3]  # the three that waited went through as one batch
    assert outcomes[0] == [0, 0]
    assert [str(o) for o in outcomes[1:]] == ["CUDA out of memory"] * 3
    assert batcher._busy is False and not batcher._pending
