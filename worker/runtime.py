"""What one worker process holds: settings, a database session factory, and one model set per
profile, loaded once. ``run_job`` is the whole life of a job on a worker."""
from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker

from core import dispatch, jobs, storage
from core.db import session_scope
from core.errors import TingxieError
from core.models import Job
from core.options import JobOptions
from core.queue import DELIVER_WEBHOOK, WEBHOOK_QUEUE, QueueClient
from core.services import Services
from core.settings import Settings
from media import MediaInfo
from worker.engines import load_engine_for, transcribe_options
from worker.metrics import measured

log = logging.getLogger("tingxie.worker")


class JobLostError(Exception):
    """This attempt no longer owns the job (canceled, deleted or handed to another worker)."""


@dataclass
class _Snapshot:
    stage: str | None = None
    fraction: float | None = None
    changed: bool = False


class Heartbeat:
    """Reports liveness and progress from a thread, so a long model call cannot starve it; writes
    each new stage at once and fractions about once a second."""

    def __init__(self, factory: sessionmaker, job_id: str, attempt: int, lease_s: float):
        self.factory, self.job_id, self.attempt = factory, job_id, attempt
        self.interval_s = max(0.2, min(1.0, lease_s / 4))
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._snap = _Snapshot()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id}", daemon=True)

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def progress(self, stage: str, fraction: float) -> None:
        """The pipeline's progress callback; raises JobLostError to abort the pipeline."""
        if self.lost.is_set():
            raise JobLostError(self.job_id)
        with self._lock:
            new_stage = stage != self._snap.stage
            self._snap = _Snapshot(stage, fraction, True)
        if new_stage:
            self._wake.set()  # a stage change is written at once; fractions at most once a beat

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.beat()

    def beat(self) -> None:
        with self._lock:
            snap, self._snap = self._snap, _Snapshot(self._snap.stage, self._snap.fraction, False)
        try:
            with session_scope(self.factory) as session:
                ok = jobs.report_progress(
                    session, self.job_id, self.attempt,
                    snap.stage if snap.changed else None,
                    snap.fraction if snap.changed else None,
                )
        except Exception:  # the database may blip; the lease absorbs a few missed beats
            log.warning("heartbeat for job %s failed", self.job_id, exc_info=True)
            return
        if not ok:
            self.lost.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._pid: int | None = None
        self._services: Services | None = None
        self._services_lock = threading.Lock()
        self._engines: dict[str, object] = {}
        self._engines_lock = threading.Lock()  # threads of one worker load a model set once

    @property
    def services(self) -> Services:
        """Per process: a forked child must not reuse its parent's connections."""
        with self._services_lock:
            if self._services is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._services = Services.start(self.settings)
            return self._services

    @property
    def factory(self) -> sessionmaker:
        return self.services.db

    @property
    def queue(self) -> QueueClient:
        return self.services.queue

    def engine(self, profile: str):
        """The model set for a profile, loaded on first use and kept for the process's life."""
        with self._engines_lock:
            engine = self._engines.get(profile)
            if engine is None:
                engine = measured(load_engine_for(self.settings, profile), profile)
                self._engines[profile] = engine
            return engine

    def run_job(self, job_id: str) -> str:
        from pipeline import transcribe
        from pipeline.errors import MediaError, PipelineError

        with session_scope(self.factory) as session:
            attempt = jobs.claim(session, job_id)
        if attempt is None:
            log.info("job %s is not claimable (done, running elsewhere, canceled or gone); skipping", job_id)
            return "skipped"
        with session_scope(self.factory) as session:
            job = session.get(Job, job_id)
            session.expunge(job)
            options = jobs.options_of(job)
        log.info("job %s attempt %d: %s", job_id, attempt, job.filename)
        heartbeat = Heartbeat(self.factory, job_id, attempt, self.settings.job_lease_s).start()
        work_dir = storage.job_work_dir(self.settings, job_id)
        outcome = "failed"
        try:
            engine = self.engine(options.profile)
            work_dir.mkdir(parents=True, exist_ok=True)
            # From object storage the upload is copied into this host's scratch and decoded there;
            # the probe stored with the job spares a second probe.
            with self.services.store.local_copy(job.media_key, work_dir) as media_path:
                result = transcribe(
                    media_path,
                    transcribe_options(options),
                    engine,
                    work_dir=work_dir,
                    on_progress=lambda p: heartbeat.progress(p.stage, p.fraction),
                    max_duration_ms=int(self.settings.max_duration_s * 1000),
                    ffmpeg=self.settings.ffmpeg or None,
                    media_info=MediaInfo.from_dict(job.media_info) if job.media_info else None,
                )
        except JobLostError:
            log.info("job %s attempt %d lost its claim; stopped", job_id, attempt)
            return "lost"
        except (PipelineError, MediaError, TingxieError) as exc:  # TingxieError: the store (gone, unreachable)
            log.info("job %s failed: %s: %s", job_id, exc.code, exc.message)
            self._finish(lambda s: jobs.fail(s, job_id, attempt, exc.code, exc.message))
        except Exception as exc:
            log.exception("job %s crashed", job_id)
            self._finish(lambda s: jobs.fail(
                s, job_id, attempt, "internal_error",
                f"the transcription crashed ({type(exc).__name__}: {exc}); the worker logs have details",
            ))
        else:
            data = result.to_dict()
            if self._finish(lambda s: jobs.complete(s, job_id, attempt, data, warnings=result.warnings)):
                outcome = "done"
            else:
                outcome = "lost"
        finally:
            heartbeat.stop()
            shutil.rmtree(work_dir, ignore_errors=True)
        if options.callback_url and outcome in ("done", "failed"):
            # Its own queue, which every worker consumes: a delivery waits behind no transcription.
            self.queue.send(DELIVER_WEBHOOK, [job_id], queue=WEBHOOK_QUEUE)
        self._send_held(job.tenant)
        return outcome

    def _send_held(self, tenant: str) -> None:
        """A job of ``tenant`` ended (or this attempt lost it): its slot is free for a held job."""
        try:
            dispatch.pump(self.services, [tenant])
        except Exception:  # the sweeper sends it on its next pass
            log.warning("could not send tenant %s's held jobs now; the sweeper will", tenant, exc_info=True)

    def _finish(self, write) -> bool:
        with session_scope(self.factory) as session:
            return write(session)

    def sweep(self) -> list[str]:
        """Hand stale running jobs back to the queue, then send the queued jobs not sent yet (held
        by fair share, released here, or accepted while the broker was down) that have room."""
        with session_scope(self.factory) as session:
            released = jobs.release_stale(session, self.settings.job_lease_s)
        for job_id in released:
            log.info("job %s lost its worker; queued again", job_id)
        return dispatch.pump(self.services)


class Sweeper(threading.Thread):
    def __init__(self, runtime: Runtime):
        super().__init__(name="tingxie-sweeper", daemon=True)
        self.runtime = runtime
        self.interval_s = max(1.0, runtime.settings.job_lease_s / 3)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.runtime.sweep()
            except Exception:
                log.warning("sweep failed; will try again", exc_info=True)
            self.stopped.wait(self.interval_s)


_runtime: Runtime | None = None


def configure(settings: Settings) -> Runtime:
    global _runtime
    _runtime = Runtime(settings)
    return _runtime


def current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("worker runtime not configured: start workers with `tingxie worker`")
    return _runtime

