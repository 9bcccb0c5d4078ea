"""What one worker process holds: settings, a database session factory, and one model set per
profile, loaded once. ``run_job`` is the whole life of a job on a worker; the sweeper, run by
every worker, puts back what a lost worker or a lost message left behind."""
from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import shutil
import threading
import time

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import sessionmaker
from tenacity import Retrying, retry_if_exception_type, stop_before_delay, wait_exponential_jitter

from contract import Stage
from core import batches, dispatch, fetch, jobs, retention, sources, storage, workers
from core.db import session_scope
from core.errors import TingxieError
from core.models import Batch, Job, utcnow
from core.queue import DELIVER_OUTPUT, DELIVER_WEBHOOK, WEBHOOK_QUEUE, QueueClient
from core.services import Services
from core.settings import PROFILES, Settings
from core.submit import check_media
from media import MediaInfo, ScratchFullError, pcm_bytes
from pipeline import transcribe
from pipeline.errors import MediaError, PipelineError
from worker.attempt import Limits, StopAttempt, Watch
from worker.checkpoints import SqlCheckpoint, scope_of
from worker.engines import load_engine_for, transcribe_options
from worker.metrics import measured
from worker.startup import LoadGuard, guarded

log = logging.getLogger("tingxie.worker")

# The database is unreachable: these are retried while a worker holds a finished result.
UNREACHABLE = (OperationalError, InterfaceError)
FINAL_WRITE_BACKOFF_S = (0.5, 30.0)
# First and longest wait between tries at reading a job's media from a store that is down.
STORE_BACKOFF_S = (1.0, 10.0)
# What a running job shows (waiting_reason) while its worker waits out the media store.
STORE_WAIT = "media store unavailable"


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._pid: int | None = None
        self._services: Services | None = None
        self._services_lock = threading.Lock()
        self._engines: dict[str, object] = {}
        self._engines_lock = threading.Lock()  # threads of one worker load a model set once
        # Set by the Celery app: shared by a prefork pool's processes (worker.startup).
        self.load_guard: LoadGuard | None = None
        # True in a prefork pool process: a stopped attempt stuck in a model call ends the process.
        self.may_end_process = False
        # Set when the worker shuts down; shared with the pool's processes (made before they fork).
        self.stopping = multiprocessing.get_context("fork").RawValue("b", 0)
        # job id -> scratch bytes free when an attempt at it here ran out of space: this process
        # takes the job again only with more room than that (another worker is preferred).
        self._ran_out: dict[str, int] = {}
        self._aborted_at = float("-inf")  # when this process last aborted the store's unfinished uploads
        self._retained_at = float("-inf")  # when this process last applied retention

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
        """The model set for a profile, loaded on first use and kept for the process's life; a
        caller arriving while it loads waits for it."""
        with self._engines_lock:
            engine = self._engines.get(profile)
            if engine is None:
                log.info("loading the %s model set", profile)
                began = time.monotonic()
                engine = measured(guarded(self.load_guard, lambda: load_engine_for(self.settings, profile)), profile)
                log.info("loaded the %s model set in %.1f s", profile, time.monotonic() - began)
                self._engines[profile] = engine
            return engine

    def run_job(self, job_id: str, worker: str | None = None) -> str:
        """Claim, transcribe, write the outcome. Returns what happened: done, failed, skipped (not
        claimable, or no room in this host's scratch), lost (canceled or handed on meanwhile), timeout,
        stalled, requeued (the scratch filled up: another worker is preferred)."""
        with session_scope(self.factory) as session:
            queued = session.execute(select(Job.profile, Job.duration_ms, Job.size_bytes).where(
                Job.id == job_id, Job.status == jobs.QUEUED)).one_or_none()
        if queued is None:
            log.info("job %s is not claimable (done, running elsewhere, canceled or gone); skipping", job_id)
            return "skipped"
        profile = queued.profile
        free_bytes = self._scratch_free_bytes()
        needed_bytes = self.scratch_needed_bytes(job_id, queued.duration_ms, queued.size_bytes)
        if free_bytes is not None and free_bytes < needed_bytes:
            log.warning("job %s needs about %d MiB of scratch (its decoded audio plus TINGXIE_SCRATCH_MARGIN_MB); "
                        "%s has %d MiB free: left for another worker (the sweeper sends it again)", job_id,
                        needed_bytes // 1024**2, self.settings.scratch_dir, free_bytes // 1024**2)
            return "skipped"
        # The models first, then the claim: a slow load, or a process that dies loading, costs the job no attempt.
        engine = load_error = None
        try:
            engine = self.engine(profile)
        except Exception as exc:  # the job fails with it below, naming what to do
            load_error = exc
        if self.stopping.value:
            # The worker began shutting down while this job waited for the models: another takes it.
            self._send([job_id], "not started: its worker is shutting down")
            return "skipped"
        with session_scope(self.factory) as session:
            attempt = jobs.claim(session, job_id, worker)
        if attempt is None:
            log.info("job %s was claimed, canceled or removed meanwhile; skipping", job_id)
            return "skipped"
        with session_scope(self.factory) as session:
            job = session.get(Job, job_id)
            session.expunge(job)
            options = jobs.options_of(job)
        log.info("job %s attempt %d: %s", job_id, attempt, job.filename)
        # One folder an attempt: a stopped attempt removing its scratch files must not take the next one's.
        work_dir = storage.job_work_dir(self.settings, job_id) / f"attempt-{attempt}"
        watch = Watch(
            self.factory, job_id, attempt,
            Limits(time_limit_s=self.settings.time_limit_s(profile, _transcribed_ms(job, options)), stall_s=self.settings.stall_s,
                   max_attempts=self.settings.max_attempts, lease_s=self.settings.job_lease_s),
            on_kill=(lambda: shutil.rmtree(work_dir, ignore_errors=True)) if self.may_end_process else None,
            on_requeue=lambda: self.services.enqueue(job_id, profile=job.profile, priority=job.priority),
        ).start()
        outcome = "failed"
        try:
            if load_error is not None:
                raise load_error
            work_dir.mkdir(parents=True, exist_ok=True)
            if job.source_url and job.media_info is None:
                self._ingest(job, attempt, work_dir, watch)
            # From object storage the upload is copied into this host's scratch and decoded there;
            # the probe stored with the job spares a second probe.
            with self._fetched(job.media_key, work_dir, watch) as media_path:
                result = transcribe(
                    media_path,
                    transcribe_options(options),
                    engine,
                    work_dir=work_dir,
                    on_progress=lambda p: watch.progress(p.stage, p.fraction),
                    max_duration_ms=int(self.settings.max_duration_s * 1000),
                    ffmpeg=self.settings.ffmpeg or None,
                    media_info=MediaInfo.from_dict(job.media_info) if job.media_info else None,
                    checkpoint=SqlCheckpoint(self.factory, job_id, attempt, scope_of(engine.identity)),
                )
        except StopAttempt as stop:
            watch.pipeline_done()
            log.info("job %s attempt %d stopped: %s", job_id, attempt, stop.reason)
            outcome = {"timeout": "timeout", "stalled": "stalled"}.get(stop.reason, "lost")
        except ScratchFullError as exc:
            watch.pipeline_done()
            self._ran_out[job_id] = max(self._ran_out.get(job_id, 0), free_bytes or 0)
            log.warning("job %s attempt %d: %s; queued again for a worker with room", job_id, attempt, exc.message)
            if self._write(job_id, lambda s: jobs.requeue(s, job_id, attempt, "scratch_full: " + exc.message)):
                self._send([job_id], "queued again (scratch full)")
            outcome = "requeued"
        except (PipelineError, MediaError, TingxieError) as exc:  # TingxieError: the store (gone, unreachable)
            watch.pipeline_done()
            log.info("job %s failed: %s: %s", job_id, exc.code, exc.message)
            self._write(job_id, lambda s: jobs.fail(s, job_id, attempt, exc.code, exc.message))
        except Exception as exc:
            watch.pipeline_done()
            log.exception("job %s crashed", job_id)
            self._write(job_id, lambda s: jobs.fail(
                s, job_id, attempt, "internal_error",
                f"the transcription crashed ({type(exc).__name__}: {exc}); the worker logs have details",
            ))
        else:
            watch.pipeline_done()
            outcome = "done" if self._complete(job_id, attempt, result) else "lost"
        finally:
            watch.stop()
            shutil.rmtree(work_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                work_dir.parent.rmdir()  # unless another attempt is using it
        ended = outcome in ("done", "failed", "timeout") or (outcome == "stalled" and watch.stall_outcome == jobs.FAILED)
        if options.callback_url and ended:
            self._deliver_webhook(job_id)
        if options.output_url and outcome == "done":
            self.queue.send(DELIVER_OUTPUT, [job_id], queue=WEBHOOK_QUEUE)
        if job.batch_id and ended:
            self._batch_ended(job.batch_id)
        if outcome != "lost":
            self._send_held(job.tenant)
        return outcome

    def _ingest(self, job: Job, attempt: int, work_dir, watch: Watch) -> None:
        """A job by link: fetch its media (core.fetch, which stops one over the size or duration cap
        as bytes arrive; the tenant's sources checked again, as the deployment may have changed them
        since submission), probe it with the upload's caps, put it in the media store, and record
        what the probe found, as an upload's job has it. A later attempt finds it stored (media_info
        set) and does not fetch again."""
        sources.check_source(job.source_url, job.tenant, self.settings.tenant_sources)
        limit = self.settings.max_upload_bytes
        watch.progress(Stage.FETCH, 0.0)
        path = fetch.fetch(self.settings, job.source_url, work_dir / "fetched.part",
                           lambda received, total: watch.progress(Stage.FETCH, received / (total or limit)))
        try:
            size, info = check_media(self.settings, path, job.filename)
            self.services.store.put(path, job.media_key, content_type=info.mime_type or "application/octet-stream")
        finally:
            path.unlink(missing_ok=True)
        media_info = info.to_dict()
        with session_scope(self.factory) as session:
            ours = jobs.set_media(session, job.id, attempt, size_bytes=size, duration_ms=info.duration_ms,
                                  media_info=media_info)
        if not ours:
            raise StopAttempt("lost")
        log.info("job %s: fetched %s (%d bytes)", job.id, fetch.short_url(job.source_url), size)
        job.size_bytes, job.duration_ms, job.media_info = size, info.duration_ms, media_info

    def scratch_needed_bytes(self, job_id: str, duration_ms: int | None, size_bytes: int) -> int:
        """Scratch a job takes here: its decoded audio (16 kHz s16le, about 115 MB an hour, from
        the stored duration), the copy of its upload when the store is remote, plus the margin;
        more than the room an attempt here ran out of."""
        needed = pcm_bytes(duration_ms or 0) + (size_bytes if self.settings.object_storage else 0)
        return max(needed, self._ran_out.get(job_id, -1) + 1) + self.settings.scratch_margin_bytes

    def _scratch_free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.settings.scratch_dir).free
        except OSError:  # not made yet: the attempt makes it, or says why it cannot
            return None

    @contextlib.contextmanager
    def _fetched(self, key: str, work_dir, watch: Watch):
        """The job's media as a local file. A store that cannot be reached is tried again with
        backoff (tenacity) for up to ``settings.store_retry_s``, the job meanwhile running with
        waiting_reason "media store unavailable" (no attempt counted); then the job fails
        ``store_unavailable``. A scratch disk that fills up during the copy is ``scratch_full``."""
        store = self.services.store
        bound_s = self.settings.store_retry_s

        def wait_out(state) -> None:
            log.warning("job %s: %s; trying again in %.1f s (waiting up to %.0f s in all, TINGXIE_STORE_RETRY_S)",
                        watch.job_id, state.outcome.exception(), state.upcoming_sleep, bound_s)
            watch.waiting(STORE_WAIT)

        initial, most = STORE_BACKOFF_S
        retrying = Retrying(retry=retry_if_exception_type(storage.StorageUnavailableError),
                            stop=stop_before_delay(bound_s), wait=wait_exponential_jitter(initial, most),
                            sleep=watch.pause, before_sleep=wait_out, reraise=True)
        with contextlib.ExitStack() as stack:
            try:
                path = retrying(lambda: stack.enter_context(store.local_copy(key, work_dir)))
            except storage.StorageUnavailableError as exc:
                raise TingxieError(f"The media store could not be read for {bound_s:g} s (TINGXIE_STORE_RETRY_S): "
                                   f"{exc.message}. The file is still stored; submit it again once the store is back.",
                                   code="store_unavailable") from None
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                raise ScratchFullError(f"The scratch disk ran out of space copying the file from the media store "
                                       f"({work_dir}); the file itself is not at fault.") from None
            finally:
                watch.waiting(None)
            yield path

    def _deliver_webhook(self, job_id: str) -> None:
        # Its own queue, which every worker consumes: a delivery waits behind no transcription.
        self.queue.send(DELIVER_WEBHOOK, [job_id], queue=WEBHOOK_QUEUE)

    def _batch_ended(self, batch_id: str) -> None:
        """This job may have been its batch's last: if so the batch is marked ended and its webhook sent."""
        try:
            batches.end_check(self.services, [batch_id])
        except Exception:  # the sweeper marks it on its next pass
            log.warning("could not check whether batch %s has ended; the sweeper will", batch_id, exc_info=True)

    def _send_held(self, tenant: str) -> None:
        """A job of ``tenant`` ended (or went back to the queue): its slot is free for a held job."""
        try:
            dispatch.pump(self.services, [tenant])
        except Exception:  # the sweeper sends it on its next pass
            log.warning("could not send tenant %s's held jobs now; the sweeper will", tenant, exc_info=True)

    def _complete(self, job_id: str, attempt: int, result) -> bool:
        """The transcript and ``done``, held and retried while the database is unreachable. A
        commit whose answer was lost is found done on the next try, and counts as written."""
        tries = 0

        def write(session) -> bool:
            nonlocal tries
            tries += 1
            if jobs.complete(session, job_id, attempt, result):
                return True
            if tries == 1:
                return False
            row = session.execute(select(Job.status, Job.attempt).where(Job.id == job_id)).one_or_none()
            return row is not None and row.status == jobs.DONE and row.attempt == attempt

        return self._write(job_id, write)

    def _write(self, job_id: str, write) -> bool:
        """One transaction, retried with backoff while the database is unreachable, for up to
        ``settings.db_retry_s``: an attempt's outcome is never dropped because the database blinked."""
        deadline = time.monotonic() + self.settings.db_retry_s
        delay, most = FINAL_WRITE_BACKOFF_S
        while True:
            try:
                with session_scope(self.factory) as session:
                    return write(session)
            except UNREACHABLE:
                if time.monotonic() + delay > deadline:
                    log.error("job %s: the database stayed unreachable for %.0f s (TINGXIE_DB_RETRY_S); "
                              "the outcome of this attempt is dropped and the job runs again", job_id,
                              self.settings.db_retry_s, exc_info=True)
                    return False
                log.warning("job %s: the database is unreachable; holding the outcome, trying again in %.1f s",
                            job_id, delay)
                time.sleep(delay)
                delay = min(most, delay * 2)

    def hand_back(self, worker: str) -> list[str]:
        """This worker node is shutting down: its running jobs go back to the queue now, and are
        sent again, so another worker continues them (from their last finished batch) at once."""
        self.stopping.value = 1
        with session_scope(self.factory) as session:
            ids = jobs.hand_back(session, worker)
        self._send(ids, "handed back")
        return ids

    def _send(self, ids: list[str], why: str) -> None:
        if not ids:
            return
        with session_scope(self.factory) as session:
            routes = {row.id: row for row in session.execute(
                select(Job.id, Job.profile, Job.priority).where(Job.id.in_(ids)))}
        for job_id in ids:
            route = routes.get(job_id)
            if route is None:
                continue
            if self.services.enqueue(job_id, profile=route.profile, priority=route.priority):
                log.info("job %s %s: sent to the queue again", job_id, why)
            else:  # the broker is down: held, so that the next sweep's pump sends it once it is back
                with session_scope(self.factory) as session:
                    jobs.hold(session, job_id)

    def sweep(self) -> list[str]:
        """Put back what faults left behind: running jobs whose worker stopped reporting (each one
        a lost attempt, up to the cap) go back to the queue and, with the jobs not sent yet (held
        by fair share, or accepted while the broker was down), are sent as their tenants' slots
        allow (core.dispatch); queued jobs of a profile no worker has served for
        TINGXIE_NO_WORKER_S fail with no_worker (core.workers); queued jobs whose message was sent
        long ago and not claimed (a lost message) are sent again; batches whose last job ended unseen
        are marked ended (and their webhook sent); and the data directory is tidied."""
        settings = self.settings
        failed: list[str] = []
        with session_scope(self.factory) as session:
            released = jobs.release_stale(session, settings.job_lease_s, max_attempts=settings.max_attempts,
                                          failed=failed)
            lost = jobs.lost_messages(session, settings.resend_bound_s)
            failed += workers.fail_unserved(session, settings.no_worker_s, PROFILES)
            callbacks = session.execute(select(Job.id).where(Job.id.in_(failed), Job.callback_url.is_not(None))
                                        ).scalars().all() if failed else []
        for job_id in callbacks:
            self._deliver_webhook(job_id)
        with session_scope(self.factory) as session:
            ended = batches.finish_ended(session)
            announced = session.execute(select(Batch.id).where(Batch.id.in_(ended), Batch.callback_url.is_not(None))
                                        ).scalars().all() if ended else []
        for batch_id in announced:
            batches.announce(self.services, batch_id)
        for job_id in released:
            log.info("job %s lost its worker; queued again", job_id)
        sent = dispatch.pump(self.services)
        self._send(lost, f"queued over {settings.resend_bound_s:g} s since it was sent (its message may be lost)")
        self.tidy()
        return list(dict.fromkeys([*sent, *lost]))

    def tidy(self) -> None:
        """Remove upload spool files nobody writes, uploads into the store that never completed (a
        web process killed mid-upload leaves an S3 multipart upload and its parts), and the scratch
        folders of jobs that ended (a worker killed mid-job leaves its decoded audio behind; a
        queued job's next attempt reuses its folder and removes it when it ends)."""
        storage.clean_spool(self.settings, self.settings.spool_max_age_s)
        self._abort_incomplete()
        self._retain()
        folders = storage.job_work_dirs(self.settings)
        if not folders:
            return
        with session_scope(self.factory) as session:
            alive = set(session.execute(
                select(Job.id).where(Job.id.in_(list(folders)), Job.status.in_([jobs.QUEUED, jobs.RUNNING]))).scalars())
        for job_id, path in folders.items():
            if job_id not in alive:
                shutil.rmtree(path, ignore_errors=True)

    def _abort_incomplete(self) -> None:
        """At most once per ``spool_max_age_s`` (a minute at most) per process: one listing call."""
        max_age_s = self.settings.spool_max_age_s
        if time.monotonic() - self._aborted_at < min(60.0, max_age_s):
            return
        self._aborted_at = time.monotonic()
        try:
            self.services.store.abort_incomplete(max_age_s)
        except storage.StorageUnavailableError as exc:
            log.warning("could not abort the store's unfinished uploads: %s; will try again", exc.message)


    def _retain(self) -> None:
        """At most once a minute per process: expired media out of the store, expired jobs deleted
        (core.retention)."""
        if time.monotonic() - self._retained_at < 60.0:
            return
        self._retained_at = time.monotonic()
        now = utcnow()
        retention.expire_media(self.factory, self.services.store, now)
        retention.expire_transcripts(self.factory, self.settings, self.services.store, now)


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


def _transcribed_ms(job: Job, options) -> int | None:
    """The audio the attempt transcribes: the file's length, once per channel when they go apart."""
    if job.duration_ms is None:
        return None
    return job.duration_ms * options.passes((job.media_info or {}).get("channels"))
