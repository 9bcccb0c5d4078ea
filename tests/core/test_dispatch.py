"""Fair share on both backends, with the real broker: one tenant's backlog is held in the database
and another tenant's first job is sent at once; held jobs go as slots free, tenants in turn."""
from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select, update

from core import dispatch, jobs
from core.db import session_scope
from core.models import Job, utcnow
from core.options import INTERACTIVE_PRIORITY, JobOptions
from core.queue import batch_queue, interactive_queue

BATCH_QUEUE, INTERACTIVE_QUEUE = batch_queue("offline"), interactive_queue("offline")
from core.services import Services


@pytest.fixture
def services(any_settings, db):
    svc = Services.start(dataclasses.replace(any_settings, tenant_inflight=3))
    yield svc
    svc.close()


def add(svc, tenant: str, count: int = 1, priority: int = 0) -> list[str]:
    ids = []
    with session_scope(svc.db) as s:
        for _ in range(count):
            job_id = jobs.new_job_id()
            jobs.create_job(s, job_id=job_id, options=JobOptions(profile="offline", priority=priority),
                            media_key=f"{job_id}/source.wav", filename="x.wav", size_bytes=1, duration_ms=1000, tenant=tenant)
            ids.append(job_id)
    return ids


def messages(svc, queue: str = BATCH_QUEUE) -> int:
    """Task messages waiting in the broker's queue."""
    with svc.queue.app.connection_for_read() as conn:
        return conn.default_channel.queue_declare(queue=queue, passive=True).message_count


def test_a_thousand_held_jobs_do_not_stand_before_another_tenants_first(services):
    a = add(services, "tenant-a", 1000)
    assert dispatch.pump(services) == a[:3]  # the oldest three; the rest are held
    b = add(services, "tenant-b")
    assert dispatch.pump(services, ["tenant-b"]) == b  # sent at once, behind three of tenant-a's
    assert messages(services) == 4
    with session_scope(services.db) as s:
        assert dispatch.held(s) == a[3:]
        assert dispatch.in_flight(s) == {("tenant-a", "offline"): 3, ("tenant-b", "offline"): 1}
    assert dispatch.pump(services) == []  # nothing has room


def test_a_held_job_goes_when_one_of_its_tenant_ends(services):
    a = add(services, "tenant-a", 5)
    dispatch.pump(services)
    with session_scope(services.db) as s:
        jobs.complete(s, a[0], jobs.claim(s, a[0]), {"text": "", "language": "en", "duration_ms": 1, "segments": []})
        jobs.cancel(s, a[1])
    assert dispatch.pump(services, ["tenant-a"]) == a[3:5]
    with session_scope(services.db) as s:
        assert dispatch.held(s) == [] and dispatch.in_flight(s) == {("tenant-a", "offline"): 3}


def test_interactive_jobs_share_their_tenants_slots_and_go_first_within_them(services):
    batch = add(services, "tenant-a", 3)
    assert dispatch.pump(services) == batch
    with session_scope(services.db) as s:
        for job_id in batch:
            assert jobs.claim(s, job_id)
    urgent = add(services, "tenant-a", 2, priority=INTERACTIVE_PRIORITY)
    assert dispatch.pump(services, ["tenant-a"]) == []  # the tenant's three slots run, whatever the queue
    later = add(services, "tenant-a")
    with session_scope(services.db) as s:
        jobs.cancel(s, batch[0])
    # A slot frees: the tenant's interactive job before its older batch job.
    assert dispatch.pump(services, ["tenant-a"]) == urgent[:1]
    assert messages(services, INTERACTIVE_QUEUE) == 1
    with session_scope(services.db) as s:
        assert dispatch.held(s) == [urgent[1], later[0]]
        assert dispatch.in_flight(s) == {("tenant-a", "offline"): 3}


