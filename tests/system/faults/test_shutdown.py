"""A graceful deploy: SIGTERM makes a worker hand its running job back at once; another worker
continues it, from its last finished batch, without waiting for the lease."""
from __future__ import annotations

import dataclasses
import signal

import pytest

from tests.support.faults import wait_for

pytestmark = pytest.mark.slow


def test_sigterm_mid_job_hands_it_to_another_worker_at_once(live_service, settings, sql, long_speech):
    settings = dataclasses.replace(settings, job_lease_s=30.0, batch_seconds=30.0)
    service = live_service(settings, workers=2)
    job_id = service.submit(long_speech(3, "en"), language="en")["id"]
    db = sql(settings)
    wait_for(lambda: db.job(job_id).stage == "asr" and db.job(job_id).progress >= 0.4, 180, "a few batches")
    node = db.job(job_id).worker
    (first,) = [w for w in service.workers if node.startswith(f"tingxie-{w.pid}@")]
    (second,) = [w for w in service.workers if w is not first]
    first.send_signal(signal.SIGTERM)
    # Handed back, not left to its lease: counted below (lost_attempts == 0, the "queued" event's
    # reason), not timed, so a busy machine cannot fail it.
    wait_for(lambda: db.job(job_id).attempt == 2 and db.job(job_id).status == "running", 60,
             "another worker to take the job")
    assert first.wait(timeout=30) is not None and second.poll() is None
    job = service.wait(job_id, timeout_s=300)
    row = db.job(job_id)
    assert (job["status"], row.attempt, row.lost_attempts) == ("done", 2, 0), job
    assert row.worker.startswith(f"tingxie-{second.pid}@")
    assert db.transcripts(job_id) == 1
    reasons = [e["data"].get("reason") for e in db.events(job_id) if e["type"] == "queued"]
    assert reasons == [None, "handed back: its worker is shutting down"]
    name = f"worker{service.workers.index(second)}"
    assert "finished batch(es) kept by earlier attempts" in service.log(name)
