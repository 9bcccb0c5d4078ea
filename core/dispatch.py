"""Fair share: when a queued job's task is sent to the broker.

The broker is first in, first out, so a tenant that queues a thousand jobs would stand them all in
front of the next tenant's first job. Instead, at most ``TINGXIE_TENANT_INFLIGHT`` jobs of a tenant
are *in flight* at once per queue (batch or interactive): sent and waiting in the broker, or
running. The tenant's other queued jobs are *held* in the database (``enqueued_at IS NULL``, the
same mark a job accepted while the broker was down carries) and sent, oldest first, as its jobs in
flight end. Another tenant's first job is sent at once, so it waits behind at most that many jobs
of each busy tenant. When several tenants have room at once, their jobs are sent in turn, one each
round.

:func:`pump` is the one function that sends held jobs. It is called by the submission path after
the job is committed, by the worker when a job ends, by the web tier when a job is canceled, and
by every worker's sweeper (which also sends what the broker could not take earlier). Each job is
reserved with a conditional UPDATE before it is sent, so two processes pumping at once never send
the same job twice; the slot count itself is advisory (two pumps at once may each fill the last
slot, going one over). Sending goes through :meth:`core.services.Services.enqueue`, the one way
a task is sent.

The per-tenant cap on queued plus running jobs (``TINGXIE_TENANT_MAX_JOBS``) is checked at
submission by :func:`check_cap`.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, func, literal_column, or_, select, update
from sqlalchemy.orm import Session

from core.db import session_scope
from core.errors import TingxieError
from core.models import Job, db_now

log = logging.getLogger("tingxie.dispatch")

QUEUED, RUNNING = "queued", "running"


@dataclass(frozen=True)
class _Held:
    id: str
    tenant: str
    interactive: bool
    profile: str
    priority: int
    created_at: object


def _is_interactive():
    # A literal, not a bound parameter: PostgreSQL must see the same expression in GROUP BY.
    return Job.priority > literal_column("0")


def _interactive():
    return _is_interactive().label("interactive")


def _in_flight():
    return or_(Job.status == RUNNING, and_(Job.status == QUEUED, Job.enqueued_at.is_not(None)))


def _held():
    return and_(Job.status == QUEUED, Job.enqueued_at.is_(None))


def in_flight(session: Session, tenants: list[str] | None = None) -> dict[tuple[str, bool], int]:
    """(tenant, interactive) -> jobs sent and not ended."""
    query = select(Job.tenant, _interactive(), func.count()).where(_in_flight())
    if tenants is not None:
        query = query.where(Job.tenant.in_(tenants))
    return {(tenant, bool(interactive)): count
            for tenant, interactive, count in session.execute(query.group_by(Job.tenant, _is_interactive()))}


def held(session: Session, tenants: list[str] | None = None) -> list[str]:
    """Ids of queued jobs not sent yet, in the order they would be sent within their tenant."""
    query = select(Job.id).where(_held())
    if tenants is not None:
        query = query.where(Job.tenant.in_(tenants))
    return list(session.execute(query.order_by(Job.priority.desc(), Job.created_at, Job.id)).scalars())


def _choose(session: Session, limit: int, tenants: list[str] | None) -> list[_Held]:
    """The held jobs to send now: each (tenant, queue) gets what its free slots allow, oldest
    first, taken one per tenant per round."""
    busy = in_flight(session, tenants)
    query = select(Job.id, Job.tenant, _interactive(), Job.profile, Job.priority, Job.created_at).where(_held())
    if tenants is not None:
        query = query.where(Job.tenant.in_(tenants))
    # Only the jobs that could fit are read: per (tenant, queue), the oldest `limit` held ones.
    ranked = query.add_columns(
        func.row_number().over(partition_by=(Job.tenant, _is_interactive()),
                               order_by=(Job.priority.desc(), Job.created_at, Job.id)).label("rank")
    ).subquery()
    rows = session.execute(select(ranked).where(ranked.c.rank <= limit)
                           .order_by(ranked.c.tenant, ranked.c.interactive, ranked.c.rank)).all()
    queues: dict[tuple[str, bool], list[_Held]] = defaultdict(list)
    for row in rows:
        key = (row.tenant, bool(row.interactive))
        if len(queues[key]) < limit - busy.get(key, 0):
            queues[key].append(_Held(row.id, row.tenant, bool(row.interactive), row.profile, row.priority,
                                     row.created_at))
    chosen: list[_Held] = []
    lanes = [lane for lane in queues.values() if lane]
    # Interactive lanes first in every round; then tenants in the order of their oldest waiting job.
    lanes.sort(key=lambda lane: (not lane[0].interactive, lane[0].created_at))
    while lanes:
        for lane in lanes:
            chosen.append(lane.pop(0))
        lanes = [lane for lane in lanes if lane]
    return chosen


def pump(services, tenants: list[str] | None = None) -> list[str]:
    """Send the held jobs that have room (of ``tenants``, or of every tenant); the ids sent."""
    limit = services.settings.tenant_inflight
    with session_scope(services.db) as session:
        chosen = _choose(session, limit, tenants)
    sent = []
    for job in chosen:
        with session_scope(services.db) as session:
            reserved = session.execute(
                update(Job).where(Job.id == job.id, _held()).values(enqueued_at=db_now())
                .execution_options(synchronize_session=False)
            ).rowcount == 1
        if not reserved:
            continue  # another process sent it, or it was canceled meanwhile
        if services.enqueue(job.id, profile=job.profile, priority=job.priority):
            sent.append(job.id)
            continue
        # The broker is unreachable: hold it again for the next pump, and stop trying for now.
        with session_scope(services.db) as session:
            session.execute(update(Job).where(Job.id == job.id, Job.status == QUEUED).values(enqueued_at=None))
        break
    if sent:
        log.debug("sent %d held job(s): %s", len(sent), ", ".join(sent))
    return sent


def check_cap(session: Session, settings, tenant: str) -> None:
    """Refuse a new job when ``tenant`` already has ``TINGXIE_TENANT_MAX_JOBS`` queued or running."""
    active = session.execute(
        select(func.count()).select_from(Job).where(Job.tenant == tenant, Job.status.in_((QUEUED, RUNNING)))
    ).scalar_one()
    if active >= settings.tenant_max_jobs:
        raise TingxieError(
            f"tenant {tenant!r} has {active} jobs queued or running, the most it may have at once "
            f"(TINGXIE_TENANT_MAX_JOBS={settings.tenant_max_jobs}); submit more as they finish",
            code="too_many_jobs",
        )
