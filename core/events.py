"""The event channel: what happened to a job, in order.

Every event is a ``job_events`` row written in the same transaction as the state change it
describes, so the database alone can replay a job's history (the embedded default reads it
from there). When ``events_url`` (Redis) is configured, each committed event is also published
on ``tingxie:job:<id>`` so that watchers hear it at once.
"""
from __future__ import annotations

import json
import logging

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
            import redis

            try:
                client = _redis(url)
                for row in rows:
                    client.publish(channel(row.job_id), json.dumps(as_message(row)))
            except redis.RedisError:
                # The rows are committed; watchers that miss the live message read them from the database.
                log.warning("could not publish %d job event(s) to Redis", len(rows), exc_info=True)

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


TERMINAL_TYPES = frozenset({"done", "failed", "canceled"})


class AsyncJobWatcher:
    """Lets an asyncio server wait for many jobs to end at the price of one Redis subscription
    (when ``events_url`` is set) and one database query per ``sweep_s`` for all of them.

    The sweep alone is correct (it reads the jobs' status); Redis only makes the answer prompt.
    """

    def __init__(self, factory: sessionmaker, events_url: str = "", *, sweep_s: float | None = None):
        self.factory = factory
        self.events_url = events_url
        self.sweep_s = sweep_s if sweep_s is not None else (5.0 if events_url else 0.5)
        self._waiting: dict[str, list] = {}
        self._tasks: list = []

    async def start(self) -> None:
        import asyncio

        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="tingxie-job-sweep"))
        if self.events_url:
            self._tasks.append(asyncio.create_task(self._redis_loop(), name="tingxie-job-redis"))

    async def close(self) -> None:
        import asyncio

        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for futures in self._waiting.values():
            for future in futures:
                future.cancel()
        self._waiting.clear()

    @property
    def watched(self) -> int:
        return len(self._waiting)

    async def wait_finished(self, job_id: str) -> str:
        """The job's terminal status (done, failed or canceled), once it has one."""
        import asyncio

        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(job_id, []).append(future)
        try:
            return await future
        finally:
            futures = self._waiting.get(job_id, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiting.pop(job_id, None)

    def _resolve(self, job_id: str, status: str) -> None:
        for future in self._waiting.get(job_id, []):
            if not future.done():
                future.set_result(status)

    async def _sweep_loop(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(self.sweep_s)
            ids = list(self._waiting)
            if ids:
                for job_id, status in await asyncio.to_thread(self._finished, ids):
                    self._resolve(job_id, status)

    def _finished(self, ids: list[str]) -> list[tuple[str, str]]:
        from core.models import Job

        found: list[tuple[str, str]] = []
        with self.factory() as session:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                found.extend(session.execute(
                    select(Job.id, Job.status).where(Job.id.in_(chunk), Job.status.in_(TERMINAL_TYPES))
                ).all())
        return found

    async def _redis_loop(self) -> None:
        import asyncio
        import logging

        import redis.asyncio as aredis
        from redis.exceptions import RedisError

        while True:
            client = aredis.Redis.from_url(self.events_url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(channel("*"))
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None:
                        continue
                    event = json.loads(message["data"])
                    if event.get("type") in TERMINAL_TYPES:
                        self._resolve(event["job_id"], event["type"])
            except (RedisError, OSError):
                logging.getLogger("tingxie.events").warning(
                    "lost the Redis event channel; the database sweep carries on", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                await pubsub.aclose()
                await client.aclose()
