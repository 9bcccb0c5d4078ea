"""A broker that loses its messages (FLUSHALL, a failover to an empty replica): queued jobs are
sent again once they have waited longer than the bound, and run once."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from tests.support.faults import wait_for

pytestmark = pytest.mark.slow


def test_flushall_with_queued_jobs(live_service, settings, sql, speech_path, long_speech, private_redis):
    settings = dataclasses.replace(settings, broker_url=private_redis.url, events_url=private_redis.url,
                                   resend_after_s=5.0)
    service = live_service(settings)
    busy = service.submit(long_speech(1, "en"), language="en")["id"]
    db = sql(settings)
    wait_for(lambda: db.job(busy).status == "running", 120, "the first job to start")
    queued = [service.submit(speech_path("jfk.flac"), language="en")["id"] for _ in range(2)]
    private_redis.flushall()  # the two queued jobs' messages are gone
    flushed = datetime.now(timezone.utc)
    for job_id in [busy, *queued]:
        job = service.wait(job_id, timeout_s=180)
        assert job["status"] == "done", job
    for job_id in queued:
        row = db.job(job_id)
        assert (row.attempt, db.transcripts(job_id)) == (1, 1)
        assert row.enqueued_at.replace(tzinfo=timezone.utc) > flushed  # sent again
    assert db.job(busy).attempt == 1
    assert service.log("worker0").count("its message may be lost") >= 2
