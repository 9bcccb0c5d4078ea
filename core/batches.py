"""Batches: many jobs submitted as one, with one set of options, followed, exported and ended as one.

A batch is made with its sources (links or bucket keys: each becomes a job through the one
submission path, core.submit) and is then *closed*, or made *open*, files are uploaded into it one
by one (each an ordinary job, :func:`core.submit.submit_job` with the batch as its
:class:`~core.submit.BatchEntry`), and closed by the client. Its jobs are the tenant's jobs like
any other: fair share (core.dispatch) holds and sends them with the tenant's other jobs, so a
batch of thousands waits behind nothing and stands in front of nobody else's first job.

A batch *ends* once it is closed (or canceled) and none of its jobs is queued or running. Whoever
sees that first (the worker whose job was the last, the web tier closing or canceling it, or any
worker's sweeper) marks it with one guarded UPDATE (:func:`finish_if_ended`), and only that caller
sends the batch's one webhook (``batch.completed`` or ``batch.canceled``); its jobs send none of
their own. Each check runs after its caller's own commit, so the last job to end always sees the
others ended.

:func:`transcripts_zip` streams a zip of the batch's transcripts: rows are read a page at a time and
each entry is written and handed on as it is made (Python's zipfile writing into a generator), so
memory stays flat whatever the batch's size.
"""
from __future__ import annotations

import io
import json
import logging
import posixpath
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

import contract
from core import export, jobs, webhooks
from core.db import session_scope
from core.errors import NotFoundError, TingxieError
from core.models import Batch, Job, Transcript, db_now, utcnow
from core.options import JobOptions, Source
from core.queue import DELIVER_BATCH_WEBHOOK, WEBHOOK_QUEUE
from core.settings import Settings

log = logging.getLogger("tingxie.batches")

# At most this many sources in one POST, or files uploaded into one open batch.
MAX_SOURCES = 10_000
MAX_KEY_CHARS = 512
MAX_NAME_CHARS = 200
OPEN, CLOSED, CANCELED = "open", "closed", "canceled"
ACTIVE = ("queued", "running")
ENDED = ("done", "failed", "canceled")
# Rows read at once when a whole batch is walked (export, cancel, delete).
PAGE_ROWS = 200


def new_batch_id() -> str:
    return uuid.uuid4().hex


def create(session: Session, options: JobOptions, *, tenant: str, name: str | None, open_: bool) -> Batch:
    """A batch of ``tenant`` with ``options`` already resolved (core.submit.resolve_options): open
    for uploads, or closed (its sources are added in the same request)."""
    if options.profile is None:
        raise ValueError("a batch needs resolved options (core.submit.resolve_options)")
    batch = Batch(id=new_batch_id(), tenant=tenant, name=name, state=OPEN if open_ else CLOSED,
                  profile=options.profile, options={**options.stored(), "source": options.source.value},
                  callback_url=options.callback_url, webhook_attempts=0, created_at=utcnow(),
                  closed_at=None if open_ else utcnow())
    session.add(batch)
    session.flush()
    return batch


def job_options(batch: Batch) -> JobOptions:
    """What each job of the batch runs with: the batch's options, without its webhook (the batch
    sends one webhook when it ends; its jobs send none)."""
    return JobOptions.from_record(batch.options, profile=batch.profile, callback_url=None,
                                  source=batch.options.get("source", Source.API.value), priority=0)


def load(session: Session, batch_id: str, can_see) -> Batch:
    """The batch, if ``can_see(tenant)``; anyone else's is "no such batch" too."""
    batch = session.get(Batch, batch_id)
    if batch is None or not can_see(batch.tenant):
        raise NotFoundError(f"no batch {batch_id}")
    return batch


