"""The event channel: what happened to a job, in order.

Every event is a ``job_events`` row written in the same transaction as the state change it
describes, so the database alone can replay a job's history (the embedded default reads it
from there). When ``events_url`` (Redis) is configured, each committed event is also published
on ``tingxie:job:<id>`` so that watchers hear it at once: each process listens through its one
:class:`core.hub.EventHub`.
"""
from __future__ import annotations

import json
import logging

import redis
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import JobEvent, utcnow

log = logging.getLogger("tingxie.events")

_PENDING = "tingxie_pending_events"
_URL = "tingxie_events_url"


def channel(job_id: str) -> str:
    return f"tingxie:job:{job_id}"


def publish(session: Session, job_id: str, type_: str, data: dict) -> JobEvent:
    """Record an event in the caller's transaction; Redis hears it after commit."""
    return publish_many(session, [(job_id, type_, data)])[0]


def publish_many(session: Session, items: list[tuple[str, str, dict]]) -> list[JobEvent]:
    """:func:`publish` for many events (``(job_id, type, data)`` each) at once: one flush."""
    now = utcnow()
    rows = [JobEvent(job_id=job_id, type=type_, data=data, created_at=now) for job_id, type_, data in items]
    session.add_all(rows)
    session.flush()
    session.info.setdefault(_PENDING, []).extend(rows)
    return rows


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
            try:
                with _redis(url).pipeline(transaction=False) as pipe:  # one round trip for a batch's thousands
                    for row in rows:
                        pipe.publish(channel(row.job_id), json.dumps(as_message(row)))
                    pipe.execute()
            except redis.RedisError:
                # The rows are committed; watchers that miss the live message read them from the database.
                log.warning("could not publish %d job event(s) to Redis", len(rows), exc_info=True)

    @sa_event.listens_for(factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)


_clients: dict[str, redis.Redis] = {}


def _redis(url: str) -> redis.Redis:
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url)
    return client


def history(session: Session, job_id: str, after_id: int = 0) -> list[dict]:
    rows = session.execute(
        select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id).order_by(JobEvent.id)
    ).scalars()
    return [as_message(r) for r in rows]


TERMINAL_TYPES = frozenset({"done", "failed", "canceled"})
