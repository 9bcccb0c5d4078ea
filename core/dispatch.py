"""Fair share: when a queued job's task is sent to the broker, and to which of its profile's queues.

The broker is first in, first out, so a tenant that queues a thousand jobs would stand them all in
front of the next tenant's first job. Instead, at most ``TINGXIE_TENANT_INFLIGHT`` jobs of a tenant
are *in flight* at once per profile, whichever of the profile's queues (batch or interactive) they
are in: sent and waiting in the broker, or running. The tenant's other queued jobs are *held* in the
database (``enqueued_at IS NULL``, the same mark a job accepted while the broker was down carries)
and sent, its interactive (gateway) jobs first then oldest first, as its jobs in flight end. A
waiting batch job does not hold a slot against the same tenant's interactive job while that job
would take the interactive queue (no other tenant waits): workers take that queue first, so a
gateway job goes ahead of the batch work its tenant already sent, and the tenant's gateway
connections are served in parallel up to its share. Another
tenant's first job is sent at once, so it waits behind at most that many jobs of each busy tenant.
When several tenants have room at once, their jobs are sent in turn, one each round.

Workers drain a profile's interactive queue before its batch queue, so the interactive queue would
let one tenant's gateway jobs, refilled as each ends, overtake every other tenant's waiting job for
as long as it has any. It is preferred only within a tenant's share: an interactive job goes to the
interactive queue only while no other tenant has a job of that profile waiting in the broker;
otherwise it goes to the batch queue, behind the jobs already waiting there.

:func:`pump` is the one function that sends held jobs. It is called by the submission path after
the job is committed, by the worker when a job ends, by the web tier when a job is canceled, and
by every worker's sweeper (which also sends what the broker could not take earlier). Each job is
reserved with a conditional UPDATE before it is sent, so two processes pumping at once never send
the same job twice; the slot count itself is advisory (two pumps at once may each fill the last
slot, going one over). Sending goes through :meth:`core.services.Services.enqueue`, the one way
a task is sent.

The per-tenant cap on queued plus running jobs (``TINGXIE_TENANT_MAX_JOBS``) is checked at
submission by :func:`check_cap`, and enforced by :func:`hold_cap` in the transaction that inserts
the job, so simultaneous submissions cannot all pass the same check.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, func, literal_column, or_, select, text, update
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
    return Job.priority > literal_column("0")


def _waiting():
    """Sent to the broker and not claimed by a worker yet."""
    return and_(Job.status == QUEUED, Job.enqueued_at.is_not(None))


def _in_flight():
    return or_(Job.status == RUNNING, _waiting())


def _held():
    return and_(Job.status == QUEUED, Job.enqueued_at.is_(None))


def in_flight(session: Session, tenants: list[str] | None = None) -> dict[tuple[str, str], int]:
    """(tenant, profile) -> jobs sent and not ended, in any of the profile's queues."""
    query = select(Job.tenant, Job.profile, func.count()).where(_in_flight())
    if tenants is not None:
        query = query.where(Job.tenant.in_(tenants))
    return {(tenant, profile): count
            for tenant, profile, count in session.execute(query.group_by(Job.tenant, Job.profile))}


def held(session: Session, tenants: list[str] | None = None) -> list[str]:
    """Ids of queued jobs not sent yet, in the order they would be sent within their tenant."""
    query = select(Job.id).where(_held())
    if tenants is not None:
        query = query.where(Job.tenant.in_(tenants))
    return list(session.execute(query.order_by(Job.priority.desc(), Job.created_at, Job.id)).scalars())


def _ahead_of_interactive(session: Session, tenants: list[str] | None) -> dict[tuple[str, str], int]:
    """(tenant, profile) -> the jobs an interactive job of it would not overtake: running ones and
    interactive ones waiting (a waiting batch job is taken after it, interactive queue first)."""
    query = select(Job.tenant, Job.profile, func.count()).where(
        or_(Job.status == RUNNING, and_(_waiting(), _is_interactive())))
    if tenants is not None:
        query = query.where(Job.tenant.in_(tenants))
    return {(tenant, profile): count
            for tenant, profile, count in session.execute(query.group_by(Job.tenant, Job.profile))}


