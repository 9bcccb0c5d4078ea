"""The job state machine: queued -> running -> done | failed | canceled.

Every transition is one conditional UPDATE, so two workers (or a worker and a user cancelling)
racing on one job cannot both win. A claim bumps ``attempt``; a worker writes only while its
attempt is current and the job is still ``running``, so a stale worker cannot overwrite a
newer one's work.
"""
from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

import contract
from contract import Stage
from core import events
from core.errors import BadOptionError
from core.models import Job, JobBatch, JobEvent, Transcript, db_now, utcnow
from core.options import JobOptions


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"


QUEUED, RUNNING, DONE, FAILED, CANCELED = JobStatus
STATUSES = tuple(JobStatus)
TERMINAL = frozenset({DONE, FAILED, CANCELED})


def new_job_id() -> str:
    return uuid.uuid4().hex


def create_job(session: Session, **fields) -> Job:
    """A queued job of ``tenant`` with resolved ``options`` (see core.submit), and its first event.
    It is held until :func:`core.dispatch.pump` sends it (``enqueued_at`` stays NULL until then).
    ``fields`` are :func:`new_job`'s."""
    job = new_job(**fields)
    add_jobs(session, [job])
    return job


def new_job(
    *,
    job_id: str,
    options: JobOptions,
    media_key: str,
    filename: str,
    size_bytes: int,
    duration_ms: int | None,
    media_info: dict | None = None,
    tenant: str = "local",
    media_expires_at: datetime | None = None,
    created_at: datetime | None = None,
    batch_id: str | None = None,
    batch_key: str | None = None,
    source_url: str | None = None,
) -> Job:
    """A queued job, not yet in any session: :func:`add_jobs` inserts it."""
    if options.profile is None:
        raise ValueError("create_job needs resolved options (a profile); use core.submit.submit_job")
    return Job(
        id=job_id,
        status=QUEUED,
        profile=options.profile,
        options=options.stored(),
        filename=filename,
        media_key=media_key,
        media_info=media_info,
        size_bytes=size_bytes,
        duration_ms=duration_ms,
        source=options.source.value,
        priority=options.priority,
        callback_url=options.callback_url,
        tenant=tenant,
        media_expires_at=media_expires_at,
        batch_id=batch_id,
        batch_key=batch_key,
        source_url=source_url,
        progress=0.0,
        attempt=0,
        warnings=[],
        created_at=created_at or utcnow(),
    )


def add_jobs(session: Session, new: list[Job]) -> None:
    """Insert jobs made by :func:`new_job` and each one's first event, in the caller's transaction:
    one flush for the jobs and one for their events (multi-row INSERTs), however many there are
    (a batch's thousands of links)."""
    session.add_all(new)
    session.flush()
    events.publish_many(session, [(job.id, QUEUED, {"status": QUEUED}) for job in new])


def options_of(job: Job) -> JobOptions:
    """The job's options as they were stored at submission."""
    return JobOptions.from_record(
        job.options, profile=job.profile, callback_url=job.callback_url, source=job.source, priority=job.priority
    )


def mark_enqueued(session: Session, job_id: str) -> None:
    session.execute(update(Job).where(Job.id == job_id, Job.status == QUEUED).values(enqueued_at=db_now()))


def hold(session: Session, job_id: str) -> None:
    """A queued job whose task could not be sent: marked not sent, for :func:`core.dispatch.pump`."""
    session.execute(update(Job).where(Job.id == job_id, Job.status == QUEUED).values(enqueued_at=None))