def lock_open(session: Session, batch_id: str, tenant: str) -> None:
    """In the transaction that inserts a job into the batch: the batch is the tenant's and still
    open (its row locked on PostgreSQL, so a close or cancel waits for the insert, or the insert
    sees it closed)."""
    query = select(Batch.state, Batch.tenant).where(Batch.id == batch_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = session.execute(query).one_or_none()
    if row is None or row.tenant != tenant:
        raise NotFoundError(f"no batch {batch_id}")
    if row.state != OPEN:
        raise TingxieError(f"batch {batch_id} is {row.state}: no more files can be added to it", code="batch_closed")


def job_with_key(session: Session, batch_id: str, key: str) -> Job | None:
    return session.execute(select(Job).where(Job.batch_id == batch_id, Job.batch_key == key)).scalar_one_or_none()


def close(session: Session, batch: Batch) -> bool:
    """open -> closed: no more files come; False when it was not open."""
    return session.execute(update(Batch).where(Batch.id == batch.id, Batch.state == OPEN)
                           .values(state=CLOSED, closed_at=utcnow())).rowcount == 1


def cancel(factory: sessionmaker[Session], batch_id: str) -> tuple[bool, str]:
    """Cancel the batch and every job of it still queued or running (core.jobs.cancel, as a job's
    own cancel does), a page at a time. (whether it was canceled now, its tenant)."""
    with session_scope(factory) as session:
        tenant = session.get(Batch, batch_id).tenant
        changed = session.execute(update(Batch).where(Batch.id == batch_id, Batch.state != CANCELED,
                                                      Batch.finished_at.is_(None))
                                  .values(state=CANCELED, closed_at=func.coalesce(Batch.closed_at, utcnow()))
                                  ).rowcount == 1
    while True:
        with session_scope(factory) as session:
            ids = session.execute(select(Job.id).where(Job.batch_id == batch_id, Job.status.in_(ACTIVE))
                                  .limit(PAGE_ROWS)).scalars().all()
            for job_id in ids:
                jobs.cancel(session, job_id)
        if not ids:
            return changed, tenant


def delete(factory: sessionmaker[Session], batch_id: str) -> list[str]:
    """Remove the batch and its jobs (core.jobs.delete_job; the caller has canceled what was
    running, and removes the returned jobs' files after this commits)."""
    deleted: list[str] = []
    while True:
        with session_scope(factory) as session:
            ids = session.execute(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.id)
                                  .limit(PAGE_ROWS)).scalars().all()
            for job_id in ids:
                if not jobs.delete_job(session, job_id):  # it was queued again meanwhile: cancel, then delete
                    jobs.cancel(session, job_id)
                    jobs.delete_job(session, job_id)
            deleted.extend(ids)
        if not ids:
            break
    with session_scope(factory) as session:
        session.execute(Batch.__table__.delete().where(Batch.id == batch_id))
    return deleted


# --- where a batch stands ------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    """A batch's jobs by status, and its audio: ``done_ms`` of finished audio (a failed or
    canceled job's counts as finished: nothing is left to do of it), ``running_ms`` the share of
    running jobs' audio already transcribed."""

    by_status: dict[str, int]
    total_ms: int = 0
    done_ms: float = 0.0
    running_ms: float = 0.0
    first_started_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def ended(self) -> int:
        return sum(self.by_status.get(status, 0) for status in ENDED)

    def progress(self) -> float:
        """0..1 over the batch's audio (by job count while durations are unknown)."""
        if self.total_ms > 0:
            return min(1.0, (self.done_ms + self.running_ms) / self.total_ms)
        return self.ended / self.total if self.total else 0.0

    def eta_s(self, now: datetime) -> float | None:
        """Seconds until the last job ends at the rate the batch has gone so far; None before any
        audio is transcribed."""
        processed = self.done_ms + self.running_ms
        if self.first_started_at is None or processed <= 0 or self.total_ms <= 0:
            return None
        started = self.first_started_at if self.first_started_at.tzinfo else self.first_started_at.replace(
            tzinfo=timezone.utc)
        elapsed_s = max((now - started).total_seconds(), 0.001)
        return round(max(self.total_ms - processed, 0.0) / (processed / elapsed_s), 1)


