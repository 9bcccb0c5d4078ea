"""The funasr profile on one GPU: 1 and N concurrent hour-long jobs through ``pipeline.transcribe``.

One engine, as one GPU worker process holds it: Paraformer-large (SeACo, the real architecture
with random weights, so the arithmetic is the real model's) on the GPU in float16, VAD and
punctuation in ``--cpu-workers`` helper processes; the jobs run in threads of this process and
share the engine, ASR batches interleaving on the GPU (a worker with TINGXIE_WORKER_THREADS).
Prints the aggregate realtime factor, the time each stage held, and GPU memory; then runs
``--memory-jobs`` jobs in a row and compares the allocated memory after the first and the last.

``--processes P`` runs the jobs in P processes sharing the GPU, each holding its own model set and
a share of the jobs and of the CPU helpers (P workers on one GPU): one process's jobs take turns at
its GIL for their CPU-side work (``python -m bench.funasr_cpu`` measures how much), P spread it.

``--sequential`` makes each job's VAD run to the end before its ASR starts, as the pipeline did
before the two overlapped: run with and without it for the gain.

``--size tiny --device cpu`` runs the same jobs with the tiny test models on the CPU: the networks
cost next to nothing, so the wall time is the pipeline's CPU side and how its stages overlap, what
a fast GPU leaves.

    python -m bench.funasr_gpu --jobs 1 100 --minutes 60 --cpu-workers 14
    python -m bench.funasr_gpu --jobs 100 --minutes 60 --cpu-workers 12 --processes 4 --no-check
    python -m bench.funasr_gpu --size tiny --device cpu --no-fp16 --no-check --memory-jobs 0 --jobs 1 --minutes 60 --cpu-workers 1
"""
from __future__ import annotations

import argparse
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.funasr_stages import waiting_for_vad
from tests.support.speech import OUT_DIR, build_speech


