"""What speaker labels cost and how well they place turns (figures printed, not a test).

1. Turns: the recordings of tests/support/speaker_turns.py (two voices with 1 s pauses, the same
   with no pause, three voices), diarized by the offline profile (GE2E). For each, the error of
   every change of speaker (ms from the true change to the nearest found one) and the share of
   words labelled right, on the transcript's words and, without ASR, on 250 ms slices of VAD's
   speech (what the diarizer itself places).
2. Cost, in a fresh process that loads nothing else: seconds of the diarize stage (embedding
   and clustering) per audio hour on ``--minutes`` of real speech (tests/support/speech.py), median of
   ``--rounds``; the time and RSS of loading the encoder, torch included; RSS after and at peak.
3. Install size: what the ``diarize`` extra adds to an ``offline`` install (the packages its
   requirements pull in that the offline extra does not, as installed here).

    python -m bench.diarize                  # 10 minutes, 3 rounds
    python -m bench.diarize --minutes 30 --rounds 1 --parts cost
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.speech import SPEECH_DIR, build_speech

COST = r"""
import json, sys, time
from pathlib import Path

def rss_kb(field="VmRSS"):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

start_kb = rss_kb()
import numpy
from pipeline.audio import PcmFile
from pipeline.diarize import diarize
from pipeline.stages import SpeechSpan
from pipeline.types import TranscribeOptions

pcm = PcmFile(sys.argv[1])
spans = [SpeechSpan(s, e, tuple(map(tuple, parts))) for s, e, parts in json.loads(Path(sys.argv[2]).read_text())]
rounds = int(sys.argv[3])
regions = [p for s in spans for p in (s.parts or ((s.start_ms, s.end_ms),))]
words = [(a, min(a + 250, b)) for start, b in regions for a in range(start, b, 250)]
before_kb = rss_kb()
t0 = time.perf_counter()
from pipeline.speaker_ge2e import load_ge2e
model = load_ge2e()
load_s = time.perf_counter() - t0
loaded_kb = rss_kb()
seconds = []
for _ in range(rounds):
    t0 = time.perf_counter()
    labels = diarize(pcm, spans, words, model, TranscribeOptions(diarize=True))
    seconds.append(time.perf_counter() - t0)
