"""Per-stage wall time of the funasr profile on the CPU for a 10-minute file of real speech.

The models are the real architectures with random weights (``pipeline.funasr_testing``):
Paraformer-large (SeACo), FSMN-VAD, CT-Transformer large-sized, so the arithmetic is the real
models'; the text is meaningless. Stage boundaries are read off the pipeline's own progress
reports, so the figures are the stages as ``pipeline.transcribe`` runs them.

    python -m bench.funasr_stages [--minutes 10] [--threads N]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.speech import OUT_DIR, build_speech

STAGES = ("decode", "vad", "asr", "punc", "itn")


def load(models: Path, device: str, batch_seconds: float, **options):
    from pipeline.funasr_testing import build_large_models
    from pipeline.profiles import EngineConfig, load_engine

    if not (models / "ready").exists():
        build_large_models(models)
        (models / "ready").write_text("built by bench.funasr_stages\n")
    config = EngineConfig(model_dir=models, cache_dir=models / "cache", device=device,
                          batch_seconds=batch_seconds, options=options)
    return load_engine("funasr", config)


def stage_times(engine, media: Path, work_dir: Path) -> tuple[dict[str, float], float, object]:
    """Seconds spent in each stage, total seconds, and the transcript."""
    from pipeline import transcribe
    from pipeline.types import Hotword, TranscribeOptions

    marks: dict[str, float] = {}

    def on_progress(p) -> None:
        marks.setdefault(p.stage, time.perf_counter())

    start = time.perf_counter()
    transcript = transcribe(media, TranscribeOptions(hotwords=(Hotword("达摩院", 20.0),)), engine,
                            work_dir=work_dir, on_progress=on_progress)
    end = time.perf_counter()
    marks["decode"] = start
    times = {}
    for stage, following in zip(STAGES, STAGES[1:] + ("end",)):
        times[stage] = (marks.get(following, end) if following != "end" else end) - marks[stage]
    return times, end - start, transcript


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    parser.add_argument("--batch-seconds", type=float, default=120.0)
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    media = build_speech(args.minutes)
    t0 = time.perf_counter()
    engine = load(OUT_DIR / "funasr-large", "cpu", args.batch_seconds)
    load_s = time.perf_counter() - t0
    times, total, transcript = stage_times(engine, media, OUT_DIR / "work")
    audio_s = transcript.duration_ms / 1000
    print(f"funasr profile on CPU ({torch.get_num_threads()} torch threads), {audio_s / 60:.1f} min of speech "
          f"({media.name}); models loaded in {load_s:.1f} s")
    print(f"{'stage':<8}{'seconds':>9}{'share':>8}{'x realtime':>12}")
    for stage in STAGES:
        print(f"{stage:<8}{times[stage]:>9.2f}{times[stage] / total:>8.1%}{audio_s / max(times[stage], 1e-9):>12.0f}")
    print(f"{'total':<8}{total:>9.2f}{1:>8.0%}{audio_s / total:>12.1f}   (RTF {total / audio_s:.4f})")
    print(f"{len(transcript.segments)} sentences, {sum(len(s.words) for s in transcript.segments)} words")


if __name__ == "__main__":
    main()
