"""The event channel: what happened to a job, in order.

Every event is a ``job_events`` row written in the same transaction as the state change it
describes, so the database alone can replay a job's history (the embedded default reads it
from there). When ``events_url`` (Redis) is configured, each committed event is also published
on ``tingxie:job:<id>`` so that watchers hear it at once.
"""
from __future__ import annotations

import json
import time
from typing import Iterator

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import JobEvent, utcnow

_PENDING = "tingxie_pending_events"
_URL = "tingxie_events_url"


def channel(job_id: str) -> str:
    return f"tingxie:job:{job_id}"


def publish(session: Session, job_id: str, type_: str, data: dict) -> JobEvent:
    """Record an event in the caller's transaction; Redis hears it after commit."""
    row = JobEvent(job_id=job_id, type=type_, data=data, created_at=utcnow())
    session.add(row)
    session.flush()
    session.info.setdefault(_PENDING, []).append(row)
    return row


def as_message(row: JobEvent) -> dict:
    return {"id": row.id, "job_id": row.job_id, "type": row.type, "data": row.data, "at": row.created_at.isoformat()}


def attach(factory: sessionmaker, events_url: str) -> None:
    """Make sessions from ``factory`` fan committed events out to Redis (when a URL is given)."""
    factory.kw.setdefault("info", {})[_URL] = events_url

    @sa_event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        rows = session.info.pop(_PENDING, [])
        url = session.info.get(_URL)
        if rows and url:
            client = _redis(url)
            for row in rows:
                client.publish(channel(row.job_id), json.dumps(as_message(row)))

    @sa_event.listens_for(factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)


_clients: dict[str, object] = {}


def _redis(url: str):
    import redis

    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url)
    return client


def history(session: Session, job_id: str, after_id: int = 0) -> list[dict]:
    rows = session.execute(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id).order_by(JobEvent.id)
    ).scalars()
    return [as_message(r) for r in rows]


def listen(factory: sessionmaker, job_id: str, *, after_id: int = 0, poll_s: float = 0.25,
           timeout_s: float | None = None) -> Iterator[dict]:
    """Yield the job's events after ``after_id`` as they are committed, from the database."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while deadline is None or time.monotonic() < deadline:
        with factory() as session:
            batch = history(session, job_id, after_id)
        for message in batch:
            after_id = message["id"]
            yield message
        if not batch:
            time.sleep(poll_s)
