"""One event hub per asyncio process: every coroutine of the process that follows a job (the web
tier's events sockets, its OpenAI calls waiting for their answer, the gateway's answers) listens
through it.

The database is the truth: a job's events are its ``job_events`` rows, in commit order
(:mod:`core.events`). Redis, where the deployment has it (``events_url``), only says which jobs have
news: the hub holds ONE pattern subscription (``tingxie:job:*``) for the whole process, whatever the
number of watchers, and one batched read fetches the new events of every job that had news. One
database sweep reads every watched job every ``sweep_s`` in case a publication was lost (5 s), and,
without Redis (the embedded default: SQLite), every ``poll_s`` (a quarter second). One reconnect
loop keeps the subscription; while Redis is away the sweep carries on alone.

The API (everything runs on the hub's event loop)::

    async for event in hub.events(job_id):          # in order; ends after done, failed or canceled
        ...
    end = await hub.wait_for_end(job_id, timeout_s)  # the terminal event, or None after timeout_s

``hub.watch``/``hub.unwatch`` are the lower level both are made of (the events socket uses them to
mix its own signals into a watcher's queue). An event is a dict: ``id``, ``job_id``, ``type``,
``data``, ``at`` (:func:`core.events.as_message`).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import AsyncIterator

import redis.asyncio as aredis
from redis.exceptions import RedisError
from sqlalchemy import select, union_all
from sqlalchemy.orm import sessionmaker

from core import events
from core.models import JobEvent

log = logging.getLogger("tingxie.events")

# Jobs per statement when the hub reads (one UNION ALL of per-job index lookups).
_READ_CHUNK = 100
# Seconds between two tries to subscribe again once Redis was lost.
_RECONNECT_S = 1.0


@dataclass(eq=False)
class Watch:
    """One watcher's subscription: events of ``job_id`` after ``after_id`` go to ``queue``, in order.
    Its owner may put its own signals in the queue too (the events socket's ``None``: the client left)."""

    job_id: str
    after_id: int
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


class EventHub:
    def __init__(self, factory: sessionmaker, events_url: str = "", *, poll_s: float = 0.25, sweep_s: float = 5.0):
        self.factory = factory
        self.events_url = events_url
        # Without Redis nothing says which job has news: every watched job is read every poll_s.
        self.sweep_s = sweep_s if events_url else poll_s
        self._watches: dict[str, set[Watch]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def watchers(self) -> int:
        """Open watches (sockets, waiting calls, gateway answers) in this process."""
        return sum(len(w) for w in self._watches.values())

    @property
    def watched_jobs(self) -> int:
        return len(self._watches)

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._read_loop(), name="tingxie-events-read"))
        if self.events_url:
            self._tasks.append(asyncio.create_task(self._redis_loop(), name="tingxie-events-redis"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def watch(self, job_id: str, after_id: int = 0) -> Watch:
        """Start feeding a watcher with the events of ``job_id`` after ``after_id``. The job is read
        at once, so an event committed before this call (after ``after_id``) is not missed."""
        watch = Watch(job_id, after_id)
        self._watches.setdefault(job_id, set()).add(watch)
        self._mark(job_id)
        return watch

    def unwatch(self, watch: Watch) -> None:
        watchers = self._watches.get(watch.job_id)
        if watchers is not None:
            watchers.discard(watch)
            if not watchers:
                del self._watches[watch.job_id]

    async def events(self, job_id: str, after_id: int = 0) -> AsyncIterator[dict]:
        """The job's events after ``after_id`` (0: its whole history first), in order, as they are
        committed; the iteration ends after the terminal one (done, failed or canceled). Stop early
        with ``contextlib.aclosing`` (or ``break`` inside it) so the watch ends at once."""
        watch = self.watch(job_id, after_id)
        try:
            while True:
                message = await watch.queue.get()
                yield message
                if message["type"] in events.TERMINAL_TYPES:
                    return
        finally:
            self.unwatch(watch)

    async def wait_for_end(self, job_id: str, timeout_s: float | None = None) -> dict | None:
        """The job's terminal event (done, failed or canceled), or None when ``timeout_s`` passes
        first (None: no limit). A job that has already ended answers at once."""
        watch = self.watch(job_id, 0)
        try:
            async with asyncio.timeout(timeout_s):
                while (message := await watch.queue.get())["type"] not in events.TERMINAL_TYPES:
                    pass
                return message
        except TimeoutError:
            return None
        finally:
            self.unwatch(watch)

    def _mark(self, job_id: str) -> None:
        self._dirty.add(job_id)
        self._wake.set()

    async def _read_loop(self) -> None:
        """The one database reader: the jobs Redis marked at once, every watched job at each sweep."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.sweep_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_sweep - loop.time()))
            self._wake.clear()
            if loop.time() >= next_sweep:
                jobs, next_sweep = set(self._watches), loop.time() + self.sweep_s
            else:
                jobs = self._dirty & set(self._watches)
            self._dirty.clear()
            after = {job: min(w.after_id for w in self._watches[job]) for job in jobs if job in self._watches}
            if not after:
                continue
            try:
                rows = await asyncio.to_thread(self._read, after)
            except Exception:  # the database may blip: the next sweep reads again
                log.warning("could not read job events; trying again at the next sweep", exc_info=True)
                continue
            for message in rows:
                for watch in tuple(self._watches.get(message["job_id"], ())):
                    if message["id"] > watch.after_id:
                        watch.after_id = message["id"]
                        watch.queue.put_nowait(message)

    def _read(self, after: dict[str, int]) -> list[dict]:
        """Every watched job's events after its watchers' position, in commit-id order: one
        statement per :data:`_READ_CHUNK` jobs, each job an index lookup of its own."""
        found: list[dict] = []
        items = sorted(after.items())
        with self.factory() as session:
            for start in range(0, len(items), _READ_CHUNK):
                parts = [select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id)
                         for job_id, after_id in items[start:start + _READ_CHUNK]]
                statement = parts[0] if len(parts) == 1 else select(JobEvent).from_statement(union_all(*parts))
                found.extend(events.as_message(row) for row in session.execute(statement).scalars())
        found.sort(key=lambda message: message["id"])
        return found

    async def _redis_loop(self) -> None:
        """The process's one subscription, and its one reconnect loop."""
        prefix = events.channel("")
        while True:
            client = aredis.Redis.from_url(self.events_url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(events.channel("*"))
                for job_id in self._watches:  # news published while the channel was away
                    self._mark(job_id)
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None:
                        continue
                    job_id = message["channel"].decode()[len(prefix):]
                    if job_id in self._watches:
                        self._mark(job_id)
            except (RedisError, OSError):
                log.warning("lost the Redis event channel; the database sweep carries on", exc_info=True)
                await asyncio.sleep(_RECONNECT_S)
            finally:
                await pubsub.aclose()
                await client.aclose()