def counts(session: Session, batch_ids: list[str]) -> dict[str, Counts]:
    """Each batch's :class:`Counts`, in one grouped query."""
    if not batch_ids:
        return {}
    duration = func.coalesce(Job.duration_ms, 0)
    rows = session.execute(
        select(Job.batch_id, Job.status, func.count(), func.sum(duration), func.sum(duration * Job.progress),
               func.min(Job.started_at))
        .where(Job.batch_id.in_(batch_ids)).group_by(Job.batch_id, Job.status)).all()
    acc: dict[str, dict] = {batch_id: {"by_status": {}, "total_ms": 0, "done_ms": 0.0, "running_ms": 0.0,
                                       "first_started_at": None} for batch_id in batch_ids}
    for batch_id, status, count, total_ms, progressed_ms, started in rows:
        entry = acc[batch_id]
        entry["by_status"][status] = count
        entry["total_ms"] += int(total_ms or 0)
        if status in ENDED:
            entry["done_ms"] += float(total_ms or 0)
        elif status == "running":
            entry["running_ms"] += float(progressed_ms or 0)
        if started is not None and status != "queued":
            first = entry["first_started_at"]
            entry["first_started_at"] = started if first is None or _aware(started) < _aware(first) else first
    return {batch_id: Counts(**entry) for batch_id, entry in acc.items()}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def status_of(batch: Batch) -> str:
    """``open`` (taking files), ``running`` (closed, jobs left), ``completed`` or ``canceled``."""
    if batch.state == CANCELED:
        return "canceled"
    if batch.state == OPEN:
        return "open"
    return "completed" if batch.finished_at is not None else "running"


# --- its end, and its one webhook --------------------------------------------------------------
def _nothing_active(batch_id):
    return ~exists().where(Job.batch_id == batch_id, Job.status.in_(ACTIVE))


def finish_if_ended(session: Session, batch_id: str) -> bool:
    """Mark the batch ended if it is closed or canceled and none of its jobs is queued or running.
    True for the one caller that marked it (it sends the webhook: :func:`announce`)."""
    return session.execute(
        update(Batch).where(Batch.id == batch_id, Batch.state != OPEN, Batch.finished_at.is_(None),
                            _nothing_active(batch_id))
        .values(finished_at=db_now()).execution_options(synchronize_session=False)).rowcount == 1


def finish_ended(session: Session) -> list[str]:
    """Every batch that has ended and is not marked yet (the sweeper's pass: a job failed by the
    lease, a signal lost to a crash); the ids this caller marked."""
    candidates = session.execute(
        select(Batch.id).where(Batch.state != OPEN, Batch.finished_at.is_(None), _nothing_active(Batch.id))
    ).scalars().all()
    return [batch_id for batch_id in candidates if finish_if_ended(session, batch_id)]


def end_check(services, batch_ids) -> list[str]:
    """After a commit that ended jobs of these batches: mark each that has ended, and send its
    webhook. The ids marked."""
    marked = []
    for batch_id in dict.fromkeys(b for b in batch_ids if b):
        with session_scope(services.db) as session:
            if not finish_if_ended(session, batch_id):
                continue
            callback = session.execute(select(Batch.callback_url).where(Batch.id == batch_id)).scalar_one()
        marked.append(batch_id)
        log.info("batch %s ended", batch_id)
        if callback:
            announce(services, batch_id)
    return marked


def announce(services, batch_id: str) -> None:
    """Send the batch's webhook delivery task (every worker consumes the webhook queue)."""
    try:
        services.queue.send(DELIVER_BATCH_WEBHOOK, [batch_id], queue=WEBHOOK_QUEUE)
    except Exception:  # the broker is down: the sweeper cannot resend it (the batch is marked), so say so
        log.error("could not send batch %s's webhook task; its webhook is not delivered", batch_id, exc_info=True)


