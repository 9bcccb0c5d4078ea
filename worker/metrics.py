"""A worker's own metrics: audio seconds and processing time per profile (their ratio is the
realtime factor), job durations, per-job realtime factor, ASR batch sizes, GPU memory on CUDA.

Every pool process records into files under ``PROMETHEUS_MULTIPROC_DIR`` (set by
:func:`worker.celery_app.run_worker` before prometheus_client is imported); the main process's
announcer (worker.registry) reads them all and publishes them with its heartbeat, and the web
tier's ``/metrics`` shows them, labelled with the worker. Jobs are observed after their task
returns, from the job's row, so the job's own code path carries no metrics calls.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
from datetime import timezone
from functools import lru_cache
from typing import Callable

from celery.signals import task_postrun, worker_process_shutdown
from sqlalchemy.orm import sessionmaker

from core import metrics as wire
from core.models import Job
from core.queue import TRANSCRIBE
from pipeline.audio import SAMPLE_RATE_HZ

log = logging.getLogger("tingxie.worker")

_DURATION_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
_RTF_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
_BATCH_SPANS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_BATCH_AUDIO_BUCKETS_S = (5, 15, 30, 60, 120, 240, 480, 900, 1800)


@dataclasses.dataclass(frozen=True)
class _Metrics:
    audio_seconds: object
    tenant_audio_seconds: object
    processing_seconds: object
    jobs: object
    job_duration: object
    realtime_factor: object
    batch_spans: object
    batch_audio: object
    gpu_memory: object


@lru_cache(maxsize=1)
def _metrics() -> _Metrics:
    """Made once per process, on first use (prometheus_client reads its multiprocess setting then)."""
    from prometheus_client import Counter, Gauge, Histogram  # reads PROMETHEUS_MULTIPROC_DIR when first imported

    return _Metrics(
        audio_seconds=Counter("tingxie_audio_seconds", "Seconds of audio in the jobs this worker finished (done)",
                              ["profile"]),
        tenant_audio_seconds=Counter("tingxie_tenant_audio_seconds",
                                     "Seconds of audio in the jobs this worker finished (done), per tenant "
                                     "(what GET /api/v1/usage and the quota count)", ["tenant", "profile"]),
        processing_seconds=Counter("tingxie_processing_seconds",
                                   "Wall seconds this worker spent on the jobs it finished (done); "
                                   "rate(processing) / rate(audio) is the realtime factor", ["profile"]),
        jobs=Counter("tingxie_jobs_finished", "Jobs this worker finished, by outcome", ["profile", "outcome"]),
        job_duration=Histogram("tingxie_job_duration_seconds", "Running time of a job (claim to done or failed)",
                               ["profile", "outcome"], buckets=_DURATION_BUCKETS_S),
        realtime_factor=Histogram("tingxie_job_realtime_factor",
                                  "Running time over audio duration of a job (0.01: 100x faster than real time)",
                                  ["profile"], buckets=_RTF_BUCKETS),
        batch_spans=Histogram("tingxie_asr_batch_spans", "Speech spans in one ASR batch", ["profile"],
                              buckets=_BATCH_SPANS_BUCKETS),
        batch_audio=Histogram("tingxie_asr_batch_audio_seconds", "Seconds of audio in one ASR batch", ["profile"],
                              buckets=_BATCH_AUDIO_BUCKETS_S),
        gpu_memory=Gauge("tingxie_gpu_memory_bytes", "GPU memory held by this worker's processes (torch)",
                         ["device", "kind"], multiprocess_mode="livesum"),
    )


class _MeasuredAsr:
    """The engine's ASR model, counting each batch it is given (spans and seconds of audio)."""

    def __init__(self, asr, profile: str, sample_rate_hz: int):
        self._asr, self._profile, self._rate = asr, profile, sample_rate_hz

    def recognize(self, audio, **kwargs):
        m = _metrics()
        m.batch_spans.labels(self._profile).observe(len(audio))
        m.batch_audio.labels(self._profile).observe(sum(len(a) for a in audio) / self._rate)
        return self._asr.recognize(audio, **kwargs)

    def __getattr__(self, name):
        return getattr(self._asr, name)


def measured(engine, profile: str):
    """``engine`` with its ASR batches counted (the pipeline is unchanged: it calls the same method)."""
    return dataclasses.replace(engine, asr=_MeasuredAsr(engine.asr, profile, SAMPLE_RATE_HZ))


def observe_job(job) -> None:
    """A job this process just finished, from its row."""
    if job.status not in ("done", "failed") or job.started_at is None or job.finished_at is None:
        return
    m = _metrics()
    started, finished = (t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in (job.started_at, job.finished_at))
    running_s = max(0.0, (finished - started).total_seconds())
    m.jobs.labels(job.profile, job.status).inc()
    m.job_duration.labels(job.profile, job.status).observe(running_s)
    if job.status == "done" and job.duration_ms:
        audio_s = job.duration_ms / 1000
        m.audio_seconds.labels(job.profile).inc(audio_s)
        m.tenant_audio_seconds.labels(job.tenant, job.profile).inc(audio_s)
        m.processing_seconds.labels(job.profile).inc(running_s)
        m.realtime_factor.labels(job.profile).observe(running_s / audio_s)


def observe_gpu(device: str) -> None:
    """torch's view of this process's GPU memory, when it runs on CUDA and torch is loaded."""
    if not device.startswith("cuda") or "torch" not in sys.modules:
        return
    import torch  # already loaded by the model set (checked above): never loads it into a CPU worker

    if not torch.cuda.is_available():
        return
    index = torch.device(device).index or 0
    m = _metrics()
    m.gpu_memory.labels(f"cuda:{index}", "allocated").set(torch.cuda.memory_allocated(index))
    m.gpu_memory.labels(f"cuda:{index}", "reserved").set(torch.cuda.memory_reserved(index))


def collect() -> list:
    """Every pool process's samples, for the announcement."""
    return wire.to_wire(wire.registry().collect())


def install(settings, factory: Callable[[], sessionmaker]) -> None:
    """Observe each transcription task's job after it returns, in the process that ran it;
    ``factory()`` gives that process's session factory (the runtime's)."""
    @task_postrun.connect(weak=False)
    def _after_task(sender=None, args=None, retval=None, **_):
        # Only a job this attempt finished: a redelivered message for a done job returns "skipped".
        if getattr(sender, "name", None) != TRANSCRIBE or not args or retval not in ("done", "failed"):
            return
        try:
            with factory()() as session:
                job = session.get(Job, args[0])
                if job is not None:
                    observe_job(job)
            observe_gpu(settings.device)
        except Exception:  # metrics never fail a job
            log.warning("could not record the metrics of job %s", args[0], exc_info=True)

    @worker_process_shutdown.connect(weak=False)
    def _process_gone(pid=None, **_):
        from prometheus_client import multiprocess  # after PROMETHEUS_MULTIPROC_DIR is set (see _metrics)

        if os.environ.get(wire.MULTIPROC_ENV):
            multiprocess.mark_process_dead(pid or os.getpid())
