"""FSMN-VAD on one core: funasr's ``inference`` against tingxie's detector, same file, same spans.

"funasr" is what FsmnVad ran before tingxie had its own detector: ``FsmnVADStreaming.inference``
fed a minute at a time with its streaming cache (funasr's per-frame Python state machine).
"tingxie" is FsmnVad now: funasr's frontend and network, tingxie's compiled detection
(pipeline.funasr.detect). Each (length, path) runs in a fresh process with one torch thread, the
model is the random-weight FSMN from build_fsmn_vad (the network costs what the real one costs),
and the audio is real speech (tests.support.speech). Printed: wall seconds, realtime factor, peak RSS
and its growth over the RSS once loaded, and where the time goes (CPU seconds in funasr's
frontend, in the network, and the rest: the detection and its bookkeeping).

    python -m bench.funasr_vad                     # 10 and 60 minutes
    python -m bench.funasr_vad --minutes 5 --onnx  # the ONNX backend (tingxie's path)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from tests.support.speech import OUT_DIR, build_speech

def _child(path: str, pcm_path: Path, model_dir: Path, warmup_path: Path) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    torch.set_num_threads(1)
    from pipeline.audio import PcmFile
    from tests.support.funasr_models import funasr_vad_segments

    cpu = {"frontend": 0.0, "network": 0.0}

    def timed(name, fn):
        def call(*args, **kwargs):
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[name] += time.thread_time() - t0
        return call

    if path == "funasr":
        import funasr.models.fsmn_vad_streaming.model as fsmn_model
        from funasr import AutoModel

        model, kwargs = AutoModel.build_model(model=str(model_dir), device="cpu", disable_update=True, ncpu=1,
                                              log_level="ERROR")
        fsmn_model.extract_fbank = timed("frontend", fsmn_model.extract_fbank)
        model.encoder.forward = timed("network", model.encoder.forward)

        def run(pcm):
            return funasr_vad_segments(model, kwargs["frontend"], pcm)
    else:
        import funasr.utils.load_utils as load_utils

        from pipeline.funasr.vad import FsmnVad

        vad = FsmnVad(model_dir)
        load_utils.extract_fbank = timed("frontend", load_utils.extract_fbank)
        vad._network.scores = timed("network", vad._network.scores)

        def run(pcm):
            return vad.segments_ms(pcm)

    run(PcmFile(warmup_path))  # loads everything lazily loaded, compiles the detector
    cpu.update(frontend=0.0, network=0.0)
    loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pcm = PcmFile(pcm_path)
    t0, c0 = time.perf_counter(), time.process_time()
    segments = run(pcm)
    seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds, "cpu_s": cpu_s, "audio_s": pcm.num_samples / pcm.sample_rate_hz,
        "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "loaded_kb": loaded_kb,
        "segments": segments, "cpu": {**cpu, "rest": cpu_s - cpu["frontend"] - cpu["network"]},
    }


def _measure(path: str, pcm_path: Path, model_dir: Path, warmup_path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.funasr_vad", "--child", path, str(pcm_path), str(model_dir), str(warmup_path)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pcm(minutes: float) -> Path:
    """The speech file decoded once to the s16le PcmFile reads."""
    from pipeline.audio import decode

    media = build_speech(minutes)
    target = media.with_suffix(".s16le")
    if not target.exists():
        tmp = target.with_suffix(".tmp.s16le")
        decode(media, tmp)
        tmp.replace(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    parser.add_argument("--onnx", action="store_true",
                        help="tingxie's path on the ONNX export (funasr's stays PyTorch)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, pcm_path, model_dir, warmup = args.child
        print(json.dumps(_child(path, Path(pcm_path), Path(model_dir), Path(warmup))))
        return

    from tests.support.funasr_models import build_fsmn_vad, export_onnx

    model_dir = OUT_DIR / "fsmn-vad-tiny"
    if not (model_dir / "model.pt").exists():
        build_fsmn_vad(model_dir)
    onnx_dir = OUT_DIR / "fsmn-vad-tiny-onnx"
    if args.onnx and not (onnx_dir / "model.onnx").exists():
        export_onnx(model_dir, onnx_dir)
    warmup = _pcm(0.5)
    print(f"FSMN-VAD, one core, real speech; tingxie on {'ONNX' if args.onnx else 'PyTorch'}, funasr on PyTorch")
    print(f"{'minutes':>7} {'path':>8} {'seconds':>8} {'x realtime':>11} {'peak RSS MiB':>13} {'growth MiB':>11}"
          f"   CPU s: frontend / network / the rest (detection)")
    for minutes in args.minutes:
        pcm_path = _pcm(minutes)
        results = {
            "funasr": _measure("funasr", pcm_path, model_dir, warmup),
            "tingxie": _measure("tingxie", pcm_path, onnx_dir if args.onnx else model_dir, warmup),
        }
        for path, r in results.items():
            print(f"{minutes:7g} {path:>8} {r['seconds']:8.2f} {r['audio_s'] / r['seconds']:11.0f} "
                  f"{r['peak_kb'] / 1024:13.1f} {(r['peak_kb'] - r['loaded_kb']) / 1024:11.1f}   "
                  + " / ".join(f"{r['cpu'][k]:.2f}" for k in ("frontend", "network", "rest")), flush=True)
        old, new = results["funasr"], results["tingxie"]
        same = "identical" if old["segments"] == new["segments"] else "DIFFERENT"
        print(f"{minutes:7g} funasr / tingxie = {old['seconds'] / new['seconds']:.2f}x faster; "
              f"{len(new['segments'])} spans, {same}", flush=True)


if __name__ == "__main__":
    main()
