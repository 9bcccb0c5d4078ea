"""Batches in core, on both backends with the real broker: a batch's end is marked once, by whoever
sees its last job end, and its one webhook reaches a real receiver; fair share sends another
tenant's single job before a batch's backlog; the zip of transcripts streams."""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import pytest
from sqlalchemy import select

from core import batches, dispatch, jobs, webhooks
from core.db import session_scope
from core.models import Batch, Job
from core.options import JobOptions
from core.queue import WEBHOOK_QUEUE
from core.services import Services
from core.submit import BatchEntry
from tests.support.transcripts import HELLO_ZH
from tests.support.webhooks import Receiver

TRANSCRIPT = HELLO_ZH


@pytest.fixture
def batch_services(any_settings, db):
    svc = Services.start(dataclasses.replace(any_settings, tenant_inflight=2, webhook_secret="s", webhook_allow=("127.0.0.1",)))
    yield svc
    svc.close()


def make_batch(svc, tenant: str, count: int, *, callback_url: str | None = None, open_: bool = False):
    """A batch of ``count`` queued jobs (held until pumped), as the submission path inserts them."""
    options = JobOptions(profile="offline", callback_url=callback_url)
    with session_scope(svc.db) as s:
        batch_id = batches.create(s, options, tenant=tenant, name="calls", open_=True).id
    ids = []
    for n in range(count):
        with session_scope(svc.db) as s:
            entry = BatchEntry(batch_id, f"dir/call{n}.wav")
            batches.lock_open(s, entry.batch_id, tenant)
            job_id = jobs.new_job_id()
            jobs.create_job(s, job_id=job_id, options=JobOptions(profile="offline"), media_key=f"{job_id}/source.wav",
                            filename=f"call{n}.wav", size_bytes=1, duration_ms=1000, tenant=tenant,
                            batch_id=batch_id, batch_key=entry.key)
            ids.append(job_id)
    if not open_:
        with session_scope(svc.db) as s:
            batches.close(s, s.get(Batch, batch_id))
    return batch_id, ids


def finish(svc, job_id: str, outcome: str = "done") -> None:
    with session_scope(svc.db) as s:
        attempt = jobs.claim(s, job_id)
        if outcome == "done":
            jobs.complete(s, job_id, attempt, TRANSCRIPT)
        else:
            jobs.fail(s, job_id, attempt, "bad_media", "not audio")


def webhook_messages(svc) -> int:
    with svc.queue.app.connection_for_read() as conn:
        return conn.default_channel.queue_declare(queue=WEBHOOK_QUEUE, passive=True).message_count


def test_a_batchs_end_is_marked_once_by_its_last_job_and_its_webhook_sent_once(batch_services):
    hook = Receiver([200])
    try:
        batch_id, ids = make_batch(batch_services, "tenant-a", 3, callback_url=hook.url)
        finish(batch_services, ids[0])
        finish(batch_services, ids[1], "failed")
        assert batches.end_check(batch_services, [batch_id]) == []  # one job is still queued
        finish(batch_services, ids[2])
        assert batches.end_check(batch_services, [batch_id]) == [batch_id]
        assert batches.end_check(batch_services, [batch_id]) == []  # marked once
        with session_scope(batch_services.db) as s:
            assert batches.finish_ended(s) == []  # the sweeper finds nothing left to mark
        assert webhook_messages(batch_services) == 1  # one delivery task, for the batch; its jobs send none
        result = batches.deliver(batch_services.settings, batch_services.db, batch_id)
        assert result.ok and batches.deliver(batch_services.settings, batch_services.db, batch_id) is None
        assert len(hook.deliveries) == 1
        headers, body = hook.deliveries[0]
        payload = json.loads(body)
        assert payload["event"] == "batch.completed" and headers[webhooks.EVENT_HEADER] == "batch.completed"
        assert payload["batch"]["counts"] == {"queued": 0, "running": 0, "done": 2, "failed": 1, "canceled": 0}
        assert payload["batch"]["status"] == "completed" and payload["batch"]["total"] == 3
        assert webhooks.verify(b"s", body, headers[webhooks.SIGNATURE_HEADER])
    finally:
        hook.close()


def test_an_open_batch_does_not_end_and_the_sweeper_marks_one_whose_end_was_missed(batch_services):
    batch_id, ids = make_batch(batch_services, "tenant-a", 1, open_=True)
    finish(batch_services, ids[0])
    assert batches.end_check(batch_services, [batch_id]) == []  # open: more files may come
    with session_scope(batch_services.db) as s:
        batches.close(s, s.get(Batch, batch_id))
    with session_scope(batch_services.db) as s:
        assert batches.finish_ended(s) == [batch_id]
        assert batches.status_of(s.get(Batch, batch_id)) == "completed"


