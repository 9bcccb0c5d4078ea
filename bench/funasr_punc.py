"""CT-Transformer punctuation for concurrent jobs: one job after another vs all at once, where the
windows waiting at the same moment share one forward (``pipeline.funasr.punc.WindowBatcher``).

The model is the large-sized CT-Transformer (random weights, real architecture); each job's text is
real transcript text (the reference of tests/data/speech's recordings) of ``--chars`` characters.

    python -m bench.funasr_punc [--jobs 8] [--chars 2000] [--device cpu]
"""
from __future__ import annotations

import argparse
import threading
import time

from tests.support.speech import OUT_DIR

TEXT = "欢迎大家来体验达摩院推出的语音识别模型"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--chars", type=int, default=2000, help="characters of text per job (about 8 min of speech)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from pipeline.funasr.punc import CtPunc
    from tests.support.funasr_models import build_ct_transformer

    model_dir = OUT_DIR / "ct-transformer-large"
    if not (model_dir / "model.pt").exists():
        build_ct_transformer(model_dir, size="large")
    punc = CtPunc(model_dir, device=args.device)
    texts = [list((TEXT * (args.chars // len(TEXT) + 2))[n: n + args.chars]) for n in range(args.jobs)]
    punc.punctuate(texts[0][:200], language="zh")  # warm

    batcher = punc._batcher
    start = time.perf_counter()
    serial = [punc.punctuate(t, language="zh") for t in texts]
    serial_s = time.perf_counter() - start

    before = (batcher.batches, batcher.windows)
    results: dict[int, list[str]] = {}

    def job(n: int) -> None:
        results[n] = punc.punctuate(texts[n], language="zh")

    start = time.perf_counter()
    threads = [threading.Thread(target=job, args=(n,)) for n in range(args.jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together_s = time.perf_counter() - start
    forwards = batcher.batches - before[0]
    windows = batcher.windows - before[1]
    same = all(results[n] == serial[n] for n in range(args.jobs))
    print(f"{args.jobs} jobs x {args.chars} characters, CT-Transformer large-sized on {args.device}")
    print(f"  one after another: {serial_s:.2f} s")
    print(f"  concurrently:      {together_s:.2f} s in {forwards} forwards of {windows / max(forwards, 1):.1f} "
          f"windows on average -> {serial_s / together_s:.2f}x; marks identical: {same}")


if __name__ == "__main__":
    main()
