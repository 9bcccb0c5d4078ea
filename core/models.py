"""SQLAlchemy 2.0 models. The database is the source of truth for job state; Celery carries ids only."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    profile: Mapped[str] = mapped_column(String(32))
    # core.options.JobOptions.stored(): {"v": 1, "language": "auto", "itn": true, "hotwords": [[word, weight], ...]}
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    # A display name: the client's file name cleaned of paths and control characters.
    filename: Mapped[str] = mapped_column(String(512))
    media_path: Mapped[str] = mapped_column(Text)
    # What the upload probe found (media.MediaInfo.to_json()): the worker decodes with it, /media serves its type.
    media_info: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="api")
    # Higher runs first: interactive (gateway) jobs go to the interactive queue.
    priority: Mapped[int] = mapped_column(Integer, default=0)

    stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    # Bumped by every claim; a worker whose attempt is no longer current cannot write.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    warnings: Mapped[list] = mapped_column(JSON, default=list)

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set once the task message is with the broker; NULL means "send again".
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_last_status: Mapped[str | None] = mapped_column(String(64), nullable=True)
    webhook_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    # Attempts that ended with their worker lost (lease expired, or stalled); at the cap
    # (Settings.max_attempts) the job fails with worker_lost. A graceful hand-back does not count.
    lost_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The worker node (Celery's hostname) running the current attempt, so that it can hand its
    # jobs back when it shuts down.
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (Index("ix_jobs_created_at", "created_at"),)


class Transcript(Base):
    """Exactly one per job (the primary key is the job id): a redelivered job cannot write a second."""

    __tablename__ = "transcripts"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    language: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    # pipeline.types.Transcript.to_dict()
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobEvent(Base):
    """What happened to a job, in order; the push channel replays it to late watchers."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobBatch(Base):
    """One finished ASR batch of a job, so that a later attempt skips it (resume). ``key`` is the
    batch's identity, independent of the attempt: a hash of the model set, the options that change
    recognition and the batch's VAD spans (pipeline.checkpoint.batch_key). Removed when the job ends."""

    __tablename__ = "job_batches"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # pipeline.checkpoint.BatchResult.to_json()
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
