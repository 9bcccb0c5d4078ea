"""Which workers are alive and which profiles they serve.

Each worker process writes its row in ``workers`` every :data:`ANNOUNCE_S` seconds (and removes
it when it stops). A row not refreshed for :data:`ALIVE_S` is a worker that died without saying
so (``kill -9``, a lost host). The web tier reads the rows to tell a queued job that no live worker
serves its profile (``waiting for a funasr worker``) and to count workers in /metrics. The
database is the one thing every host already shares, embedded default included.
"""
from __future__ import annotations

import threading
import time

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.models import WorkerRecord, db_now

ANNOUNCE_S = 5.0
# Four missed announcements: a worker busy on a long model call still announces (its own thread).
ALIVE_S = 20.0
# Rows of workers gone this long are removed by whichever worker announces next.
FORGET_S = 24 * 3600.0


def announce(session: Session, worker_id: str, *, hostname: str, profiles: tuple[str, ...], device: str,
             metrics: list | None = None) -> None:
    """Insert or refresh this worker's row (an UPDATE first: the row exists after the first beat).
    Times are the database's (core.models.db_now), as the live window is measured."""
    values = {"hostname": hostname, "profiles": list(profiles), "device": device, "seen_at": db_now()}
    if metrics is not None:
        values["metrics"] = metrics
    if session.execute(update(WorkerRecord).where(WorkerRecord.id == worker_id).values(**values)).rowcount == 0:
        session.add(WorkerRecord(id=worker_id, started_at=db_now(), **values))
    session.execute(delete(WorkerRecord).where(WorkerRecord.seen_at < db_now(-FORGET_S)))


def retire(session: Session, worker_id: str) -> None:
    session.execute(delete(WorkerRecord).where(WorkerRecord.id == worker_id))


def live(session: Session) -> list[WorkerRecord]:
    return list(session.execute(
        select(WorkerRecord).where(WorkerRecord.seen_at >= db_now(-ALIVE_S)).order_by(WorkerRecord.id)).scalars())


def served_profiles(session: Session) -> dict[str, int]:
    """profile -> number of live workers serving it."""
    counts: dict[str, int] = {}
    for worker in live(session):
        for profile in worker.profiles or ():
            counts[profile] = counts.get(profile, 0) + 1
    return counts


def waiting_reason(status: str, profile: str, served: dict[str, int]) -> str | None:
    """What a queued job is waiting for when no live worker would take it; None otherwise."""
    if status != "queued" or served.get(profile):
        return None
    article = "an" if profile[:1] in "aeio" else "a"
    return f"waiting for {article} {profile} worker"


class ServedProfiles:
    """:func:`served_profiles`, read at most once per ``ttl_s`` per process: a job list of 100
    jobs, or many clients polling, costs one query."""

    def __init__(self, factory: sessionmaker, ttl_s: float = 2.0):
        self.factory, self.ttl_s = factory, ttl_s
        self._lock = threading.Lock()
        self._value: dict[str, int] = {}
        self._read_at = float("-inf")

    def get(self) -> dict[str, int]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.ttl_s:
                with self.factory() as session:
                    self._value = served_profiles(session)
                self._read_at = time.monotonic()
            return self._value
