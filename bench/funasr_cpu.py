"""What a GPU worker still spends on its CPUs per hour of audio, measured on any machine.

On a GPU host the networks run on the GPU; what stays on the CPU bounds the aggregate realtime
factor however fast the GPU is: the work inside the worker process (it holds the GIL, so jobs
running as threads of one process take turns at it) and the work in other processes (ffmpeg's
decode, and FSMN-VAD and ITN in ``cpu_workers`` helper processes), which spreads over the host's cores.
Run with the tiny random-weight models, the networks cost next to nothing, so the CPU time each
stage takes here is that CPU-side work; the figures are per hour of real speech. VAD runs to the
end before ASR starts (``bench.funasr_stages.waiting_for_vad``), so each stage's CPU time is its own.

    python -m bench.funasr_cpu [--minutes 10] [--cores 16] [--target 1200]
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from bench.funasr_stages import waiting_for_vad
from tests.support.speech import OUT_DIR, build_speech
from contract import Stage

STAGES = tuple(Stage)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--language", default="zh", help="speech of this language only (zh or en)")
    parser.add_argument("--cores", type=int, default=16, help="CPU cores of the GPU host to project onto")
    parser.add_argument("--target", type=float, default=1200.0, help="aggregate realtime factor to project for")
    args = parser.parse_args()

    import torch

    from pipeline import transcribe
    from pipeline.profiles import EngineConfig, load_engine
    from contract import Hotword
    from pipeline.types import TranscribeOptions
    from tests.support.funasr_models import build_tiny_models

    torch.set_num_threads(1)
    models = OUT_DIR / "funasr-tiny"
    if not (models / "ready").exists():
        build_tiny_models(models)
        (models / "ready").write_text("built by bench.funasr_cpu\n")
    engine = waiting_for_vad(load_engine("funasr", EngineConfig(model_dir=models, cache_dir=models / "cache",
                                                                device="cpu", batch_seconds=300.0)))
    media = build_speech(args.minutes, language=args.language)
    options = TranscribeOptions(hotwords=(Hotword("达摩院", 20.0),))
    transcribe(build_speech(0.5, language=args.language), options, engine, work_dir=OUT_DIR / "cpu-work")  # warm

    marks: dict[str, tuple[float, float, float]] = {}

    def on_progress(p) -> None:
        if p.stage not in marks:
            marks[p.stage] = (time.thread_time(), _children_cpu_s(), time.perf_counter())

    start = (time.thread_time(), _children_cpu_s(), time.perf_counter())
    transcript = transcribe(media, options, engine, work_dir=OUT_DIR / "cpu-work", on_progress=on_progress)
    end = (time.thread_time(), _children_cpu_s(), time.perf_counter())
    marks["decode"] = start
    hours = transcript.duration_ms / 3_600_000
    print(f"funasr profile, tiny models (networks ~free), {transcript.duration_ms / 60000:.1f} min of "
          f"{args.language} speech, one thread; CPU seconds per hour of audio:")
    print(f"{'stage':<8}{'this process':>14}{'child processes':>17}")
    in_process = {}
    children = {}
    for stage, following in zip(STAGES, STAGES[1:] + ("end",)):
        a = marks[stage]
        b = marks.get(following, end) if following != "end" else end
        in_process[stage] = (b[0] - a[0]) / hours
        children[stage] = (b[1] - a[1]) / hours
        print(f"{stage:<8}{in_process[stage]:>14.1f}{children[stage]:>17.1f}")
    # On a GPU worker: decode is ffmpeg (other processes); VAD and ITN run in cpu_workers helpers;
    # the rest runs in the worker process, under its GIL.
    gil_s = sum(in_process[s] for s in ("decode", "asr", "punc"))
    spread_s = children["decode"] + sum(in_process[s] + children[s] for s in ("vad", "itn"))
    print(f"\nper hour of audio: {gil_s:.1f} s in the worker process (GIL-bound), {spread_s:.1f} s in other "
          f"processes (ffmpeg decode; VAD and ITN in the cpu_workers helpers)")
    per_process = 3600 / max(gil_s, 1e-9)
    print(f"one worker process can feed its GPU at most {per_process:.0f}x realtime aggregate from its own "
          f"CPU-side work; {args.target:g}x needs {args.target / per_process:.1f} such processes per GPU")
    cores = (gil_s + spread_s) * args.target / 3600
    print(f"{args.target:g}x aggregate needs {cores:.1f} cores of CPU-side work "
          f"({'within' if cores <= args.cores else 'beyond'} a {args.cores}-core host)")


if __name__ == "__main__":
    main()
