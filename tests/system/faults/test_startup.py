"""Worker start-up: a pool process reports ready at once and loads its models after, so no Celery
start-up timeout can kill a slow load; a load that kills its process is retried with backoff."""
from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support.faults import pool_processes, wait_for

pytestmark = pytest.mark.slow


def test_a_pool_process_killed_during_a_slow_model_load_is_replaced_and_the_job_runs_once(
        live_service, settings, sql, speech_path):
    """An 8 s load (Celery kills a pool process not up within 4 s): the process is killed mid-load;
    its replacement loads and runs the job, once."""
    service = live_service(settings, workers=0)
    worker = service.start_worker(wait=False, faults=("--load-delay", "8"))
    wait_for(lambda: "the model load sleeps" in service.log("worker0"), 60, "the slow load to begin")
    job_id = service.submit(speech_path("jfk.flac"), language="en")["id"]
    time.sleep(2)
    (child,) = pool_processes(worker.pid)
    os.kill(child.pid, signal.SIGKILL)
    job = service.wait(job_id, timeout_s=240)
    db = sql(settings)
    row = db.job(job_id)
    assert (job["status"], row.attempt, row.lost_attempts) == ("done", 1, 0), job
    assert db.transcripts(job_id) == 1
    log = service.log("worker0")
    assert "Timed out waiting for UP message" not in log
    assert log.count("the model load sleeps") == 2  # the killed load, then its replacement's
    assert "waiting 1 s before loading again" in log


def test_a_load_that_kills_its_process_is_retried_with_backoff_and_costs_no_attempt(
        live_service, settings, sql, speech_path):
    service = live_service(settings, workers=0)
    worker = service.start_worker(wait=False, faults=("--die-in-load",))
    wait_for(lambda: " ready." in service.log("worker0"), 60, "the worker to start")
    job_id = service.submit(speech_path("jfk.flac"), language="en")["id"]
    time.sleep(20)
    log = service.log("worker0")
    loads = log.count("fault injected: model load")
    # Loads at about 0.5, 2, 4.5, 9 and 17.5 s (waits of 1, 2, 4, 8 s); in a tight loop, one a second.
    assert 3 <= loads <= 6, log[-3000:]
    assert "waiting 4 s before loading again" in log
    assert worker.poll() is None
    row = sql(settings).job(job_id)
    assert (row.status, row.attempt) == ("queued", 0)  # waiting for a worker that can load: not failed
