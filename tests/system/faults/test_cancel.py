"""Cancel lands whatever the stage: during decoding the decoder's process group is killed and the
worker takes its next job in the same pool process; inside an ASR batch (a model call Python
cannot interrupt) the pool process is ended after its grace and replaced. What is asserted is what
happened (which processes ended, which took the next job, what was written); how long it took is
bench.faults' figure (README), since a busy machine stretches it."""
from __future__ import annotations

import dataclasses
import time

import pytest
import requests

from tests.support.faults import gone, pool_processes, started_pids, wait_for

pytestmark = pytest.mark.slow

# A hang guard, not a promise: the hung decoder never ends by itself, a batch only after minutes.
LANDS_S = 60.0


def _cancel(service, job_id: str) -> dict:
    response = requests.post(f"{service.base_url}/api/v1/jobs/{job_id}/cancel", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_cancel_during_decode_kills_the_decoder_and_frees_the_worker_at_once(
        live_service, settings, sql, speech_path, hanging_ffmpeg):
    script, flag, pids = hanging_ffmpeg
    settings = dataclasses.replace(settings, ffmpeg=str(script))
    service = live_service(settings)
    stuck = service.submit(speech_path("jfk.flac"), language="en")["id"]
    wait_for(lambda: started_pids(pids), 60, "the decoder to hang")
    flag.unlink()  # the next decoder is a real one
    waiting = service.submit(speech_path("jfk.flac"), language="en")["id"]
    db = sql(settings)
    assert db.job(stuck).stage == "decode" and db.job(waiting).status == "queued"
    (pool,) = pool_processes(service.workers[0].pid)
    assert _cancel(service, stuck)["status"] == "canceled"
    (decoder,) = started_pids(pids)
    wait_for(lambda: gone(decoder), LANDS_S, "the decoder's process group to be killed")
    done = service.wait(waiting, timeout_s=120)
    assert done["status"] == "done"
    stuck_row, next_row = db.job(stuck), db.job(waiting)
    # The worker took its next job in the same pool process, its models loaded (nothing was ended).
    assert next_row.started_at >= stuck_row.finished_at
    assert [p.pid for p in pool_processes(service.workers[0].pid)] == [pool.pid]
    assert (stuck_row.status, stuck_row.attempt, db.transcripts(stuck)) == ("canceled", 1, 0)
    assert "ending this worker process" not in service.log("worker0")


def test_cancel_inside_an_asr_batch_ends_the_work_within_2_s(live_service, settings, sql, long_speech):
    service = live_service(settings)  # batches of 240 s: one batch takes Whisper-base tens of seconds here
    job_id = service.submit(long_speech(4, "en"), language="en")["id"]
    db = sql(settings)
    wait_for(lambda: db.job(job_id).stage == "asr", 120, "ASR to start")
    (process,) = pool_processes(service.workers[0].pid)
    time.sleep(1.0)  # inside the first batch
    assert _cancel(service, job_id)["status"] == "canceled"
    wait_for(lambda: gone(process.pid), LANDS_S, "the pool process running the batch to end")
    row = db.job(job_id)
    assert (row.status, row.attempt, db.transcripts(job_id)) == ("canceled", 1, 0)
    events = db.events(job_id)
    assert events[-1]["type"] == "canceled"  # nothing written after the cancel
    assert "ending this worker process" in service.log("worker0")
    # The pool has a new process, which loads its models and takes the next job.
    next_job = service.submit(long_speech(4, "en"), language="en")["id"]
    wait_for(lambda: db.job(next_job).status == "running", 120, "the next job to start")
    assert _cancel(service, next_job)["status"] == "canceled"
