"""One Paraformer ASR batch (about 300 s of real speech) through funasr's ``inference`` and through
tingxie's batch path, side by side in one run: ms per batch, realtime factor, the ratio, and the
torch ops issued per batch (on a GPU each is a kernel launch or more), in total and after the
encoder. Both paths must give the same words and times; the run stops if they do not.

The columns that matter are the ones after the encoder: that is all the two paths do differently.
On a GPU the network is fast and each op costs a launch (~10 us) and often a sync, so the op count
after the encoder is the figure that carries over; on the CPU the tiny model's features and encoder
still take most of the batch (fbank of 300 s, attention over the padded 60 s span), and the
large-sized model (Paraformer-large's arithmetic, random weights) shows the network dominating.
The large model is slow on a CPU (about 2 min a batch on one core), hence one round by default.

    python -m bench.funasr_asr [--sizes tiny large] [--rounds 5] [--large-rounds 1] [--device cpu] [--threads N]
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import statistics
import time
from pathlib import Path

from tests.support.speech import OUT_DIR, build_speech

# Span lengths (s): the pipeline's usual 5-11 s VAD spans and a few long ones, about 300 s.
SPAN_S = (5.5, 8, 11, 6, 9, 7, 10, 60, 6.5, 9.5, 8.5, 5, 11, 30, 7.5, 10.5, 6, 45, 9, 8, 5.5, 11, 7)
# Ops that only make views or read metadata: no kernel runs for them.
_VIEW_OPS = frozenset({
    "view", "_unsafe_view", "slice", "select", "transpose", "unsqueeze", "squeeze", "expand", "t",
    "permute", "alias", "detach", "as_strided", "split", "split_with_sizes", "unbind", "chunk",
    "narrow", "reshape", "lift_fresh", "resolve_conj", "resolve_neg",
})


def spans_of_speech(seconds_each=SPAN_S):
    """The batch: consecutive cuts of tests.support.speech's real-speech file, float32 at 16 kHz."""
    from pipeline.audio import PcmFile, decode

    media = build_speech(5)
    pcm_path = OUT_DIR / "funasr-asr-5min.s16le"
    if not pcm_path.exists():
        decode(media, pcm_path)
    pcm = PcmFile(pcm_path)
    spans, start_ms = [], 0
    for seconds in seconds_each:
        end_ms = min(pcm.duration_ms, start_ms + int(seconds * 1000))
        spans.append(pcm.read(start_ms, end_ms))
        start_ms = end_ms
    return spans


def model_dir(size: str) -> Path:
    from tests.support.funasr_models import build_seaco_paraformer

    path = OUT_DIR / "funasr-asr" / f"seaco-{size}"
    if not (path / "ready").exists():
        build_seaco_paraformer(path, size=size)
        (path / "ready").write_text("built by bench.funasr_asr\n")
    return path


