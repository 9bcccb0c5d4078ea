"""Service benchmarks (figures printed, not timed tests).

overhead: wall time of a job through the whole service (upload accepted -> done, idle warm worker,
          embedded default) divided by bare faster-whisper (BatchedInferencePipeline, its own VAD, word
          timestamps) on the same file with the same model and language. The file is English speech
          only: on mixed zh/en audio bare faster-whisper reads the whole file in one language and
          drops the rest, which is less work, not less overhead. Each round times both sides (which
          goes first alternates); the figure is the median of the rounds' ratios. Target <= 1.00.
memory:   the worker's peak RSS on a long file divided by that on a short one (fresh worker each),
          and whether any of its processes mapped libtorch (a job without speakers must not).
          Target <= 1.1 for 60 vs 10 minutes, and the long file's peak <= 1 GiB.

    python -m bench.service overhead --minutes 10 --rounds 3
    python -m bench.service memory --minutes 10 60
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench import stop_services_on_signals
from tests.support.speech import build_speech
from core.migrate import upgrade
from core.settings import Settings
from tests.support.service import Service, free_port

REPO = Path(__file__).resolve().parents[1]

BARE = r"""
import json, sys, time
from pathlib import Path
from faster_whisper import BatchedInferencePipeline, WhisperModel
from pipeline.whisper import prepare_whisper_base
model_dir = prepare_whisper_base(Path(sys.argv[2]))
model = WhisperModel(str(model_dir), device="cpu", compute_type="int8")
pipe = BatchedInferencePipeline(model)
t0 = time.perf_counter()
segments, info = pipe.transcribe(sys.argv[1], word_timestamps=True, language=sys.argv[3])
text = " ".join(s.text for s in segments)
print(json.dumps({"seconds": time.perf_counter() - t0, "chars": len(text)}))
"""


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def _start(tmp: Path) -> Service:
    settings = Settings(data_dir=tmp / "data", port=free_port(), gateway_port=free_port())
    upgrade(settings)
    log_dir = tmp / "logs"
    log_dir.mkdir(exist_ok=True)
    service = Service(settings=settings, log_dir=log_dir)
    service.start_web()
    service.start_worker()
    return service


def _job_seconds(service: Service, path: Path, timeout_s: float, **form) -> tuple[float, dict]:
    job = service.wait(service.submit(path, **form)["id"], timeout_s=timeout_s)
    assert job["status"] == "done", job
    return (_parse(job["finished_at"]) - _parse(job["created_at"])).total_seconds(), job


def _bare_seconds(path: Path, cache_dir: Path, language: str) -> float:
    out = subprocess.run([sys.executable, "-c", BARE, str(path), str(cache_dir), language], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def overhead(minutes: float, rounds: int) -> None:
    """Paired rounds: each round times both sides on the same file, the engine first in odd rounds
    and the service first in even ones (whichever runs second may find the disk cache warm); the
    figure is the median of the rounds' own ratios."""
    audio = build_speech(minutes, language="en")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        service = _start(Path(tmp))
        try:
            _job_seconds(service, build_speech(0.5, language="en"), 600, language="en")  # warm-up: first job pays for lazy work
            for i in range(rounds):
                engine_first = i % 2 == 0
                if engine_first:
                    bare = _bare_seconds(audio, service.settings.cache_dir, "en")
                seconds, _ = _job_seconds(service, audio, 3600, language="en")
                if not engine_first:
                    bare = _bare_seconds(audio, service.settings.cache_dir, "en")
                ratios.append(seconds / bare)
                print(f"round {i + 1} ({'engine' if engine_first else 'service'} first): batched engine {bare:.1f} s "
                      f"(RTF {bare / (minutes * 60):.3f}), tingxie job {seconds:.1f} s; ratio {ratios[-1]:.3f}", flush=True)
        finally:
            service.stop()
    median = statistics.median(ratios)
    print(f"audio {minutes:g} min, {rounds} rounds; ratios {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"median of per-round ratios {median:.3f} (target <= 1.00: {'met' if median <= 1.0 else 'NOT met'})")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(c) for c in text)
    return found


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


def memory(minutes_list: list[float]) -> None:
    peaks = {}
    for minutes in minutes_list:
        audio = build_speech(minutes)
        with tempfile.TemporaryDirectory() as tmp:
            service = _start(Path(tmp))
            try:
                t0 = time.perf_counter()
                seconds, _ = _job_seconds(service, audio, 6 * 3600)
                # The CLI process runs Celery's parent; the pool child holds the models and does the work.
                cli_pid = service.workers[0].pid
                pool = [c for parent in [cli_pid, *_children(cli_pid)] for c in _children(parent)]
                pids = [cli_pid, *_children(cli_pid), *pool]
                peak_kib = max(_hwm_kib(pid) for pid in pids)
                torch_loaded = any("libtorch" in Path(f"/proc/{pid}/maps").read_text() for pid in pids)
            finally:
                service.stop()
        peaks[minutes] = peak_kib
        print(f"{minutes:g} min: worker peak RSS {peak_kib / 1024:.0f} MiB, job {seconds:.0f} s "
              f"(RTF {seconds / (minutes * 60):.3f}), wall {time.perf_counter() - t0:.0f} s; torch loaded: "
              f"{'yes' if torch_loaded else 'no'}", flush=True)
    short, long = min(peaks), max(peaks)
    print(f"peak RSS ratio {long:g} min / {short:g} min = {peaks[long] / peaks[short]:.3f} (target <= 1.1); "
          f"{long:g}-min peak {peaks[long] / 1024:.0f} MiB (target <= 1024 MiB)")


def main() -> None:
    stop_services_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--minutes", type=float, default=10)
    o.add_argument("--rounds", type=int, default=3)
    m = sub.add_parser("memory")
    m.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    args = parser.parse_args()
    if args.what == "overhead":
        overhead(args.minutes, args.rounds)
    else:
        memory(args.minutes)


if __name__ == "__main__":
    main()
