"""SQLAlchemy 2.0 models. The database is the source of truth for job state; Celery carries ids only."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement

import contract


def utcnow() -> datetime:
    """This host's clock: for what is only shown (when a job was created). Leases, heartbeats and
    resend ages use :class:`db_now`, the one clock every host shares."""
    return datetime.now(timezone.utc)


class db_now(FunctionElement):
    """The database server's current time, plus ``offset_s`` seconds, computed in the statement.

    Every time that one host writes and another compares (a job's heartbeat against the lease,
    when its message was sent against the resend age, a worker's announcement against the live
    window) is written and compared with this, never with a host's ``datetime.now()``: a worker
    whose clock is minutes off neither loses its healthy job nor takes another's. PostgreSQL:
    ``now()`` (the transaction's start). SQLite, which runs inside the process: its ``'now'``, in
    the text form SQLAlchemy stores datetimes in, so that stored values compare as they sort."""

    type = DateTime(timezone=True)
    inherit_cache = True
    name = "db_now"

    def __init__(self, offset_s: float = 0.0):
        super().__init__(literal(float(offset_s), Float))


@compiles(db_now)
def _db_now(element, compiler, **kw) -> str:
    return f"(now() + {compiler.process(element.clauses, **kw)} * interval '1 second')"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element, compiler, **kw) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', {offset} || ' seconds') || '000')"


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
    # The upload's key in the media store (core.storage): "<job id>/source<ext>", relative to the
    # store's root (a local directory or s3://bucket/prefix), never an absolute path.
    media_key: Mapped[str] = mapped_column(Text)
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

    # Who the job belongs to (core.access): set by the submission path from the caller's credentials;
    # every read of the job, its transcript, media, events and webhook is limited to this tenant.
    tenant: Mapped[str] = mapped_column(String(64), server_default="local", default="local")
    # Attempts that ended with their worker lost (lease expired, or stalled); at the cap
    # (Settings.max_attempts) the job fails with worker_lost. A graceful hand-back does not count.
    lost_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The worker node (Celery's hostname) running the current attempt, so that it can hand its
    # jobs back when it shuts down.
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # What a running attempt waits for before it can go on ("media store unavailable"), or None.
    waiting_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Retention (core.retention): when the media is due to leave the store (NULL: kept for ever),
    # and when the sweeper deleted it (the transcript stays readable).
    media_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    media_expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The batch the job was submitted in (core.batches), and its key there: the client's name for
    # the item (a file's relative path), unique within the batch, so a resumed upload adds no twin.
    batch_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("batches.id", ondelete="SET NULL", name="fk_jobs_batch_id"), nullable=True)
    batch_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # A job submitted by link (core.sources): the http(s) or s3:// URL its worker fetches into the
    # media store before the first attempt decodes it (media_info is NULL until then).
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Delivery to options.output_url (core.delivery): the last outcome, and when every format was written.
    output_last_status: Mapped[str | None] = mapped_column(String(128), nullable=True)
    output_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_tenant_status", "tenant", "status"),
        Index("ix_jobs_media_expires_at", "media_expires_at"),
        Index("ix_jobs_finished_at", "finished_at"),
        Index("ix_jobs_batch_id_status", "batch_id", "status"),
        Index("uq_jobs_batch_key", "batch_id", "batch_key", unique=True),
    )


class Batch(Base):
    """Many jobs submitted as one, with one set of options (core.batches). ``state``: ``open``
    (files are still being uploaded into it), ``closed`` (no more jobs come; it ends when its jobs
    have), ``canceled``. ``finished_at`` is set once, by whoever sees its last job end, and that
    caller sends the batch's one webhook."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    profile: Mapped[str] = mapped_column(String(32))
    # core.options.JobOptions.stored(), resolved once at creation: every job of the batch runs with them.
    options: Mapped[dict] = mapped_column(JSON)
    # Where the batch's one webhook goes (its jobs send none of their own).
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_last_status: Mapped[str | None] = mapped_column(String(64), nullable=True)
    webhook_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_batches_tenant_created_at", "tenant", "created_at"),)


class Transcript(Base):
    """Exactly one per job (the primary key is the job id): a redelivered job cannot write a second."""

    __tablename__ = "transcripts"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    language: Mapped[str] = mapped_column(String(16))
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    # contract.Transcript.to_dict(): the stored form, versioned ("v"); rows of every earlier
    # version stay as they were written and are read by read().
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @classmethod
    def of(cls, job_id: str, transcript: contract.Transcript) -> "Transcript":
        """The row that stores ``transcript`` for ``job_id``."""
        return cls(job_id=job_id, language=transcript.language, duration_ms=transcript.duration_ms,
                   text=transcript.text, data=transcript.to_dict(), created_at=utcnow())

    def read(self) -> contract.Transcript:
        """The stored transcript, whatever version wrote it: what every renderer reads."""
        return contract.Transcript.from_dict(self.data)


class JobEvent(Base):
    """What happened to a job, in order; the push channel replays it to late watchers."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WorkerRecord(Base):
    """A running worker process, announced by its own heartbeat (core.workers): which profiles it
    serves, so the web tier can tell a job that no live worker will take; and the worker's own
    metrics, so one /metrics shows the whole fleet without a scrape target per worker host."""

    __tablename__ = "workers"

    # Celery's node name, "tingxie-<pid>@<host>": unique per process.
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    profiles: Mapped[list] = mapped_column(JSON, default=list)
    device: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # Prometheus samples of the worker's own metrics at its last heartbeat (core.metrics_wire).
    metrics: Mapped[list | None] = mapped_column(JSON, nullable=True)


class Token(Base):
    """An API token, a page session or a one-time sign-in code (core.tokens). Only a hash of the
    secret is stored; ``id`` is the short public part shown by ``tingxie tokens list``."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    # "api" (Authorization: Bearer), "session" (the page's cookie), "signin" (one-time, exchanged for a session)
    kind: Mapped[str] = mapped_column(String(16))
    # SHA-256 (hex) of the whole token string.
    secret_hash: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # A session's token: revoking a token ends the sessions signed in with it.
    parent_id: Mapped[str | None] = mapped_column(String(16), ForeignKey("tokens.id", ondelete="CASCADE"),
                                                  nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


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