def test_interactive_jobs_go_ahead_of_their_tenants_waiting_batch_jobs(services):
    """Batch jobs sent and waiting in the broker do not hold the tenant's slots against its gateway
    jobs: those take the interactive queue, which workers read first, up to the tenant's share."""
    batch = add(services, "tenant-a", 3)
    assert dispatch.pump(services) == batch
    urgent = add(services, "tenant-a", 4, priority=INTERACTIVE_PRIORITY)
    assert dispatch.pump(services, ["tenant-a"]) == urgent[:3]
    assert messages(services, INTERACTIVE_QUEUE) == 3 and messages(services) == 3
    with session_scope(services.db) as s:
        assert dispatch.held(s) == urgent[3:]
    # Another tenant waiting: the interactive queue is not taken, and the tenant's share is whole again.
    theirs = add(services, "tenant-b")
    assert dispatch.pump(services, ["tenant-b"]) == theirs
    with session_scope(services.db) as s:
        jobs.cancel(s, urgent[0])
    assert dispatch.pump(services, ["tenant-a"]) == []  # three batch and two interactive still in flight


def test_interactive_jobs_do_not_overtake_another_tenants_waiting_job(services):
    """Workers drain the interactive queue first: one tenant's gateway jobs, refilled as each ends,
    would otherwise stand in front of another tenant's job for as long as they keep coming."""
    urgent = add(services, "tenant-a", 6, priority=INTERACTIVE_PRIORITY)
    assert dispatch.pump(services) == urgent[:3]
    assert messages(services, INTERACTIVE_QUEUE) == 3  # alone: the interactive queue
    theirs = add(services, "tenant-b")
    assert dispatch.pump(services, ["tenant-b"]) == theirs
    with session_scope(services.db) as s:
        jobs.cancel(s, urgent[0])
    # Tenant B waits in the batch queue: A's next goes behind it, not into the queue drained first.
    assert dispatch.pump(services, ["tenant-a"]) == urgent[3:4]
    assert messages(services, INTERACTIVE_QUEUE) == 3 and messages(services) == 2
    with session_scope(services.db) as s:
        jobs.cancel(s, theirs[0])
        jobs.cancel(s, urgent[1])
    assert dispatch.pump(services, ["tenant-a"]) == urgent[4:5]  # nobody else waits: interactive again
    assert messages(services, INTERACTIVE_QUEUE) == 4


def test_tenants_are_sent_in_turn(services):
    a = add(services, "tenant-a", 3)
    b = add(services, "tenant-b", 3)
    c = add(services, "tenant-c", 2)
    assert dispatch.pump(services) == [a[0], b[0], c[0], a[1], b[1], c[1], a[2], b[2]]


def test_two_pumps_never_send_a_job_twice(services):
    a = add(services, "tenant-a", 3)
    # Another process reserved the first job between this pump's choice and its send.
    with session_scope(services.db) as s:
        s.execute(update(Job).where(Job.id == a[0]).values(enqueued_at=utcnow()))
    assert dispatch.pump(services) == a[1:]
    assert messages(services) == 2


def test_the_cap_counts_queued_and_running(services):
    settings = dataclasses.replace(services.settings, tenant_max_jobs=2)
    a = add(services, "tenant-a", 2)
    with session_scope(services.db) as s:
        with pytest.raises(Exception) as caught:
            dispatch.check_cap(s, settings, "tenant-a")
        assert caught.value.code == "too_many_jobs" and caught.value.status == 429
        dispatch.check_cap(s, settings, "tenant-b")
        jobs.cancel(s, a[0])
    with session_scope(services.db) as s:
        dispatch.check_cap(s, settings, "tenant-a")


@pytest.mark.network
def test_with_the_broker_down_jobs_stay_held_for_the_sweeper(tmp_path, migrated):
    from core.settings import Settings

    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0")
    migrated.migrate(settings)
    svc = Services.start(settings)
    try:
        a = add(svc, "tenant-a", 2)
        assert dispatch.pump(svc) == []
        with session_scope(svc.db) as s:
            assert dispatch.held(s) == a
            assert s.execute(select(Job.enqueued_at).where(Job.id.in_(a))).scalars().all() == [None, None]
    finally:
        svc.close()
