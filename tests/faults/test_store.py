"""The media store down or full, a private S3 server (moto's, over HTTP) stopped and started again
on the same port; a scratch disk that fills up (a small tmpfs); uploads that never complete."""
from __future__ import annotations

import dataclasses

import pytest
import requests

from tests.s3 import S3Server
from tests.support.faults import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def private_s3(tmp_path):
    """An S3 server of this test's own (the session's is shared by other tests): stopped and started."""
    servers = [S3Server.start(tmp_path / "moto.log")]
    yield servers
    servers[-1].stop()


def test_a_worker_waits_out_a_media_store_that_is_down(live_service, settings, sql, private_s3, speech_path,
                                                        tmp_path):
    """The store is down when the job is claimed: the job runs and waits (no attempt counted, no
    failure), /readyz names the store; back on the same port with the same object, the job is done
    at attempt 1."""
    s3 = private_s3[0]
    bucket = s3.new_bucket()
    settings = dataclasses.replace(settings, **s3.storage_settings(bucket))
    service = live_service(settings, workers=0)
    job_id = service.submit(speech_path("jfk.flac"), language="en")["id"]
    (name,) = s3.objects(bucket)
    stored = s3.client().get_object(Bucket=bucket, Key=name)["Body"].read()
    s3.stop()

    service.start_worker()
    job = wait_for(lambda: (j := service.job(job_id))["waiting_reason"] == "media store unavailable" and j,
                   120, "the job to wait for the store")
    assert (job["status"], job["attempt"], job["error"]) == ("running", 1, None)
    ready = requests.get(service.base_url + "/readyz", timeout=30)
    assert ready.status_code == 503 and ready.json()["checks"]["media_store"].startswith("unavailable")

    s3 = S3Server.start(tmp_path / "moto-again.log", port=s3.port)
    private_s3.append(s3)
    s3.client().create_bucket(Bucket=bucket)
    s3.client().put_object(Bucket=bucket, Key=name, Body=stored)
    job = service.wait(job_id, timeout_s=300)
    assert (job["status"], job["attempt"], job["waiting_reason"]) == ("done", 1, None), job
    assert "fellow americans" in sql(settings).transcript(job_id)["text"].lower()
    db = sql(settings)
    assert (db.job(job_id).lost_attempts, db.job(job_id).waiting_reason) == (0, None)
    waits = [e["data"].get("waiting_reason") for e in db.events(job_id) if e["type"] == "waiting"]
    assert waits == ["media store unavailable", None], db.events(job_id)
    assert requests.get(service.base_url + "/readyz", timeout=30).status_code == 200