def summary(batch: Batch, batch_counts: Counts) -> dict:
    """What the webhook carries, and the core of the API's batch."""
    return {
        "id": batch.id,
        "name": batch.name,
        "status": status_of(batch),
        "total": batch_counts.total,
        "counts": {status: batch_counts.by_status.get(status, 0) for status in (*ACTIVE, *ENDED)},
        "created_at": _iso(batch.created_at),
        "closed_at": _iso(batch.closed_at),
        "finished_at": _iso(batch.finished_at),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _aware(value).isoformat()


def deliver(settings: Settings, factory: sessionmaker[Session], batch_id: str) -> webhooks.Delivery | None:
    """One delivery attempt of an ended batch's webhook (core.webhooks.post: signed, its target
    checked), recorded on the batch. None: nothing to do (no callback, not ended, delivered, out
    of attempts, or another attempt holds it)."""
    with session_scope(factory) as session:
        batch = session.get(Batch, batch_id)
        if batch is None or not batch.callback_url or batch.finished_at is None:
            return None
        if batch.webhook_delivered_at is not None or batch.webhook_attempts >= webhooks.MAX_ATTEMPTS:
            return None
        seen = batch.webhook_attempts
        claimed = session.execute(
            update(Batch).where(Batch.id == batch_id, Batch.webhook_attempts == seen,
                                Batch.webhook_delivered_at.is_(None))
            .values(webhook_attempts=seen + 1).execution_options(synchronize_session=False)).rowcount
        if claimed != 1:
            return None
        event = "batch.canceled" if batch.state == CANCELED else "batch.completed"
        body = {"event": event, "batch": {**summary(batch, counts(session, [batch_id])[batch_id]), "links": {
            "self": f"/api/v1/batches/{batch_id}",
            "transcripts": f"/api/v1/batches/{batch_id}/transcripts.zip"}}}
        url, attempt = batch.callback_url, seen + 1
    result = webhooks.post(settings, url, json.dumps(body, ensure_ascii=False).encode(),
                           {webhooks.EVENT_HEADER: event, webhooks.DELIVERY_HEADER: f"{batch_id}.{attempt}"})
    with session_scope(factory) as session:
        values: dict = {"webhook_last_status": result.status}
        if result.ok:
            values["webhook_delivered_at"] = utcnow()
        session.execute(update(Batch).where(Batch.id == batch_id).values(**values))
    if not result.ok and attempt >= webhooks.MAX_ATTEMPTS:
        return webhooks.Delivery(False, result.status, retry=False)
    return result


# --- the transcripts as one zip ----------------------------------------------------------------
class _Chunks(io.RawIOBase):
    """A write-only, unseekable file whose bytes are taken out as they are written: zipfile then
    writes each entry's sizes after its data (a data descriptor), and never seeks back."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def entry_stem(job_key: str | None, filename: str) -> str:
    """An entry's path in the zip, without extension: the job's key in the batch (a relative path)
    or its file name, as a clean relative path (no ``..``, no root, no backslashes)."""
    raw = (job_key or filename or "audio").replace("\\", "/")
    parts = [part for part in raw.split("/") if part not in ("", ".", "..")]
    path = posixpath.join(*parts) if parts else "audio"
    stem, _ext = posixpath.splitext(path)
    return stem or path


def transcripts_zip(factory: sessionmaker[Session], batch_id: str, formats: tuple[str, ...],
                    limits: export.SubtitleLimits | None = None) -> Iterator[bytes]:
    """The batch's finished transcripts, each in every one of ``formats`` (``<key or file
    stem>.<format>``), and ``jobs.jsonl``: one line per job with its status, error and entries.
    Read a page of rows at a time and yielded as each entry is written: memory does not grow with
    the batch (but for one name per job, to keep entry names unique)."""
    sink = _Chunks()
    names: set[str] = set()
    index = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)
    after = ""
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        while True:
            with session_scope(factory) as session:
                rows = session.execute(
                    select(Job.id, Job.status, Job.filename, Job.batch_key, Job.error_code, Job.error_message,
                           Transcript.data)
                    .outerjoin(Transcript, and_(Transcript.job_id == Job.id, Job.status == "done"))
                    .where(Job.batch_id == batch_id, Job.id > after).order_by(Job.id).limit(PAGE_ROWS)).all()
            if not rows:
                break
            after = rows[-1].id
            for row in rows:
                entries = []
                if row.data is not None:
                    transcript = contract.Transcript.from_dict(row.data)  # as every renderer reads it
                    stem = entry_stem(row.batch_key, row.filename)
                    if any(f"{stem}.{fmt}" in names for fmt in formats):
                        stem = f"{stem}-{row.id}"
                    for fmt in formats:
                        name = f"{stem}.{fmt}"
                        names.add(name)
                        archive.writestr(name, export.render(transcript, fmt, limits))
                        entries.append(name)
                        yield sink.take()
                error = {"code": row.error_code, "message": row.error_message} if row.error_code else None
                line = {"id": row.id, "key": row.batch_key, "filename": row.filename, "status": row.status,
                        "error": error, "files": entries}
                index.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
        index.seek(0)
        with archive.open("jobs.jsonl", mode="w") as entry:
            while chunk := index.read(64 * 1024):
                entry.write(chunk)
                yield sink.take()
        index.close()
    yield sink.take()
