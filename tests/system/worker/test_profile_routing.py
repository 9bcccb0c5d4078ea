"""Jobs are routed by profile: each profile has its own queues, a worker consumes only the
profiles it loads, and a job for a profile no live worker serves stays queued and says so."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import requests

from tests.support.settings import make_settings
from tests.support.service import REPO, settings_env

pytestmark = pytest.mark.slow


def _waiting_for(service, job_id: str, reason: str | None, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = service.job(job_id)
        if job["waiting_reason"] == reason or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def _cli(service, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=settings_env(service.settings),
                          capture_output=True, text=True, timeout=60)


def test_a_funasr_job_never_reaches_an_offline_worker_and_says_it_waits(live_service, any_settings, speech_path):
    service = live_service(any_settings)  # one worker, on the default profile: offline
    funasr_job = service.submit(speech_path("asr_example.wav"), profile="funasr")
    offline_job = service.submit(speech_path("jfk.flac"), language="en")
    done = service.wait(offline_job["id"])
    assert done["status"] == "done" and done["waiting_reason"] is None  # the worker is live and consuming
    job = _waiting_for(service, funasr_job["id"], "waiting for a funasr worker")
    assert job["status"] == "queued" and job["attempt"] == 0 and job["started_at"] is None
    assert job["waiting_reason"] == "waiting for a funasr worker"
    listed = {j["id"]: j for j in service.jobs()["items"]}
    assert listed[funasr_job["id"]]["waiting_reason"] == "waiting for a funasr worker"
    # The offline worker never received its message (its sweeper may re-send it, on a loaded machine).
    assert not re.search(rf"job {funasr_job['id']} (attempt|is not claimable|was claimed)", service.log("worker0"))
    # `tingxie workers` lists it from the database, with its profiles (and --here is a healthcheck).
    listed_workers = _cli(service, "workers", "--json")
    assert listed_workers.returncode == 0 and [w["profiles"] for w in json.loads(listed_workers.stdout)] == [["offline"]]
    assert _cli(service, "workers", "--here").returncode == 0
    # A queued job that a live worker serves is not "waiting for" anything.
    service.stop_worker(service.workers[0])
    queued = service.submit(speech_path("jfk.flac"), language="en")
    assert _waiting_for(service, queued["id"], "waiting for an offline worker")["waiting_reason"] \
        == "waiting for an offline worker"  # the stopped worker removed its row at once
    assert _cli(service, "workers", "--here").returncode == 1


@pytest.mark.funasr
def test_a_funasr_worker_takes_the_waiting_job(live_service, tmp_path, speech_path):
    pytest.importorskip("funasr", reason="the funasr profile needs `pip install 'tingxie[funasr]'` (and torch)")
    from tests.support.funasr_models import cached_tiny_models

    models = cached_tiny_models()  # read only
    settings = make_settings(tmp_path, model_dir=models)
    service = live_service(settings, workers=0)
    job = service.submit(speech_path("asr_example.wav"), profile="funasr")
    assert service.job(job["id"])["waiting_reason"] == "waiting for a funasr worker"
    # An offline-only worker comes up: the job still waits for a funasr one.
    service.start_worker()
    time.sleep(3)
    assert service.job(job["id"])["status"] == "queued"
    # A worker for both profiles (its own process, models loaded for each) takes it.
    service.start_worker(True, "--profiles", "funasr,offline")
    finished = service.wait(job["id"])
    assert finished["status"] == "done" and finished["profile"] == "funasr", finished
    # Claims, not mentions: the offline worker's sweeper may log re-sending the waiting job.
    assert re.search(rf"job {job['id']} attempt", service.log("worker1"))
    assert not re.search(rf"job {job['id']} (attempt|is not claimable|was claimed)", service.log("worker0"))
    assert requests.get(f"{service.base_url}/api/v1/jobs/{job['id']}", timeout=10).json()["waiting_reason"] is None
