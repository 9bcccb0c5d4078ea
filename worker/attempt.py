"""One attempt at a job, watched from a thread of its own, so that a long model call cannot starve
it: liveness and progress to the database, and the four ways an attempt is stopped before it
ends on its own: the job was canceled (or handed to another worker), it ran past its time limit,
it made no progress for ``stall_s``, or its worker is shutting down (the job was handed back).

A stop lands at once where the pipeline calls back (decoding every half second, VAD and ASR at
each step): :meth:`Watch.progress` raises :class:`StopAttempt`. A model call that does not come
back within :data:`STOP_GRACE_S` cannot be interrupted from Python; in a prefork pool process the
watch then ends the process (the pool starts another, which loads its models after it reports
ready), so a stopped job never keeps a worker busy until its current ASR batch ends.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.orm import sessionmaker

from core import jobs
from core.db import session_scope

log = logging.getLogger("tingxie.worker")

# How long a stopped attempt's pipeline may take to come back before its process is ended.
STOP_GRACE_S = 1.0
# The database is told about the attempt at least this often (a cancel is seen within it).
BEAT_S = 0.5


class StopAttempt(Exception):
    """Raised into the pipeline: this attempt must stop (``reason``: see :class:`Watch`)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Snapshot:
    stage: str | None = None
    fraction: float | None = None
    changed: bool = False


@dataclass(frozen=True)
class Limits:
    """What an attempt may take: ``time_limit_s`` in all (then it fails with ``timeout``),
    ``stall_s`` without progress (then it ends and counts as lost), ``max_attempts`` lost
    attempts before the job fails."""

    time_limit_s: float
    stall_s: float
    max_attempts: int
    lease_s: float


