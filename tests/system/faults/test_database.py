"""PostgreSQL down when a job's transcript is to be written: the worker holds the result and
writes it when the database is back; nothing is run again."""
from __future__ import annotations

import dataclasses
import time

import pytest

from tests.support.faults import wait_for

pytestmark = pytest.mark.slow


def test_postgres_down_at_the_final_write(live_service, settings, sql, long_speech, private_postgres, private_redis):
    settings = dataclasses.replace(settings, database_url=private_postgres.url, broker_url=private_redis.url,
                                   events_url=private_redis.url)
    service = live_service(settings)
    job_id = service.submit(long_speech(1, "en"), language="en")["id"]
    db = sql(settings)
    wait_for(lambda: db.job(job_id).stage == "asr", 120, "ASR to start")
    db.close()
    private_postgres.stop("fast")
    wait_for(lambda: "holding the outcome" in service.log("worker0"), 120, "the worker to hold its result")
    time.sleep(settings.job_lease_s + 2)  # past the lease: a sweeper may release the job meanwhile
    private_postgres.start()
    job = service.wait(job_id, timeout_s=120)
    db = sql(settings)
    row = db.job(job_id)
    assert (job["status"], row.attempt) == ("done", 1), job  # the held result, not a second run
    assert db.transcripts(job_id) == 1
    assert "fellow americans" in db.transcript(job_id)["text"].lower()
    assert [e["type"] for e in db.events(job_id)][-1] == "done"