def test_a_closed_batch_takes_no_more_jobs(batch_services):
    batch_id, _ = make_batch(batch_services, "tenant-a", 1)
    with session_scope(batch_services.db) as s, pytest.raises(Exception) as refused:
        batches.lock_open(s, batch_id, "tenant-a")
    assert getattr(refused.value, "code", None) == "batch_closed"
    with session_scope(batch_services.db) as s, pytest.raises(Exception) as other:
        batches.lock_open(s, batch_id, "tenant-b")
    assert getattr(other.value, "code", None) == "not_found"


def test_counts_progress_and_eta(batch_services):
    batch_id, ids = make_batch(batch_services, "tenant-a", 4)
    finish(batch_services, ids[0])
    with session_scope(batch_services.db) as s:
        attempt = jobs.claim(s, ids[1])
        jobs.report_progress(s, ids[1], attempt, "asr", 0.5)
    with session_scope(batch_services.db) as s:
        counts = batches.counts(s, [batch_id])[batch_id]
    assert counts.by_status == {"done": 1, "running": 1, "queued": 2} and counts.total == 4
    assert counts.progress() == pytest.approx(1.5 / 4)
    assert counts.first_started_at is not None


def test_another_tenants_single_job_is_sent_before_a_batchs_backlog(batch_services):
    """Fair share counts a batch's jobs as the tenant's: with two slots a tenant, tenant B's one job
    is sent right after the two of tenant A's batch already in flight, so it waits behind at most
    one job per slot (the order of sends is the order workers claim from the broker's queue)."""
    batch_id, ids = make_batch(batch_services, "tenant-a", 50)
    order = dispatch.pump(batch_services)
    assert order == ids[:2]  # the batch's first two; 48 are held in the database
    single = jobs.new_job_id()
    with session_scope(batch_services.db) as s:
        jobs.create_job(s, job_id=single, options=JobOptions(profile="offline"), media_key=f"{single}/source.wav",
                        filename="one.wav", size_bytes=1, duration_ms=1000, tenant="tenant-b")
    order += dispatch.pump(batch_services)
    # Workers take jobs in the order they were sent; as each of tenant A's ends, its next is sent.
    claims = []
    while True:
        with session_scope(batch_services.db) as s:
            sent = s.execute(select(Job.id).where(Job.status == "queued", Job.enqueued_at.is_not(None))
                             .order_by(Job.enqueued_at, Job.id)).scalars().all()
        if not sent:
            break
        job_id = next(j for j in order if j in sent)  # the oldest message in the queue
        claims.append(job_id)
        finish(batch_services, job_id)
        order += dispatch.pump(batch_services)
    assert len(claims) == 51
    assert claims.index(single) <= 2, claims.index(single)  # behind tenant A's two in flight, never its 48 held


def test_the_zip_streams_each_transcript_in_each_format_and_an_index(batch_services):
    batch_id, ids = make_batch(batch_services, "tenant-a", 3)
    finish(batch_services, ids[0])
    finish(batch_services, ids[1], "failed")
    chunks = list(batches.transcripts_zip(batch_services.db, batch_id, ("srt", "json")))
    assert len(chunks) > 3  # handed on entry by entry, not built whole
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["dir/call0.json", "dir/call0.srt", "jobs.jsonl"]
    assert "你好" in archive.read("dir/call0.srt").decode()
    assert json.loads(archive.read("dir/call0.json"))["text"] == "你好。"
    index = [json.loads(line) for line in archive.read("jobs.jsonl").decode().splitlines()]
    by_id = {line["id"]: line for line in index}
    assert by_id[ids[0]]["files"] == ["dir/call0.srt", "dir/call0.json"]
    assert by_id[ids[1]]["status"] == "failed" and by_id[ids[1]]["error"]["code"] == "bad_media"
    assert by_id[ids[2]]["status"] == "queued" and by_id[ids[2]]["files"] == []


@pytest.mark.parametrize("key,filename,stem", [
    ("a/b/c.wav", "c.wav", "a/b/c"), (None, "talk.mp3", "talk"), ("../../etc/passwd", "x", "etc/passwd"),
    ("/abs/x.wav", "x", "abs/x"), ("..\\win\\y.flac", "y", "win/y"), ("..", "", "audio")])
def test_zip_entry_names_stay_inside_the_archive(key, filename, stem):
    assert batches.entry_stem(key, filename) == stem