def claim(session: Session, job_id: str, worker: str | None = None) -> int | None:
    """queued -> running. Returns the new attempt number, or None when the job is not claimable
    (already running elsewhere, finished, canceled, deleted): redelivery is then a no-op.
    ``worker`` names the worker node, which hands the job back if it shuts down (:func:`hand_back`)."""
    now = db_now()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == QUEUED)
        .values(
            status=RUNNING,
            attempt=Job.attempt + 1,
            started_at=now,
            heartbeat_at=now,
            stage=Stage.DECODE,
            progress=0.0,
            error_code=None,
            error_message=None,
            worker=worker,
            waiting_reason=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    attempt = session.execute(select(Job.attempt).where(Job.id == job_id)).scalar_one()
    events.publish(session, job_id, RUNNING, {"status": RUNNING, "stage": Stage.DECODE, "progress": 0.0, "attempt": attempt})
    return attempt


def _mine(job_id: str, attempt: int):
    return (Job.id == job_id, Job.attempt == attempt, Job.status == RUNNING)


def report_progress(session: Session, job_id: str, attempt: int, stage: str | None, progress: float | None) -> bool:
    """Heartbeat, with stage/progress when given. False: this attempt lost the job (canceled,
    deleted, or handed to another worker) and should stop."""
    values: dict = {"heartbeat_at": db_now()}
    if stage is not None:
        values["stage"] = stage
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    result = session.execute(update(Job).where(*_mine(job_id, attempt)).values(**values))
    if result.rowcount != 1:
        return False
    if progress is not None:
        events.publish(session, job_id, "progress", {"status": RUNNING, "stage": stage, "progress": values["progress"]})
    return True


def set_waiting(session: Session, job_id: str, attempt: int, reason: str | None) -> bool:
    """A running attempt waits for something outside the job (``reason``, shown as the job's
    ``waiting_reason``), or goes on (None). False: this attempt no longer holds the job."""
    result = session.execute(update(Job).where(*_mine(job_id, attempt)).values(waiting_reason=reason))
    if result.rowcount != 1:
        return False
    events.publish(session, job_id, "waiting", {"status": RUNNING, "waiting_reason": reason})
    return True


def set_media(session: Session, job_id: str, attempt: int, *, size_bytes: int, duration_ms: int | None,
              media_info: dict) -> bool:
    """A job by link whose worker has fetched, probed and stored its media: what the probe found,
    as an upload's job has it from submission. False: this attempt no longer holds the job."""
    result = session.execute(update(Job).where(*_mine(job_id, attempt)).values(
        size_bytes=size_bytes, duration_ms=duration_ms, media_info=media_info))
    return result.rowcount == 1


def complete(
    session: Session,
    job_id: str,
    attempt: int,
    transcript: contract.Transcript | dict,
    *,
    warnings: list[str] | None = None,
) -> bool:
    """running -> done together with the transcript, in the caller's single transaction. The
    transcript is stored in the contract's stored form, at its current version (a dict is read
    as a stored transcript of any version first); ``warnings`` (default: the transcript's) go on the job.

    Also from ``queued`` while the attempt is still the latest: the job was handed back, or
    released while the database was unreachable, and nobody has claimed it since, so the result
    this attempt holds is still the job's (a claim bumps ``attempt`` and fences it out)."""
    if isinstance(transcript, dict):
        transcript = contract.Transcript.from_dict(transcript)
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt == attempt, Job.status.in_([RUNNING, QUEUED]))
        .values(
            status=DONE,
            progress=1.0,
            stage=None,
            finished_at=db_now(),
            duration_ms=transcript.duration_ms,
            warnings=list(transcript.warnings if warnings is None else warnings),
        )
    )
    if result.rowcount != 1:
        return False
    session.add(Transcript.of(job_id, transcript))
    _forget_batches(session, job_id)
    events.publish(session, job_id, DONE, {"status": DONE, "progress": 1.0})
    return True


def fail(session: Session, job_id: str, attempt: int | None, code: str, message: str, *,
         only_queued: bool = False) -> bool:
    """-> failed. ``attempt`` None fails a job that was never claimed (e.g. refused by the gateway);
    ``only_queued`` leaves it alone if a worker has claimed it meanwhile."""
    if attempt is not None:
        conditions = _mine(job_id, attempt)
    else:
        conditions = (Job.id == job_id, Job.status == QUEUED if only_queued else Job.status.in_([QUEUED, RUNNING]))
    result = session.execute(
        update(Job)
        .where(*conditions)
        .values(status=FAILED, stage=None, finished_at=db_now(), error_code=code, error_message=message)
    )
    if result.rowcount != 1:
        return False
    _forget_batches(session, job_id)
    events.publish(session, job_id, FAILED, {"status": FAILED, "error": {"code": code, "message": message}})
    return True


