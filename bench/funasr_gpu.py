"""The funasr profile on one GPU: 1 and N concurrent hour-long jobs through ``pipeline.transcribe``.

One engine, as one GPU worker process holds it: Paraformer-large (SeACo, the real architecture
with random weights, so the arithmetic is the real model's) on the GPU in float16, VAD and
punctuation in ``--cpu-workers`` helper processes; the jobs run in threads of this process and
share the engine, ASR batches interleaving on the GPU. Prints the aggregate realtime factor, the
time each stage held, and GPU memory; then runs ``--memory-jobs`` jobs in a row and compares the
allocated memory after the first and the last.

    python -m bench.funasr_gpu --jobs 1 100 --minutes 60 --cpu-workers 14
"""
from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.speech import OUT_DIR, build_speech


class StageClock:
    """Wall seconds spent inside each stage's calls, summed over all threads (for ASR: inside
    the model's lock, i.e. the time the GPU model set was busy)."""

    def __init__(self, engine):
        self.seconds = {"vad": 0.0, "asr": 0.0, "punc": 0.0}
        self.audio_s = 0.0
        self._lock = threading.Lock()
        # ASR is timed per GPU batch (inside its lock), so its sum is the GPU's busy time.
        for stage, method in (("vad", "speech_spans"), ("asr", "_recognize_batch"), ("punc", "punctuate")):
            obj = getattr(engine, stage)
            setattr(obj, method, self._wrap(stage, getattr(obj, method)))

    def _wrap(self, stage, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[stage] += time.perf_counter() - start
                    if stage == "asr":
                        self.audio_s += sum(len(a) for a in args[0]) / 16_000

        return timed

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.audio_s = 0.0


def load_engine_for(models: Path, device: str, batch_seconds: float, cpu_workers: int, fp16: bool):
    from pipeline.funasr_testing import build_large_models
    from pipeline.profiles import EngineConfig, load_engine

    if not (models / "ready").exists():
        build_large_models(models, jieba=False)
        (models / "ready").write_text("built by bench.funasr_gpu\n")
    options = {"cpu_workers": str(cpu_workers), "fp16": "1" if fp16 else "0"}
    return load_engine("funasr", EngineConfig(model_dir=models, cache_dir=models / "cache", device=device,
                                              batch_seconds=batch_seconds, options=options))


def run_jobs(engine, media: Path, jobs: int, work_root: Path):
    from pipeline import transcribe
    from pipeline.types import Hotword, TranscribeOptions

    options = TranscribeOptions(hotwords=(Hotword("达摩院", 20.0), Hotword("语音识别", 10.0)))

    def one(n: int):
        return transcribe(media, options, engine, work_dir=work_root / f"job{n}")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        transcripts = list(pool.map(one, range(jobs)))
    return transcripts, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of each job's file")
    parser.add_argument("--cpu-workers", type=int, default=14)
    parser.add_argument("--batch-seconds", type=float, default=300.0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-fp16", action="store_true")
    parser.add_argument("--memory-jobs", type=int, default=50)
    parser.add_argument("--memory-minutes", type=float, default=1.0)
    args = parser.parse_args()

    import torch

    engine = load_engine_for(OUT_DIR / "funasr-large-gpu", args.device, args.batch_seconds, args.cpu_workers,
                             not args.no_fp16)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if not cuda:  # a smoke run on the CPU: the memory figures read 0
        torch.cuda.memory_allocated = torch.cuda.max_memory_allocated = torch.cuda.memory_reserved = lambda d=None: 0
        torch.cuda.reset_peak_memory_stats = torch.cuda.synchronize = lambda d=None: None
        torch.cuda.get_device_name = lambda d=None: "CPU"
    print(f"{torch.cuda.get_device_name(device)}; Paraformer-large (SeACo) fp16={not args.no_fp16}, "
          f"batch {args.batch_seconds:g} s, {args.cpu_workers} CPU helper processes", flush=True)
    weights_mib = torch.cuda.memory_allocated(device) / 2**20
    print(f"model weights on the GPU: {weights_mib:.0f} MiB", flush=True)
    clock = StageClock(engine)
    media = build_speech(args.minutes)
    warm = build_speech(args.memory_minutes)
    run_jobs(engine, warm, 1, OUT_DIR / "gpu-work")  # kernels, helper processes, allocator warm

    for jobs in args.jobs:
        clock.reset()
        torch.cuda.reset_peak_memory_stats(device)
        transcripts, wall = run_jobs(engine, media, jobs, OUT_DIR / "gpu-work")
        audio_s = sum(t.duration_ms for t in transcripts) / 1000
        words = sum(len(s.words) for t in transcripts for s in t.segments)
        print(f"\n{jobs} concurrent job(s) of {args.minutes:g} min: {audio_s / 3600:.1f} h of audio in {wall:.1f} s "
              f"-> {audio_s / wall:.0f}x realtime aggregate (RTF {wall / audio_s:.5f}); {words} words", flush=True)
        print(f"  GPU memory: peak allocated {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB, "
              f"reserved now {torch.cuda.memory_reserved(device) / 2**20:.0f} MiB", flush=True)
        print(f"  stage time summed over jobs: VAD {clock.seconds['vad']:.1f} s, ASR {clock.seconds['asr']:.1f} s "
              f"(the model set busy, one batch at a time: {clock.audio_s / max(clock.seconds['asr'], 1e-9):.0f}x "
              f"realtime while busy, {clock.seconds['asr'] / wall:.0%} of the wall time), punctuation {clock.seconds['punc']:.1f} s", flush=True)

    readings = {}
    for n in range(1, args.memory_jobs + 1):
        run_jobs(engine, warm, 1, OUT_DIR / "gpu-work")
        if n in (1, args.memory_jobs):
            torch.cuda.synchronize(device)
            readings[n] = torch.cuda.memory_allocated(device)
    print(f"\n{args.memory_jobs} jobs in a row: allocated after job 1 {readings[1] / 2**20:.1f} MiB, after job "
          f"{args.memory_jobs} {readings[args.memory_jobs] / 2**20:.1f} MiB "
          f"({'same' if readings[1] == readings[args.memory_jobs] else 'DIFFERENT'})", flush=True)


if __name__ == "__main__":
    main()
