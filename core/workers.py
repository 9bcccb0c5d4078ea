"""Which workers are alive and which profiles they serve.

Each worker process writes its row in ``workers`` every :data:`ANNOUNCE_S` seconds (and removes
it when it stops). A row not refreshed for :data:`ALIVE_S` is a worker that died without saying
so (``kill -9``, a lost host). The web tier reads the rows to tell a queued job that no live worker
serves its profile (``waiting for a funasr worker``), to list only the models live workers serve,
and to count workers in /metrics. A queued job whose profile no worker has served for
``TINGXIE_NO_WORKER_S`` fails with ``no_worker`` (:func:`fail_unserved`, run by every worker's
sweeper and by the web tier) instead of waiting for ever. The database is the one thing every
host already shares, embedded default included.
"""
from __future__ import annotations

import threading
import time

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from core import jobs
from core.models import Job, WorkerRecord, db_now

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


def served_within(session: Session, within_s: float) -> set[str]:
    """The profiles some worker has announced within the last ``within_s`` seconds (a worker's
    row stays for :data:`FORGET_S` after its last announcement)."""
    rows = session.execute(select(WorkerRecord.profiles).where(WorkerRecord.seen_at >= db_now(-within_s))).scalars()
    return {profile for profiles in rows for profile in profiles or ()}


def no_worker_message(profile: str, within_s: float) -> str:
    return (f"no worker has served the {profile} profile for {within_s:g} s (TINGXIE_NO_WORKER_S): start one "
            f"(`tingxie worker --profiles {profile}`) or send the file to a profile that is served "
            "(GET /api/v1/profiles)")


def fail_unserved(session: Session, within_s: float, profiles: tuple[str, ...]) -> list[str]:
    """Fail with ``no_worker`` the queued jobs older than ``within_s`` whose profile no worker has
    served for ``within_s``: nobody will take them. Each is one guarded transition (a worker
    claiming it meanwhile wins). Returns their ids."""
    missing = set(profiles) - served_within(session, within_s)
    if not missing:
        return []
    stale = session.execute(select(Job.id, Job.profile).where(
        Job.status == jobs.QUEUED, Job.profile.in_(sorted(missing)), Job.created_at < db_now(-within_s))).all()
    return [job_id for job_id, profile in stale
            if jobs.fail(session, job_id, None, "no_worker", no_worker_message(profile, within_s), only_queued=True)]


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