print(json.dumps({
    "duration_s": pcm.duration_ms / 1000,
    "speech_s": sum(e - s for s, e in regions) / 1000,
    "seconds": seconds,
    "speakers": len(set(labels)),
    "load_s": load_s,
    "before_kb": before_kb,
    "loaded_kb": loaded_kb,
    "after_kb": rss_kb(),
    # VmHWM starts afresh at exec; ru_maxrss would count the parent's pages shared before it.
    "peak_kb": rss_kb("VmHWM"),
}))
"""


def turns(cache: Path) -> None:
    from media import find_ffmpeg
    from pipeline import transcribe
    from pipeline.audio import decode
    from pipeline.diarize import diarize
    from pipeline.profiles import EngineConfig, load_engine
    from pipeline.types import TranscribeOptions
    from tests.support import speaker_turns

    ffmpeg = find_ffmpeg()
    engine = load_engine("offline", EngineConfig(model_dir=cache / "models", cache_dir=cache))
    cases = [
        ("two voices, 1 s pauses", speaker_turns.TWO_VOICES, speaker_turns.GAP_MS),
        ("two voices, no pause", speaker_turns.TWO_VOICES_CLOSE, 0),
        ("three voices, 1 s pauses", speaker_turns.THREE_VOICES, speaker_turns.GAP_MS),
    ]
    options = TranscribeOptions(diarize=True)
    with tempfile.TemporaryDirectory(prefix="tingxie-bench-") as work:
        work = Path(work)
        for name, clips, gap_ms in cases:
            path = work / "turns.wav"
            truth = speaker_turns.build(SPEECH_DIR, path, ffmpeg, clips, gap_ms)
            transcript = transcribe(path, options, engine, work_dir=work)
            words = [(w.start_ms, w.end_ms, w.speaker) for s in transcript.segments for w in s.words]
            on_words = speaker_turns.score(words, truth)
            _, pcm = decode(path, work / "turns.s16le", ffmpeg=ffmpeg)
            spans = engine.vad.speech_spans(pcm)
            regions = [p for s in spans for p in (s.parts or ((s.start_ms, s.end_ms),))]
            slices = [(a, min(a + 250, b)) for start, b in regions for a in range(start, b, 250)]
            labels = diarize(pcm, spans, slices, engine.speaker_model(), options)
            on_slices = speaker_turns.score([(a, b, k) for (a, b), k in zip(slices, labels)], truth)
            print(f"{name}: {len(truth)} turns, speakers found {[s.id for s in transcript.speakers]}")
            for label, result in (("words", on_words), ("250 ms slices", on_slices)):
                print(f"  {label:<14} boundary errors {result.boundary_errors_ms} ms, extra changes "
                      f"{result.extra_changes}, labelled right {result.accuracy:.1%}, mapping {result.mapping}")


def cost(minutes: float, rounds: int) -> None:
    """VAD here; the diarize stage alone in a fresh process that has loaded nothing else (no
    Whisper, no torch), so its RSS is what diarizing adds to a worker."""
    from pipeline.audio import decode
    from pipeline.vad_silero import SileroVad, VadOptions

    audio = build_speech(minutes)
    with tempfile.TemporaryDirectory(prefix="tingxie-bench-") as work:
        pcm_path = Path(work) / "audio.s16le"
        _, pcm = decode(audio, pcm_path)
        spans = SileroVad(VadOptions(max_span_ms=30_000)).speech_spans(pcm)
        spans_path = Path(work) / "spans.json"
        spans_path.write_text(json.dumps([[s.start_ms, s.end_ms, [list(p) for p in s.parts]] for s in spans]))
        done = subprocess.run([sys.executable, "-c", COST, str(pcm_path), str(spans_path), str(rounds)],
                              capture_output=True, text=True, check=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    median = statistics.median(r["seconds"])
    print(f"cost on {r['duration_s'] / 60:.1f} min of audio ({r['speech_s'] / 60:.1f} min of speech, "
          f"{r['speakers']} speakers found), rounds {[round(s, 1) for s in r['seconds']]} s:")
    print(f"  diarize stage: median {median:.1f} s, {median * 3600 / r['duration_s']:.0f} s per audio hour "
          f"(fastest round: {min(r['seconds']) * 3600 / r['duration_s']:.0f} s)")
    print(f"  loading the encoder (torch included): {r['load_s']:.1f} s, RSS {r['before_kb'] / 1024:.0f} -> "
          f"{r['loaded_kb'] / 1024:.0f} MiB; after diarizing {r['after_kb'] / 1024:.0f} MiB, peak {r['peak_kb'] / 1024:.0f} MiB")


def _closure(requirements: list[str]) -> set[str]:
    """Installed distributions ``requirements`` pull in (markers evaluated here, extras ignored)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        try:
            todo += metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
    return seen


def install_size() -> None:
    from importlib import metadata

    try:
        import tomllib
    except ImportError:
        return
    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    base = _closure(extras["dependencies"] + extras["optional-dependencies"]["offline"])
    added = sorted(_closure(extras["optional-dependencies"]["diarize"]) - base)
    sizes = {}
    for name in added:
        files = metadata.distribution(name).files or []
        sizes[name] = sum(Path(f.locate()).stat().st_size for f in files if Path(f.locate()).is_file())
    total = sum(sizes.values())
    print(f"install: the diarize extra adds {total / 2**20:.0f} MiB over offline ({len(added)} packages, as installed here):")
    for name, size in sorted(sizes.items(), key=lambda item: -item[1])[:8]:
        print(f"  {name:<24} {size / 2**20:7.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", nargs="+", choices=("turns", "cost", "install"), default=["turns", "cost", "install"])
    args = parser.parse_args()
    if "turns" in args.parts:
        turns(Path(__file__).resolve().parent / "out" / "cache")
    if "cost" in args.parts:
        cost(args.minutes, args.rounds)
    if "install" in args.parts:
        install_size()


if __name__ == "__main__":
    main()
