"""Media and transcripts kept only as long as the deployment, and the job, want them.

``TINGXIE_RETAIN_MEDIA_DAYS`` (or a job's shorter ``retain_media_days``) fixes when a job's media
leaves the store: ``jobs.media_expires_at``, set when the job is accepted. Once that time has
passed and the job has ended, :func:`expire_media` deletes the job's objects from the store (local
directory or S3) and records ``media_expired_at``; the transcript stays readable and
``GET …/media`` answers 410. ``TINGXIE_RETAIN_TRANSCRIPT_DAYS`` deletes a finished job whole (row,
transcript, events, media) that long after it ended, as ``DELETE /api/v1/jobs/{id}`` would.
Every worker's sweeper runs both (worker.runtime); each pass takes a bounded batch.
"""
from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from core import jobs, storage
from core.db import session_scope
from core.errors import BadOptionError
from core.models import Job
from core.options import JobOptions
from core.settings import Settings

log = logging.getLogger("tingxie.retention")

# Jobs one sweep handles at most, per kind: a backlog is worked off over several sweeps.
SWEEP_BATCH = 200


def media_expiry(settings: Settings, options: JobOptions, accepted_at: datetime) -> datetime | None:
    """When the job's media is due to leave the store; None: kept. A job may ask for less than
    the deployment keeps, never more."""
    deployment, asked = settings.retain_media_days, options.retain_media_days
    if asked is not None and deployment is not None and asked > deployment:
        raise BadOptionError(f"retain_media_days is {asked:g}; this deployment keeps media at most {deployment:g} "
                             "days (TINGXIE_RETAIN_MEDIA_DAYS)")
    days = asked if asked is not None else deployment
    return None if days is None else accepted_at + timedelta(days=days)


def expire_media(factory: sessionmaker, store: storage.MediaStore, now: datetime) -> list[str]:
    """Delete the media of ended jobs whose time has come; the ids done. A store that cannot be
    reached leaves the rest for the next sweep."""
    with session_scope(factory) as session:
        due = session.execute(
            select(Job.id).where(Job.media_expires_at <= now, Job.media_expired_at.is_(None),
                                 Job.status.in_(jobs.TERMINAL))
            .order_by(Job.media_expires_at).limit(SWEEP_BATCH)).scalars().all()
    expired = _delete_each(factory, store, due, lambda session, job_id: session.execute(
        update(Job).where(Job.id == job_id, Job.media_expired_at.is_(None)).values(media_expired_at=now)).rowcount == 1)
    if expired:
        log.info("deleted the expired media of %d jobs", len(expired))
    return expired


def expire_transcripts(factory: sessionmaker, settings: Settings, store: storage.MediaStore,
                       now: datetime) -> list[str]:
    """Delete, whole, the jobs that ended more than ``retain_transcript_days`` ago; the ids done."""
    if settings.retain_transcript_days is None:
        return []
    cutoff = now - timedelta(days=settings.retain_transcript_days)
    with session_scope(factory) as session:
        due = session.execute(
            select(Job.id).where(Job.finished_at <= cutoff, Job.status.in_(jobs.TERMINAL))
            .order_by(Job.finished_at).limit(SWEEP_BATCH)).scalars().all()
    deleted = _delete_each(factory, store, due, jobs.delete_job)
    for job_id in deleted:
        shutil.rmtree(storage.job_work_dir(settings, job_id), ignore_errors=True)
    if deleted:
        log.info("deleted %d jobs past TINGXIE_RETAIN_TRANSCRIPT_DAYS", len(deleted))
    return deleted


def _delete_each(factory: sessionmaker, store: storage.MediaStore, due: list[str], record) -> list[str]:
    """Each due job's objects out of the store, then ``record(session, job_id)`` in a transaction of its
    own (True: done); the ids done. A store that cannot be reached leaves the rest for the next sweep."""
    done = []
    for job_id in due:
        try:
            store.delete_job(job_id)
        except storage.StorageUnavailableError as exc:
            log.warning("could not delete the media of job %s: %s; will try again", job_id, exc.message)
            break
        with session_scope(factory) as session:
            if record(session, job_id):
                done.append(job_id)
    return done