class StageClock:
    """Wall seconds spent inside each stage's calls, summed over all threads (for ASR: inside
    the model's lock, i.e. the time the GPU model set was busy; VAD overlaps ASR)."""

    def __init__(self, engine):
        self.seconds = {"vad": 0.0, "asr": 0.0, "punc": 0.0}
        self.audio_s = 0.0
        self._lock = threading.Lock()
        # ASR is timed per GPU batch (inside its lock), so its sum is the GPU's busy time; VAD
        # from a job's first span asked for to its last (ASR runs beside it meanwhile).
        for stage, method in (("asr", "_recognize_batch"), ("punc", "punctuate")):
            obj = getattr(engine, stage)
            setattr(obj, method, self._wrap(stage, getattr(obj, method)))
        if hasattr(engine.vad, "iter_speech_spans"):
            engine.vad.iter_speech_spans = self._wrap_iter("vad", engine.vad.iter_speech_spans)
        else:
            engine.vad.speech_spans = self._wrap("vad", engine.vad.speech_spans)

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

    def _wrap_iter(self, stage, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                yield from fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[stage] += time.perf_counter() - start

        return timed

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.audio_s = 0.0


def load_engine_for(size: str, device: str, batch_seconds: float, cpu_workers: int, fp16: bool,
                    sequential: bool = False):
    from pipeline.funasr.profile import FunasrOptions
    from pipeline.profiles import EngineConfig, load_engine
    from tests.support.funasr_models import build_large_models, build_tiny_models

    models = OUT_DIR / f"funasr-{size}-gpu"
    if not (models / "ready").exists():
        if size == "tiny":
            build_tiny_models(models)
        else:
            build_large_models(models, jieba=False)
        (models / "ready").write_text("built by bench.funasr_gpu\n")
    options = FunasrOptions(cpu_workers=cpu_workers, fp16=fp16)
    engine = load_engine("funasr", EngineConfig(model_dir=models, cache_dir=models / "cache", device=device,
                                                batch_seconds=batch_seconds, options=options))
    return waiting_for_vad(engine) if sequential else engine


def run_jobs(engine, media: Path, jobs: int, work_root: Path):
    from pipeline import transcribe
    from contract import Hotword
    from pipeline.types import TranscribeOptions

    options = TranscribeOptions(hotwords=(Hotword("达摩院", 20.0), Hotword("语音识别", 10.0)))

    def one(n: int):
        return transcribe(media, options, engine, work_dir=work_root / f"job{n}")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        transcripts = list(pool.map(one, range(jobs)))
    return transcripts, time.perf_counter() - start


def check_asr(engine, device) -> None:
    """Words from one batch with the features computed on the CPU and on the GPU, in float32 and
    float16: the GPU paths must agree with the CPU one."""
    import numpy as np
    import torch

    import pipeline.funasr.asr as funasr_asr
    from pipeline.audio import decode

    media = build_speech(0.5)
    _, pcm = decode(media, OUT_DIR / "check.s16le")
    batch = [pcm.read(0, 5_000), pcm.read(6_000, 17_000), pcm.read(18_000, 30_000)]
    asr = engine.asr
    original_gpu_fbank, original_fp16 = funasr_asr._gpu_fbank, asr._fp16
    results = {}
    try:
        for gpu_fbank in (False, True):
            for fp16 in (False, True):
                funasr_asr._gpu_fbank = (lambda: True) if gpu_fbank else (lambda: False)
                asr._fp16 = fp16 and device.type == "cuda"
                results[(gpu_fbank, fp16)] = [[w.text for w in r.words] for r in asr.recognize(batch, language="auto")]
    finally:
        funasr_asr._gpu_fbank, asr._fp16 = original_gpu_fbank, original_fp16
    reference = results[(False, False)]
    for key, words in results.items():
        same = sum(a == b for r, s in zip(reference, words) for a, b in zip(r, s))
        total = max(1, sum(len(r) for r in reference))
        print(f"check: fbank on {'GPU' if key[0] else 'CPU'}, {'fp16' if key[1] else 'fp32'}: "
              f"{[len(w) for w in words]} words, {same / total:.0%} equal to CPU-fbank fp32", flush=True)


def _time_parts(asr, pcm, device, batch_seconds: float = 300.0) -> None:
    """Where one ASR batch's time goes: features, the encoder alone, and funasr's whole
    ``inference`` (encoder, CIF, decoders, timestamps, per-utterance post-processing)."""
    import torch

    from funasr.utils.load_utils import extract_fbank

    # About 300 s as the pipeline batches it: 5 to 11 s spans.
    spans, start = [], 0
    while sum(e - s for s, e in spans) < batch_seconds * 1000 and start < pcm.duration_ms:
        length = 5_000 + (start // 1000 % 7) * 1_000
        spans.append((start, min(pcm.duration_ms, start + length)))
        start += length + 700
    batch = [torch.from_numpy(pcm.read(s, e)) for s, e in spans]
    audio_s = sum(len(b) for b in batch) / 16_000

    def timed(fn, repeat=3):
        fn()
        torch.cuda.synchronize(device)
        t = time.perf_counter()
        for _ in range(repeat):
            fn()
        torch.cuda.synchronize(device)
        return (time.perf_counter() - t) / repeat

    data = [b.to(device) for b in batch]
    with torch.inference_mode():
        feats_s = timed(lambda: extract_fbank(data, frontend=asr._frontend))
        feats, lengths = extract_fbank(data, frontend=asr._frontend)
        feats, lengths = feats.to(device), lengths.to(device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=asr._fp16):
            encode_s = timed(lambda: asr._model.encode(feats, lengths))
    whole_s = timed(lambda: asr._recognize_batch([b.numpy() for b in batch], None))
    print(f"one batch of {len(batch)} spans, {audio_s:.0f} s of audio: features {feats_s * 1000:.0f} ms, encoder "
          f"{encode_s * 1000:.0f} ms, whole recognize {whole_s * 1000:.0f} ms -> {audio_s / whole_s:.0f}x realtime "
          f"(encoder alone {audio_s / encode_s:.0f}x)", flush=True)


def _process_rounds(args, share: list[int], barrier, results) -> None:
    """One of ``--processes``: load a model set, then run ``share[i]`` jobs in round ``i``, each
    round started by ``barrier`` together with the other processes."""
    import torch

    engine = load_engine_for(args.size, args.device, args.batch_seconds,
                             max(1, args.cpu_workers // args.processes), not args.no_fp16, args.sequential)
    media = build_speech(args.minutes)
    work = OUT_DIR / "gpu-work" / f"p{multiprocessing.current_process().name}"
    run_jobs(engine, build_speech(args.memory_minutes), 1, work)
    for jobs in share:
        barrier.wait()
        transcripts, wall = run_jobs(engine, media, jobs, work) if jobs else ([], 0.0)
        peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
        results.put((sum(t.duration_ms for t in transcripts) / 1000,
                     sum(len(s.words) for t in transcripts for s in t.segments), peak))


def run_processes(args) -> None:
    context = multiprocessing.get_context("spawn")
    shares = [[jobs // args.processes + (1 if p < jobs % args.processes else 0) for jobs in args.jobs]
              for p in range(args.processes)]
    barrier = context.Barrier(args.processes + 1)
    results = context.Queue()
    procs = [context.Process(target=_process_rounds, args=(args, shares[p], barrier, results), name=str(p))
             for p in range(args.processes)]
    for proc in procs:
        proc.start()
    print(f"{args.processes} processes sharing the GPU, each with its own {args.size} Paraformer (SeACo) model set, "
          f"fp16={not args.no_fp16}, batch {args.batch_seconds:g} s, "
          f"{max(1, args.cpu_workers // args.processes)} CPU helper processes each", flush=True)
    for jobs in args.jobs:
        barrier.wait()
        start = time.perf_counter()
        rows = [results.get() for _ in procs]
        wall = time.perf_counter() - start
        audio_s = sum(r[0] for r in rows)
        print(f"\n{jobs} concurrent job(s) of {args.minutes:g} min over {args.processes} processes: "
              f"{audio_s / 3600:.1f} h of audio in {wall:.1f} s -> {audio_s / wall:.0f}x realtime aggregate; "
              f"{sum(r[1] for r in rows)} words; peak allocated per process "
              f"{max(r[2] for r in rows) / 2**20:.0f} MiB", flush=True)
    for proc in procs:
        proc.join()


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
    parser.add_argument("--no-check", action="store_true", help="skip the CPU/GPU agreement check and batch timing")
    parser.add_argument("--processes", type=int, default=1, help="worker processes sharing the GPU")
    parser.add_argument("--sequential", action="store_true",
                        help="each job's VAD runs to the end before its ASR starts (the pipeline before they overlapped)")
    parser.add_argument("--size", choices=("large", "tiny"), default="large",
                        help="Paraformer-large-sized models, or the tiny test models (a CPU stand-in for a fast GPU)")
    args = parser.parse_args()
    if args.processes > 1:
        run_processes(args)
        return

    import torch

    engine = load_engine_for(args.size, args.device, args.batch_seconds, args.cpu_workers, not args.no_fp16,
                             args.sequential)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if not cuda:  # a smoke run on the CPU: the memory figures read 0
        torch.cuda.memory_allocated = torch.cuda.max_memory_allocated = torch.cuda.memory_reserved = lambda d=None: 0
        torch.cuda.reset_peak_memory_stats = torch.cuda.synchronize = lambda d=None: None
        torch.cuda.get_device_name = lambda d=None: "CPU"
    print(f"{torch.cuda.get_device_name(device)}; {args.size} Paraformer (SeACo) fp16={not args.no_fp16}, "
          f"batch {args.batch_seconds:g} s, {args.cpu_workers} CPU helper processes", flush=True)
    weights_mib = torch.cuda.memory_allocated(device) / 2**20
    print(f"model weights on the GPU: {weights_mib:.0f} MiB", flush=True)
    if not args.no_check:
        check_asr(engine, device)
        long_pcm = OUT_DIR / "check-5min.s16le"
        from pipeline.audio import decode

        _, pcm = decode(build_speech(5), long_pcm)
        _time_parts(engine.asr, pcm, device)
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

    if args.memory_jobs < 1:
        return
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