class Watch:
    """Heartbeat, progress, and the stops. ``reason`` once stopped: ``lost`` (canceled, deleted,
    handed back or handed to another worker), ``timeout`` (the job failed with ``timeout``),
    ``stalled`` (the attempt was ended; ``stall_outcome`` is ``queued`` or ``failed``).

    ``on_kill``: called just before the process is ended (remove the attempt's scratch files);
    None: never end the process (a thread pool's process runs other jobs too).
    """

    def __init__(self, factory: sessionmaker, job_id: str, attempt: int, limits: Limits,
                 on_kill: Callable[[], None] | None = None, on_requeue: Callable[[], None] | None = None):
        self.factory, self.job_id, self.attempt, self.limits = factory, job_id, attempt, limits
        self.on_kill, self.on_requeue = on_kill, on_requeue
        self.interval_s = max(0.1, min(BEAT_S, limits.lease_s / 4))
        self.reason: str | None = None
        self.stall_outcome: str | None = None
        self._started = time.monotonic()
        self._advanced = self._started
        self._last: tuple | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pipeline_done = threading.Event()
        self._stopping_since: float | None = None
        self._waiting_since: float | None = None
        self._lock = threading.Lock()
        self._snap = _Snapshot()
        self._thread = threading.Thread(target=self._loop, name=f"watch-{job_id}", daemon=True)

    def start(self) -> "Watch":
        self._thread.start()
        return self

    # --- the job's thread ----------------------------------------------------------------
    def progress(self, stage: str, fraction: float) -> None:
        """The pipeline's progress callback; raises StopAttempt to stop the pipeline."""
        if self.reason is not None:
            raise StopAttempt(self.reason)
        with self._lock:
            new_stage = stage != self._snap.stage
            self._snap = _Snapshot(stage, fraction, True)
            if (stage, fraction) != self._last:
                self._last = (stage, fraction)
                self._advanced = time.monotonic()
        if new_stage:
            self._wake.set()  # a stage change is written at once; fractions at most once a beat

    def waiting(self, reason: str | None) -> None:
        """The attempt waits for something outside the job (``reason``, shown with the job: the
        media store is down), or goes on (None). Neither the time limit nor the stall clock runs
        while it waits; the heartbeat goes on, so the job stays this attempt's."""
        now = time.monotonic()
        with self._lock:
            if (reason is None) == (self._waiting_since is None):
                return
            if reason is None:
                self._started += now - self._waiting_since
                self._advanced = now
                self._waiting_since = None
            else:
                self._waiting_since = now
        try:
            with session_scope(self.factory) as session:
                ours = jobs.set_waiting(session, self.job_id, self.attempt, reason)
        except Exception:  # shown late or not at all; the wait itself goes on
            log.warning("could not record what job %s waits for", self.job_id, exc_info=True)
            return
        if not ours and self.reason is None:
            self._begin_stop("lost")

    def pause(self, seconds: float) -> None:
        """Sleep between tries at something the attempt waits for; raises StopAttempt as soon as
        the attempt is stopped (canceled, handed back)."""
        deadline = time.monotonic() + seconds
        while self.reason is None and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, self.interval_s))
        if self.reason is not None:
            raise StopAttempt(self.reason)

    def pipeline_done(self) -> None:
        """The pipeline came back (with a result or not): from here on the attempt is only writing
        its outcome, which is neither timed nor stopped; the heartbeat goes on."""
        self._pipeline_done.set()

    def stop(self) -> None:
        self._pipeline_done.set()
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    # --- the watch's thread --------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.beat()
            if not self._pipeline_done.is_set():
                self._enforce()

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
        if not ok and self.reason is None:
            self._begin_stop("lost")

    def _enforce(self) -> None:
        now = time.monotonic()
        if self._waiting_since is not None:
            return
        if self.reason is None and now - self._started > self.limits.time_limit_s:
            self._time_out()
        if self.reason is None and now - self._advanced > self.limits.stall_s:
            self._stalled()
        if self._stopping_since is not None and now - self._stopping_since > STOP_GRACE_S:
            self._kill()

    def _time_out(self) -> None:
        limit = self.limits.time_limit_s
        message = (f"The job ran longer than its limit of {limit:.0f} s and was stopped (the limit grows with the "
                   "file's duration: TINGXIE_JOB_TIME_BASE_S + TINGXIE_JOB_TIME_FACTOR seconds per second of audio).")
        try:
            with session_scope(self.factory) as session:
                failed = jobs.fail(session, self.job_id, self.attempt, "timeout", message)
        except Exception:
            log.warning("could not fail job %s on its time limit; will try again", self.job_id, exc_info=True)
            return
        log.warning("job %s attempt %d: past its time limit of %.0f s; failed", self.job_id, self.attempt, limit)
        self._begin_stop("timeout" if failed else "lost")

    def _stalled(self) -> None:
        try:
            with session_scope(self.factory) as session:
                outcome = jobs.end_stalled(session, self.job_id, self.attempt, self.limits.stall_s,
                                           self.limits.max_attempts)
        except Exception:
            log.warning("could not end stalled job %s; will try again", self.job_id, exc_info=True)
            return
        log.warning("job %s attempt %d: no progress for %.0f s; attempt ended (job %s)", self.job_id, self.attempt,
                    self.limits.stall_s, outcome or "no longer ours")
        self.stall_outcome = outcome
        self._begin_stop("stalled" if outcome else "lost")
        if outcome == jobs.QUEUED and self.on_requeue is not None:
            try:
                self.on_requeue()
            except Exception:  # the sweeper sends it later
                log.warning("could not re-send stalled job %s", self.job_id, exc_info=True)

    def _begin_stop(self, reason: str) -> None:
        self.reason = reason
        self._stopping_since = time.monotonic()
        log.info("job %s attempt %d: stopping (%s)", self.job_id, self.attempt, reason)

    def _kill(self) -> None:
        if self.on_kill is None or self._pipeline_done.is_set():
            return
        log.warning("job %s attempt %d: the pipeline did not stop within %.1f s (it is inside a model call); "
                    "ending this worker process so that the work stops now (the pool starts another)",
                    self.job_id, self.attempt, STOP_GRACE_S)
        try:
            self.on_kill()
            kill_child_groups()
        finally:
            for handler in logging.getLogger().handlers + log.handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def kill_child_groups() -> None:
    """Kill the process group of each child that leads one (ffmpeg runs in a session of its own):
    the kernel's parent-death signal reaches only the direct child, not what it started."""
    me = os.getpid()
    children: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:  # not Linux
        return
    for task in tasks:
        try:
            with open(f"/proc/{me}/task/{task}/children") as fh:
                children.update(int(pid) for pid in fh.read().split())
        except OSError:
            continue
    for child in children:
        try:
            if os.getpgid(child) == child:
                os.killpg(child, signal.SIGKILL)
        except ProcessLookupError:
            continue
