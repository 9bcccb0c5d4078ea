"""Peak memory and speed of the pipeline on long files (figures printed, not a test).

Each length runs in a fresh process (offline profile, CPU): peak RSS after the whole
transcription, the RSS once the models were loaded, wall time of ``transcribe`` and its
real-time factor. The target is peak(longest) / peak(shortest) <= 1.1.

    python -m bench.pipeline_memory                # 10 and 60 minutes
    python -m bench.pipeline_memory --minutes 2 10
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.speech import SPEECH_DIR, build_speech

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from pipeline import transcribe
from pipeline.profiles import EngineConfig, load_engine
from pipeline.types import TranscribeOptions

audio, cache, work = map(Path, sys.argv[1:4])
engine = load_engine("offline", EngineConfig(model_dir=cache / "models", cache_dir=cache))
transcribe(sys.argv[4], TranscribeOptions(), engine, work_dir=work)  # warm-up on a short recording
loaded_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
transcript = transcribe(audio, TranscribeOptions(), engine, work_dir=work)
seconds = time.perf_counter() - t0
print(json.dumps({
    "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "loaded_kb": loaded_kb,
    "seconds": seconds,
    "duration_s": transcript.duration_ms / 1000,
    "sentences": len(transcript.segments),
    "words": sum(len(s.words) for s in transcript.segments),
}))
"""


def measure(minutes: float, cache: Path) -> dict:
    audio = build_speech(minutes)
    warmup = SPEECH_DIR / "jfk.flac"
    with tempfile.TemporaryDirectory(prefix="tingxie-bench-") as work:
        done = subprocess.run([sys.executable, "-c", CHILD, str(audio), str(cache), work, str(warmup)],
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    args = parser.parse_args()
    cache = Path(__file__).resolve().parent / "out" / "cache"
    results = {}
    print(f"{'minutes':>8} {'peak RSS MiB':>13} {'after load MiB':>15} {'wall s':>8} {'RTF':>6} {'words':>7}")
    for minutes in args.minutes:
        r = results[minutes] = measure(minutes, cache)
        print(f"{minutes:8g} {r['peak_kb'] / 1024:13.1f} {r['loaded_kb'] / 1024:15.1f} {r['seconds']:8.1f} "
              f"{r['seconds'] / r['duration_s']:6.3f} {r['words']:7d}", flush=True)
    if len(results) > 1:
        short, long = min(results), max(results)
        ratio = results[long]["peak_kb"] / results[short]["peak_kb"]
        print(f"peak RSS {long:g} min / {short:g} min = {ratio:.3f} (target <= 1.1)")


if __name__ == "__main__":
    main()