class Phases:
    """Splits one batch's work into features (fbank), encoder and the rest (predictor, decoders, timestamps,
    post-processing: what the two paths do differently): seconds in each and, with ``count_ops``,
    the torch ops each dispatches (views excluded)."""

    def __init__(self, asr, count_ops: bool = False):
        self._asr = asr
        self._count_ops = count_ops
        self.seconds = collections.Counter()
        self.ops = collections.Counter()

    @contextlib.contextmanager
    def measuring(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        phases = self
        current = ["after encoder"]
        cuda = self._asr.device.startswith("cuda")

        class Count(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func.overloadpacket.__name__ not in _VIEW_OPS:
                    phases.ops[current[0]] += 1
                return func(*args, **(kwargs or {}))

        def in_phase(name, fn):
            def call(*args, **kwargs):
                if cuda:
                    torch.cuda.synchronize()
                current[0] = name
                start = time.perf_counter()
                try:
                    result = fn(*args, **kwargs)
                    if cuda:
                        torch.cuda.synchronize()
                    return result
                finally:
                    phases.seconds[name] += time.perf_counter() - start
                    current[0] = "after encoder"
            return call

        import sys

        import funasr.utils.load_utils as load_utils

        model = self._asr._model
        # extract_fbank (waveform padding and the frontend), as the model's module and
        # pipeline.funasr.asr (which imports it when called) look it up.
        modules = [load_utils, sys.modules[type(model).__module__]]
        extract = load_utils.extract_fbank
        for module in modules:
            module.extract_fbank = in_phase("features", extract)
        model.encode = in_phase("encoder", model.encode)
        start = time.perf_counter()
        try:
            with Count() if self._count_ops else contextlib.nullcontext():
                yield self
        finally:
            for module in modules:
                module.extract_fbank = extract
            del model.encode
            elapsed = time.perf_counter() - start
            self.seconds["after encoder"] += elapsed - self.seconds["features"] - self.seconds["encoder"]


def bench_size(size: str, spans, rounds: int, device: str) -> None:
    import torch

    from pipeline.funasr.asr import ParaformerAsr

    asr = ParaformerAsr(model_dir(size), device=device)
    audio_s = sum(len(s) for s in spans) / 16_000

    def run(funasr: bool, phases: Phases):
        with phases.measuring():
            items = asr._decode(spans, (), funasr=funasr)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        return [(i.get("text"), i.get("timestamp")) for i in items]

    old, new = run(True, Phases(asr)), run(False, Phases(asr))  # warm up both (and compile the CIF scan)
    if old != new:
        raise SystemExit(f"{size}: tingxie's batch path and funasr's inference disagree")
    timed = {True: [], False: []}
    for _ in range(rounds):  # alternate, so drift in the machine's load hits both alike
        for funasr in (True, False):
            phases = Phases(asr)
            run(funasr, phases)
            timed[funasr].append(phases.seconds)
    ops = {}
    for funasr in (True, False):
        phases = Phases(asr, count_ops=True)
        run(funasr, phases)
        ops[funasr] = phases.ops

    def median(funasr: bool, *parts: str) -> float:
        return statistics.median(sum(s[p] for p in parts) for s in timed[funasr])

    everything = ("features", "encoder", "after encoder")
    words = sum(len(stamps or []) for _, stamps in new)
    print(f"\nSeACo-Paraformer {size}, {asr.device}, {torch.get_num_threads()} torch thread(s): one batch of "
          f"{len(spans)} spans, {audio_s:.0f} s of speech, {words} timed tokens; same words and ms from both: yes "
          f"(times: median of {rounds})")
    print(f"{'path':<20}{'ms/batch':>9}{'x realtime':>11}{'RTF':>8}{'features+encoder ms':>21}"
          f"{'after-encoder ms':>18}{'ops/batch':>11}{'after encoder':>15}")
    for funasr, name in ((True, "funasr inference"), (False, "tingxie batch path")):
        total = median(funasr, *everything)
        print(f"{name:<20}{total * 1000:>9.0f}{audio_s / total:>11.0f}{total / audio_s:>8.4f}"
              f"{median(funasr, 'features', 'encoder') * 1000:>21.0f}{median(funasr, 'after encoder') * 1000:>18.0f}"
              f"{sum(ops[funasr].values()):>11}{ops[funasr]['after encoder']:>15}")
    print(f"ratio old/new: {median(True, *everything) / median(False, *everything):.2f}x per batch, "
          f"{median(True, 'after encoder') / median(False, 'after encoder'):.1f}x after the encoder; "
          f"ops {sum(ops[True].values()) / sum(ops[False].values()):.0f}x fewer per batch, "
          f"{ops[True]['after encoder'] / max(1, ops[False]['after encoder']):.0f}x fewer after the encoder "
          f"(features {ops[False]['features']} and encoder {ops[False]['encoder']} ops, the same in both)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "large"], choices=["tiny", "large"])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each path (tiny model)")
    parser.add_argument("--large-rounds", type=int, default=1, help="timed rounds of each path (large model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    spans = spans_of_speech()
    for size in args.sizes:
        bench_size(size, spans, args.large_rounds if size == "large" else args.rounds, args.device)


if __name__ == "__main__":
    main()