def _choose(session: Session, limit: int, tenants: list[str] | None) -> list[_Held]:
    """The held jobs to send now: each (tenant, profile) gets what its free slots allow, its
    interactive jobs first then oldest first, taken one per tenant per round. An interactive job's
    slots are counted without its tenant's batch jobs waiting in the broker while no other tenant
    waits for the profile (it then takes the interactive queue, ahead of them)."""
    busy = in_flight(session, tenants)
    busy_for_interactive = _ahead_of_interactive(session, tenants)
    waiting = _waiting_tenants(session)
    query = select(Job.id, Job.tenant, _is_interactive().label("interactive"), Job.profile, Job.priority,
                   Job.created_at).where(_held())
    if tenants is not None:
        query = query.where(Job.tenant.in_(tenants))
    # Only the jobs that could fit are read: per (tenant, profile), the first `limit` held ones.
    ranked = query.add_columns(
        func.row_number().over(partition_by=(Job.tenant, Job.profile),
                               order_by=(Job.priority.desc(), Job.created_at, Job.id)).label("rank")
    ).subquery()
    rows = session.execute(select(ranked).where(ranked.c.rank <= limit)
                           .order_by(ranked.c.tenant, ranked.c.profile, ranked.c.rank)).all()
    lanes_by_key: dict[tuple[str, str], list[_Held]] = defaultdict(list)
    for row in rows:
        key = (row.tenant, row.profile)
        overtakes = row.interactive and not waiting[row.profile] - {row.tenant}
        ahead = busy_for_interactive.get(key, 0) if overtakes else busy.get(key, 0)
        if len(lanes_by_key[key]) < limit - ahead:
            lanes_by_key[key].append(_Held(row.id, row.tenant, bool(row.interactive), row.profile, row.priority,
                                           row.created_at))
    chosen: list[_Held] = []
    lanes = [lane for lane in lanes_by_key.values() if lane]
    # In every round, lanes led by an interactive job first; then tenants in the order of their oldest waiting job.
    lanes.sort(key=lambda lane: (not lane[0].interactive, lane[0].created_at))
    while lanes:
        for lane in lanes:
            chosen.append(lane.pop(0))
        lanes = [lane for lane in lanes if lane]
    return chosen


def _waiting_tenants(session: Session) -> dict[str, set[str]]:
    """profile -> the tenants with a job of it waiting in the broker."""
    waiting: dict[str, set[str]] = defaultdict(set)
    for profile, tenant in session.execute(select(Job.profile, Job.tenant).where(_waiting()).distinct()):
        waiting[profile].add(tenant)
    return waiting


def pump(services, tenants: list[str] | None = None) -> list[str]:
    """Send the held jobs that have room (of ``tenants``, or of every tenant); the ids sent."""
    limit = services.settings.tenant_inflight
    with session_scope(services.db) as session:
        chosen = _choose(session, limit, tenants)
        waiting = _waiting_tenants(session) if chosen else {}
    sent = []
    for job in chosen:
        with session_scope(services.db) as session:
            reserved = session.execute(
                update(Job).where(Job.id == job.id, _held()).values(enqueued_at=db_now())
                .execution_options(synchronize_session=False)
            ).rowcount == 1
        if not reserved:
            continue  # another process sent it, or it was canceled meanwhile
        # The interactive queue only while no other tenant waits for this profile's workers.
        others_wait = bool(waiting[job.profile] - {job.tenant})
        priority = 0 if others_wait else job.priority
        if services.enqueue(job.id, profile=job.profile, priority=priority):
            sent.append(job.id)
            waiting[job.profile].add(job.tenant)
            continue
        # The broker is unreachable: hold it again for the next pump, and stop trying for now.
        with session_scope(services.db) as session:
            session.execute(update(Job).where(Job.id == job.id, Job.status == QUEUED).values(enqueued_at=None))
        break
    if sent:
        log.debug("sent %d held job(s): %s", len(sent), ", ".join(sent))
    return sent


def _count_active(session: Session, tenant: str) -> int:
    return session.execute(
        select(func.count()).select_from(Job).where(Job.tenant == tenant, Job.status.in_((QUEUED, RUNNING)))
    ).scalar_one()


def _too_many(settings, tenant: str, active: int) -> TingxieError:
    return TingxieError(
        f"tenant {tenant!r} has {active} jobs queued or running, the most it may have at once "
        f"(TINGXIE_TENANT_MAX_JOBS={settings.tenant_max_jobs}); submit more as they finish",
        code="too_many_jobs",
    )


def check_cap(session: Session, settings, tenant: str, adding: int = 1) -> None:
    """Refuse ``adding`` new jobs (one upload, or a batch's sources at once) when they would take
    ``tenant`` past ``TINGXIE_TENANT_MAX_JOBS`` queued or running (the early check, before an upload
    is probed and stored; :func:`hold_cap` is the one that holds)."""
    active = _count_active(session, tenant)
    if active + adding > settings.tenant_max_jobs:
        if adding > 1:
            raise TingxieError(
                f"{adding} new jobs and the {active} queued or running would pass the most tenant {tenant!r} may "
                f"have at once (TINGXIE_TENANT_MAX_JOBS={settings.tenant_max_jobs}); send fewer, or raise it",
                code="too_many_jobs")
        raise _too_many(settings, tenant, active)


def lock_tenant(session: Session, tenant: str) -> None:
    """Serialise the job inserts of ``tenant`` until this transaction ends. On PostgreSQL a
    transaction-scoped advisory lock keyed by the tenant (a row lock cannot lock rows that do not
    exist yet); SQLite has one writer at a time, and the insert that follows takes its lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                        {"key": f"tingxie.tenant:{tenant}"})


def hold_cap(session: Session, settings, tenant: str) -> None:
    """In the transaction that inserted a job of ``tenant``, after :func:`lock_tenant` and the
    insert: refuse (rolling the insert back) if it took the tenant over the cap. The count
    includes the new job, and no other insert of the tenant can commit in between."""
    active = _count_active(session, tenant)
    if active > settings.tenant_max_jobs:
        raise _too_many(settings, tenant, active - 1)