def cancel(session: Session, job_id: str) -> bool:
    """queued|running -> canceled. A running worker sees it at its next heartbeat and stops."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_([QUEUED, RUNNING]))
        .values(status=CANCELED, stage=None, finished_at=db_now())
    )
    if result.rowcount != 1:
        return False
    _forget_batches(session, job_id)
    events.publish(session, job_id, CANCELED, {"status": CANCELED})
    return True


def delete_job(session: Session, job_id: str) -> bool:
    """Only finished jobs are deleted; the caller removes the files after commit."""
    session.execute(delete(Transcript).where(Transcript.job_id == job_id))
    session.execute(delete(JobEvent).where(JobEvent.job_id == job_id))
    _forget_batches(session, job_id)
    result = session.execute(delete(Job).where(Job.id == job_id, Job.status.in_(TERMINAL)))
    return result.rowcount == 1


def _lost_message(lost: int, cause: str) -> str:
    return (
        f"{lost} attempts at this job ended without a result, the last because {cause}; it was not tried "
        "again (TINGXIE_MAX_ATTEMPTS). A damaged or unusual file can crash or hang a decoder or a model: "
        "converting it (e.g. to 16 kHz mono FLAC) may help; the worker logs say more."
    )


def _lose(session: Session, conditions, job_id: str, max_attempts: int, cause: str, code: str,
          reason: str) -> str | None:
    """Count a lost attempt: back to ``queued`` (returns "queued"), or, when the attempts are
    used up, ``failed`` with ``code`` (returns "failed"). None when ``conditions`` no longer hold."""
    lost = session.execute(select(Job.lost_attempts).where(*conditions)).scalar_one_or_none()
    if lost is None:
        return None
    lost += 1
    if lost >= max_attempts:
        message = _lost_message(lost, cause)
        result = session.execute(
            update(Job).where(*conditions)
            .values(status=FAILED, stage=None, finished_at=db_now(), lost_attempts=lost,
                    error_code=code, error_message=message)
        )
        if result.rowcount != 1:
            return None
        _forget_batches(session, job_id)
        events.publish(session, job_id, FAILED, {"status": FAILED, "error": {"code": code, "message": message}})
        return FAILED
    result = session.execute(
        update(Job).where(*conditions)
        .values(status=QUEUED, stage=None, progress=0.0, enqueued_at=None, lost_attempts=lost)
    )
    if result.rowcount != 1:
        return None
    events.publish(session, job_id, QUEUED, {"status": QUEUED, "reason": reason, "lost_attempts": lost})
    return QUEUED


def release_stale(session: Session, lease_s: float, *, max_attempts: int = 3,
                  failed: list[str] | None = None) -> list[str]:
    """running jobs whose worker stopped reporting -> queued again (returned, to be re-sent), or
    failed with ``worker_lost`` once ``max_attempts`` attempts were lost (a job that kills its
    worker every time must not be retried forever; appended to ``failed``).

    This is what makes an accepted job survive a ``kill -9`` of its worker whatever the broker
    does with the unacknowledged message. The lease is measured on the database's clock, on which
    heartbeats are written: a worker's clock being off changes nothing."""
    cutoff = db_now(-lease_s)
    stale = session.execute(
        select(Job.id).where(Job.status == RUNNING, Job.heartbeat_at < cutoff)
    ).scalars().all()
    released = []
    for job_id in stale:
        conditions = (Job.id == job_id, Job.status == RUNNING, Job.heartbeat_at < cutoff)
        cause = f"its worker stopped reporting for {lease_s:g} s (killed, out of memory, or its machine went down)"
        outcome = _lose(session, conditions, job_id, max_attempts, cause, "worker_lost", "worker lost; retrying")
        if outcome == QUEUED:
            released.append(job_id)
        elif outcome == FAILED and failed is not None:
            failed.append(job_id)
    return released


def end_stalled(session: Session, job_id: str, attempt: int, stall_s: float, max_attempts: int) -> str | None:
    """The worker ends its own attempt that made no progress for ``stall_s``: counted as a lost
    attempt; "queued" (to be re-sent), "failed" (``timeout``, attempts used up) or None (not ours)."""
    cause = f"neither the decoder nor a model made progress for {stall_s:g} s (TINGXIE_STALL_S)"
    return _lose(session, _mine(job_id, attempt), job_id, max_attempts, cause, "timeout",
                 f"no progress for {stall_s:g} s; retrying")


def hand_back(session: Session, worker: str) -> list[str]:
    """A worker that shuts down gives its running jobs back at once (returned, to be re-sent), so
    another worker continues them without waiting for the lease. Not counted as lost: nothing
    went wrong with the job. The attempt stays, so that the old worker can still deliver a
    result it finishes before anyone claims the job again, but cannot write anything else."""
    ids = session.execute(select(Job.id).where(Job.status == RUNNING, Job.worker == worker)).scalars().all()
    handed = []
    for job_id in ids:
        result = session.execute(
            update(Job).where(Job.id == job_id, Job.status == RUNNING, Job.worker == worker)
            .values(status=QUEUED, stage=None, enqueued_at=None)
        )
        if result.rowcount == 1:
            events.publish(session, job_id, QUEUED, {"status": QUEUED, "reason": "handed back: its worker is shutting down"})
            handed.append(job_id)
    return handed


