"""Fifty jobs in a row on one engine, as a worker runs them: memory ends where the first left it."""
from __future__ import annotations

import gc

import pytest

from tests.support.requires import require_funasr, require_installed

require_funasr()
require_installed("onnxscript", reason="exporting the tiny ONNX models needs onnxscript")

from pipeline import transcribe  # noqa: E402
from contract import Hotword  # noqa: E402
from pipeline.types import TranscribeOptions  # noqa: E402

pytestmark = [pytest.mark.funasr, pytest.mark.slow]

JOBS = 50


def _jobs(engine, path, work_dir, measure):
    """Run JOBS transcriptions (alternating hotwords and ITN, as real traffic does); return the
    measurement after the first job, after the fifth and after the last."""
    readings = {}
    for n in range(1, JOBS + 1):
        options = TranscribeOptions(hotwords=(Hotword("达摩院", 20.0),) if n % 2 else (), itn=n % 3 != 0)
        transcript = transcribe(path, options, engine, work_dir=work_dir)
        assert transcript.segments
        if n in (1, 5, JOBS):
            gc.collect()
            readings[n] = measure()
    return readings


def test_cpu_memory_does_not_grow_across_jobs(funasr_engine, speech_path, tmp_path):
    import psutil

    process = psutil.Process()
    readings = _jobs(funasr_engine, speech_path("asr_example.wav"), tmp_path, lambda: process.memory_info().rss)
    growth_mib = (readings[JOBS] - readings[5]) / 2**20
    print(f"RSS after job 1/5/{JOBS}: " + ", ".join(f"{v / 2**20:.1f} MiB" for v in readings.values()))
    assert growth_mib < 16, f"RSS grew {growth_mib:.1f} MiB from job 5 to job {JOBS}"


def test_gpu_memory_does_not_grow_across_jobs(load_funasr, speech_path, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here (runs on GPU workers and the device machine)")
    engine = load_funasr(device="cuda")
    readings = _jobs(engine, speech_path("asr_example.wav"), tmp_path, torch.cuda.memory_allocated)
    print(f"allocated after job 1/5/{JOBS}: {readings}")
    assert readings[JOBS] == readings[1]
