"""Attempts that end badly: a job that kills its worker every time is capped (worker_lost); a
decoder that hangs is stopped by the stall detector, its ffmpeg process group killed, and the job
capped (timeout); a job past its time limit fails with timeout at once."""
from __future__ import annotations

import dataclasses
import time

import pytest

from core.queue import QueueClient
from core.storage import job_work_dir
from tests.support.faults import gone, started_pids, wait_for

pytestmark = pytest.mark.slow


def test_a_poison_job_is_capped_and_its_later_deliveries_are_no_ops(live_service, settings, sql, speech_path):
    settings = dataclasses.replace(settings, max_attempts=3)
    service = live_service(settings, workers=0)
    worker = service.start_worker(faults=("--die-in-asr",))
    job_id = service.submit(speech_path("jfk.flac"), language="en")["id"]
    job = service.wait(job_id, timeout_s=240)
    db = sql(settings)
    row = db.job(job_id)
    assert (job["status"], row.attempt, row.lost_attempts, row.error_code) == ("failed", 3, 3, "worker_lost"), job
    assert "3 attempts" in row.error_message and "stopped reporting" in row.error_message
    kinds = [(e["type"], e["data"].get("reason")) for e in db.events(job_id) if e["type"] != "progress"]
    assert kinds == [("queued", None), ("running", None), ("queued", "worker lost; retrying"), ("running", None),
                     ("queued", "worker lost; retrying"), ("running", None), ("failed", None)]
    # Another delivery of its task (a duplicate, a re-send) changes nothing.
    skipped = service.log("worker0").count(f"job {job_id} is not claimable")
    QueueClient(settings).send_transcribe(job_id, profile="offline")
    wait_for(lambda: service.log("worker0").count(f"job {job_id} is not claimable") > skipped, 60, "the delivery")
    assert db.job(job_id).attempt == 3 and db.transcripts(job_id) == 0
    assert worker.poll() is None


def test_a_hanging_decoder_is_stopped_by_the_stall_detector_and_the_job_capped(
        live_service, settings, sql, speech_path, hanging_ffmpeg):
    script, _, pids = hanging_ffmpeg
    settings = dataclasses.replace(settings, ffmpeg=str(script), stall_s=3.0, max_attempts=2)
    service = live_service(settings)
    job_id = service.submit(speech_path("jfk.flac"), language="en")["id"]
    job = service.wait(job_id, timeout_s=120)
    db = sql(settings)
    row = db.job(job_id)
    assert (job["status"], row.error_code, row.attempt, row.lost_attempts) == ("failed", "timeout", 2, 2), job
    assert "made progress for 3 s" in row.error_message
    reasons = [e["data"].get("reason") for e in db.events(job_id) if e["type"] == "queued"]
    assert reasons == [None, "no progress for 3 s; retrying"]
    hung = started_pids(pids)
    assert len(hung) == 2  # one hung decoder an attempt, each killed with its process group
    wait_for(lambda: all(gone(pid) for pid in hung), 10, "the hung decoders to be gone")
    assert not job_work_dir(settings, job_id).exists()
    assert service.workers[0].poll() is None


def test_a_job_past_its_time_limit_fails_with_timeout_and_is_not_retried(
        live_service, settings, sql, speech_path, hanging_ffmpeg):
    script, _, pids = hanging_ffmpeg
    settings = dataclasses.replace(settings, ffmpeg=str(script), job_time_base_s=4.0,
                                   job_time_factor={"offline": 0.01}, stall_s=600.0)
    service = live_service(settings)
    job_id = service.submit(speech_path("jfk.flac"), language="en")["id"]
    job = service.wait(job_id, timeout_s=60)
    row = sql(settings).job(job_id)
    assert (job["status"], row.error_code, row.attempt) == ("failed", "timeout", 1), job
    assert "limit of 4 s" in row.error_message and "TINGXIE_JOB_TIME_FACTOR" in row.error_message
    timings = job["timings"]["running_s"]
    assert timings >= 4, timings  # ended by its limit, not before (a busy machine only adds to it)
    hung = started_pids(pids)
    wait_for(lambda: all(gone(pid) for pid in hung), 60, "the hung decoder to be gone")
    time.sleep(3)
    assert sql(settings).job(job_id).attempt == 1  # not retried
