"""Webhooks through the real worker: a job with a callback_url is POSTed exactly once, signed,
when it is done; a failing receiver is retried with backoff until it accepts."""
from __future__ import annotations

import json
import time

import pytest

from core import webhooks
from tests.support.settings import make_settings

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_one_signed_delivery_per_job(live_service, tmp_path, speech_path, webhook_receiver):
    settings = make_settings(tmp_path, webhook_secret="deployment-secret", webhook_allow=("127.0.0.1",))
    service = live_service(settings)
    receiver = webhook_receiver([200])
    a = service.submit(speech_path("asr_example.wav"), hotwords="达摩院", callback_url=receiver.url)
    b = service.submit(speech_path("jfk.flac"), language="en", callback_url=receiver.url)
    plain = service.submit(speech_path("asr_example.mp3"))  # no callback: no delivery
    for job in (a, b, plain):
        assert service.wait(job["id"])["status"] == "done"
    wait_for(lambda: len(receiver.deliveries) >= 2, 60, "two deliveries")
    time.sleep(3)  # a duplicate would arrive within this
    assert len(receiver.deliveries) == 2
    by_job = {}
    for headers, body in receiver.deliveries:
        assert webhooks.verify(b"deployment-secret", body, headers[webhooks.SIGNATURE_HEADER])
        payload = json.loads(body)
        by_job[payload["job"]["id"]] = payload
    assert set(by_job) == {a["id"], b["id"]}
    assert by_job[a["id"]]["event"] == "job.done" and "达摩院" in by_job[a["id"]]["job"]["text"]
    for job in (a, b):
        record = service.job(job["id"])["webhook"]
        assert record["attempts"] == 1 and record["last_status"] == "200" and record["delivered_at"]
    assert service.job(plain["id"])["webhook"]["attempts"] == 0


def test_failing_receiver_is_retried_until_it_accepts(live_service, tmp_path, speech_path, webhook_receiver):
    settings = make_settings(tmp_path, webhook_secret="s", webhook_allow=("127.0.0.0/8",))
    service = live_service(settings)
    receiver = webhook_receiver([500, 200])
    job = service.submit(speech_path("asr_example.wav"), callback_url=receiver.url)
    assert service.wait(job["id"])["status"] == "done"
    wait_for(lambda: service.job(job["id"])["webhook"]["delivered_at"], 60, "the retried delivery")
    assert len(receiver.deliveries) == 2
    (first_headers, first), (second_headers, second) = receiver.deliveries
    assert first_headers[webhooks.DELIVERY_HEADER] == f"{job['id']}.1"
    assert second_headers[webhooks.DELIVERY_HEADER] == f"{job['id']}.2"
    assert json.loads(first) == json.loads(second)
    record = service.job(job["id"])["webhook"]
    assert record["attempts"] == 2 and record["last_status"] == "200"


def test_internal_callback_is_refused_at_submission(live_service, tmp_path, speech_path):
    service = live_service(make_settings(tmp_path), workers=0)
    import requests

    with open(speech_path("asr_example.wav"), "rb") as fh:
        response = requests.post(service.base_url + "/api/v1/jobs", files={"file": ("a.wav", fh)},
                                 data={"callback_url": "http://127.0.0.1:9/hook"}, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_callback_url"
