"""Per-stage wall time of the funasr profile on the CPU for a 10-minute file of real speech.

The models are the real architectures with random weights (``tests.support.funasr_models``):
Paraformer-large (SeACo), FSMN-VAD, CT-Transformer large-sized, so the arithmetic is the real
models'; the text is meaningless. Stage boundaries are read off the pipeline's own progress
reports, with VAD run to the end before ASR starts (``waiting_for_vad``) so that each stage has
its own stretch of time; then the same file again as the pipeline runs it, ASR beside VAD, and
the two totals side by side.

    python -m bench.funasr_stages [--minutes 10] [--threads N]
"""
from __future__ import annotations

import argparse
import difflib
import time
from pathlib import Path

from tests.support.speech import OUT_DIR, build_speech
from contract import Stage

STAGES = tuple(Stage)


def load(models: Path, device: str, batch_seconds: float):
    from pipeline.profiles import EngineConfig, load_engine
    from tests.support.funasr_models import build_large_models

    if not (models / "ready").exists():
        build_large_models(models)
        (models / "ready").write_text("built by bench.funasr_stages\n")
    config = EngineConfig(model_dir=models, cache_dir=models / "cache", device=device,
                          batch_seconds=batch_seconds)
    return load_engine("funasr", config)


class _WholeFileVad:
    """A VAD's spans all at once: without ``iter_speech_spans`` the pipeline waits for them."""

    def __init__(self, vad):
        self._vad = vad

    def speech_spans(self, pcm, on_progress=None):
        return self._vad.speech_spans(pcm, on_progress)


def waiting_for_vad(engine):
    """``engine`` with its VAD run over the whole file before ASR starts, stage after stage."""
    return type(engine)(**{**engine.__dict__, "vad": _WholeFileVad(engine.vad)})


class _PaddingCount:
    """The engine's ASR, counting the audio its batches hold and what they hold padded to their
    longest span (what the network computes over)."""

    def __init__(self, asr):
        self._asr = asr
        self.supports_hotwords = asr.supports_hotwords
        self.samples = self.padded = 0

    def recognize(self, segments, **kwargs):
        self.samples += sum(len(s) for s in segments)
        self.padded += len(segments) * max(len(s) for s in segments)
        return self._asr.recognize(segments, **kwargs)


def with_padding_count(engine):
    return type(engine)(**{**engine.__dict__, "asr": _PaddingCount(engine.asr)})


def stage_times(engine, media: Path, work_dir: Path) -> tuple[dict[str, float], float, object]:
    """Seconds spent in each stage, total seconds, and the transcript."""
    from pipeline import transcribe
    from contract import Hotword
    from pipeline.types import TranscribeOptions

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
    sequential, overlapping = with_padding_count(waiting_for_vad(engine)), with_padding_count(engine)
    times, total, transcript = stage_times(sequential, media, OUT_DIR / "work")
    audio_s = transcript.duration_ms / 1000
    print(f"funasr profile on CPU ({torch.get_num_threads()} torch threads), {audio_s / 60:.1f} min of speech "
          f"({media.name}); models loaded in {load_s:.1f} s")
    print(f"{'stage':<8}{'seconds':>9}{'share':>8}{'x realtime':>12}")
    for stage in STAGES:
        print(f"{stage:<8}{times[stage]:>9.2f}{times[stage] / total:>8.1%}{audio_s / max(times[stage], 1e-9):>12.0f}")
    print(f"{'total':<8}{total:>9.2f}{1:>8.0%}{audio_s / total:>12.1f}   (RTF {total / audio_s:.4f})")
    print(f"{len(transcript.segments)} sentences, {sum(len(s.words) for s in transcript.segments)} words")
    _, overlapped, again = stage_times(overlapping, media, OUT_DIR / "work")
    words = [[w.text for s in t.segments for w in s.words] for t in (transcript, again)]
    agree = difflib.SequenceMatcher(None, *words, autojunk=False).ratio()
    print(f"as the pipeline runs it (ASR beside VAD): total {overlapped:.2f} s, {total / overlapped:.2f}x the "
          f"stage-after-stage total; {len(words[1])} words, {agree:.2%} the same as stage after stage (batches "
          f"are cut from fewer spans at a time, so they pad differently; random weights' near-tied scores can flip)")
    print(f"ASR batches padded to their longest span: {sequential.asr.padded / sequential.asr.samples - 1:.1%} "
          f"over the speech stage after stage, {overlapping.asr.padded / overlapping.asr.samples - 1:.1%} beside VAD")


if __name__ == "__main__":
    main()