def requeue(session: Session, job_id: str, attempt: int, reason: str) -> bool:
    """running -> queued: the attempt could not go on for a reason of its host, not of the job
    (its scratch disk filled up); not counted as lost. False: this attempt no longer holds the job."""
    result = session.execute(
        update(Job).where(*_mine(job_id, attempt)).values(status=QUEUED, stage=None, enqueued_at=None)
    )
    if result.rowcount != 1:
        return False
    events.publish(session, job_id, QUEUED, {"status": QUEUED, "reason": reason})
    return True


def lost_messages(session: Session, older_than_s: float) -> list[str]:
    """Queued jobs whose task was sent more than ``older_than_s`` ago and never claimed, each
    taken for re-sending by this caller: the message may be lost (FLUSHALL, a broker failover), or
    waiting behind a backlog. Each is claimed with a guarded UPDATE that moves its ``enqueued_at``
    to now only if it is still that old, so of every sweeper that sees a lost job (every worker
    runs one) exactly one re-sends it per ``older_than_s``, with no lock held across hosts. A
    duplicate message would be harmless (a claim is a conditional UPDATE), but 50 workers sending
    every lost job 50 times is a storm."""
    cutoff = db_now(-older_than_s)
    stale = session.execute(
        select(Job.id).where(Job.status == QUEUED, Job.enqueued_at.is_not(None), Job.enqueued_at < cutoff)
    ).scalars().all()
    taken = []
    for job_id in stale:
        result = session.execute(
            update(Job).where(Job.id == job_id, Job.status == QUEUED, Job.enqueued_at < cutoff)
            .values(enqueued_at=db_now()).execution_options(synchronize_session=False))
        if result.rowcount == 1:
            taken.append(job_id)
    return taken


MAX_SPEAKER_NAME_CHARS = 64


def rename_speakers(session: Session, job_id: str, names: dict[str, str | None]) -> list[dict]:
    """Give a finished, diarized transcript's speakers names (None clears one); every export then
    uses them. Returns the speakers list. BadOptionError for an unknown id, a bad name, or a
    transcript without speakers; the caller checks that the job exists and is done."""
    transcript = session.get(Transcript, job_id)
    speakers = (transcript.data or {}).get("speakers") if transcript is not None else None
    if speakers is None:
        raise BadOptionError("this job was not diarized: its transcript has no speakers to name", code="bad_speakers")
    known = {speaker["id"] for speaker in speakers}
    unknown = sorted(set(names) - known)
    if unknown:
        raise BadOptionError(f"no speaker {', '.join(unknown)} in this transcript; it has {', '.join(sorted(known))}",
                             code="bad_speakers")
    cleaned: dict[str, str | None] = {}
    for speaker_id, name in names.items():
        if name is not None:
            name = " ".join(name.split())
            if len(name) > MAX_SPEAKER_NAME_CHARS or any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
                raise BadOptionError(f"the name for {speaker_id} must be at most {MAX_SPEAKER_NAME_CHARS} printable "
                                     "characters", code="bad_speakers")
        cleaned[speaker_id] = name or None
    renamed = [{**speaker, "name": cleaned.get(speaker["id"], speaker.get("name"))} for speaker in speakers]
    transcript.data = {**transcript.data, "speakers": renamed}  # a new value: the JSON column sees the change
    return renamed


def save_batch(session: Session, job_id: str, attempt: int, key: str, data: dict) -> bool:
    """Keep a finished ASR batch of the attempt that owns the job (resume). False: not ours any more."""
    owned = session.execute(update(Job).where(*_mine(job_id, attempt)).values(heartbeat_at=db_now()))
    if owned.rowcount != 1:
        return False
    if session.get(JobBatch, (job_id, key)) is None:
        session.add(JobBatch(job_id=job_id, key=key, data=data, created_at=utcnow()))
    return True


def finished_batches(session: Session, job_id: str) -> dict[str, dict]:
    """The ASR batches earlier attempts at the job finished, by key."""
    return {row.key: row.data for row in session.execute(select(JobBatch).where(JobBatch.job_id == job_id)).scalars()}


def _forget_batches(session: Session, job_id: str) -> None:
    """A job that ends needs its kept batches no more."""
    session.execute(delete(JobBatch).where(JobBatch.job_id == job_id))
