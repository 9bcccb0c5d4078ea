"""The media store down or full: a private S3 server (moto's, over HTTP) stopped, then back on the
same address (another server with the same object, through a forwarder); a scratch disk that fills
up (a small tmpfs); uploads that never complete."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import requests

from tests.support.forward import Forwarder
from tests.support.s3 import S3Server
from tests.support.faults import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def private_s3(tmp_path):
    """S3 servers of this test's own (the session's is shared by other tests); the last is stopped."""
    servers = [S3Server.start(tmp_path / "moto.log")]
    yield servers
    servers[-1].stop()


def test_a_worker_waits_out_a_media_store_that_is_down(live_service, settings, sql, private_s3, speech_path,
                                                        tmp_path):
    """The store is down when the job is claimed: the job runs and waits (no attempt counted, no
    failure), /readyz names the store; back on the same address with the same object, the job is done
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

    # The store comes back on its address with the object: another S3 server, filled first, then
    # forwarded to from the address the worker reads (restarted in place, it would come back empty,
    # and a read between the bucket and the object would rightly find the media gone).
    again = S3Server.start(tmp_path / "moto-again.log")
    private_s3.append(again)
    again.client().create_bucket(Bucket=bucket)
    again.client().put_object(Bucket=bucket, Key=name, Body=stored)
    forward = Forwarder(s3.port, ("127.0.0.1", again.port))
    try:
        job = service.wait(job_id, timeout_s=300)
        assert (job["status"], job["attempt"], job["waiting_reason"]) == ("done", 1, None), job
        assert "fellow americans" in sql(settings).transcript(job_id)["text"].lower()
        db = sql(settings)
        assert (db.job(job_id).lost_attempts, db.job(job_id).waiting_reason) == (0, None)
        waits = [e["data"].get("waiting_reason") for e in db.events(job_id) if e["type"] == "waiting"]
        assert waits == ["media store unavailable", None], db.events(job_id)
        assert requests.get(service.base_url + "/readyz", timeout=30).status_code == 200
    finally:
        forward.close()


def _node_of(db, job_id: str, worker) -> bool:
    return db.job(job_id).worker.startswith(f"tingxie-{worker.pid}@")


def test_a_worker_claims_only_with_room_for_the_decoded_audio(live_service, settings, sql, speech_path, tmp_path):
    """jfk.flac decodes to 352 KB; a worker whose scratch is a 256 KB tmpfs leaves it queued (no
    attempt) and a worker with room takes it."""
    from tests.support.filesystems import small_tmpfs

    settings = dataclasses.replace(settings, resend_after_s=3.0)
    service = live_service(settings, workers=0)
    db = sql(settings)
    with small_tmpfs(tmp_path / "small-scratch", "256k") as scratch:
        small = service.start_worker(settings=dataclasses.replace(settings, scratch_dir=scratch,
                                                                  scratch_margin_bytes=1024))
        job_id = service.submit(speech_path("jfk.flac"), language="en")["id"]
        wait_for(lambda: f"job {job_id} needs about" in service.log("worker0"), 120, "the small worker to leave it")
        row = db.job(job_id)
        assert (row.status, row.attempt) == ("queued", 0)
        roomy = service.start_worker()
        job = service.wait(job_id, timeout_s=300)
        assert (job["status"], job["attempt"]) == ("done", 1), job
        assert _node_of(db, job_id, roomy) and not _node_of(db, job_id, small)
        service.discard()


def test_a_decode_that_fills_the_scratch_is_tried_again_elsewhere(live_service, settings, sql, speech_path,
                                                                  tmp_path):
    """A file whose stored length understates its audio (the job says 1 s; jfk.flac decodes to 11 s,
    352 KB) on a worker whose scratch is a 128 KB tmpfs: the decode runs out of space. The attempt
    ends scratch_full and the job is queued again, not counted as lost and never blamed on the
    file (truncated_media); that worker does not take it again, a worker with room does."""
    from sqlalchemy import text

    from tests.support.filesystems import small_tmpfs

    settings = dataclasses.replace(settings, resend_after_s=3.0)
    service = live_service(settings, workers=0)
    db = sql(settings)
    job_id = service.submit(speech_path("jfk.flac"), language="en")["id"]
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE jobs SET duration_ms = 1000 WHERE id = :id"), {"id": job_id})
    with small_tmpfs(tmp_path / "small-scratch", "128k") as scratch:
        small = service.start_worker(settings=dataclasses.replace(settings, scratch_dir=scratch,
                                                                  scratch_margin_bytes=1024))
        requeued = wait_for(lambda: [e for e in db.events(job_id) if e["type"] == "queued" and
                                     e["data"].get("reason", "").startswith("scratch_full")], 120, "scratch_full")
        assert "not at fault" in requeued[0]["data"]["reason"]
        wait_for(lambda: f"job {job_id} needs about" in service.log("worker0"), 120, "the small worker to leave it")
        roomy = service.start_worker()
        job = service.wait(job_id, timeout_s=300)
        assert (job["status"], job["attempt"], job["error"]) == ("done", 2, None), job
        assert _node_of(db, job_id, roomy) and not _node_of(db, job_id, small)
        assert db.job(job_id).lost_attempts == 0
        assert "failed" not in [e["type"] for e in db.events(job_id)]
        assert "fellow americans" in db.transcript(job_id)["text"].lower()
        service.discard()


@pytest.fixture(scope="module")
def large_wav(tmp_path_factory) -> Path:
    """A 200 MB WAV (19 minutes of 44.1 kHz stereo noise): thirteen 16 MiB parts on their way to S3."""
    import subprocess

    from media import find_ffmpeg

    path = tmp_path_factory.mktemp("large") / "large.wav"
    subprocess.run([find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "anoisesrc=d=1140:r=44100:a=0.1",
                    "-ac", "2", "-c:a", "pcm_s16le", str(path)], check=True)
    return path


def _multipart_uploads(s3: S3Server, bucket: str) -> list[dict]:
    return s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_an_upload_left_unfinished_by_a_killed_web_process_is_aborted_by_the_sweeper(
        live_service, settings, private_s3, large_wav):
    import os
    import signal
    import threading

    s3 = private_s3[0]
    bucket = s3.new_bucket()
    settings = dataclasses.replace(settings, spool_max_age_s=2.0, **s3.storage_settings(bucket))
    service = live_service(settings, workers=0)
    answers: list = []

    def upload() -> None:
        try:
            with open(large_wav, "rb") as fh:
                answers.append(requests.post(service.base_url + "/api/v1/jobs", files={"file": ("large.wav", fh)},
                                             timeout=300).status_code)
        except requests.RequestException as exc:
            answers.append(exc)

    uploader = threading.Thread(target=upload)
    uploader.start()
    (begun,) = wait_for(lambda: _multipart_uploads(s3, bucket), 240, "the multipart upload to begin", poll_s=0.02)
    os.killpg(service.web.pid, signal.SIGKILL)
    uploader.join(timeout=60)
    assert isinstance(answers[0], requests.RequestException), answers  # no 202: the job was never accepted
    assert [u["UploadId"] for u in _multipart_uploads(s3, bucket)] == [begun["UploadId"]]  # left behind

    service.start_worker()
    wait_for(lambda: not _multipart_uploads(s3, bucket), 120, "the sweeper to abort the upload")
    with pytest.raises(s3.client().exceptions.NoSuchUpload):  # its parts are gone with it
        s3.client().list_parts(Bucket=bucket, Key=begun["Key"], UploadId=begun["UploadId"])
    assert s3.objects(bucket) == []
    assert begun["Key"].startswith("media/")


def test_an_upload_whose_client_disconnects_leaves_nothing_in_the_bucket(live_service, settings, private_s3,
                                                                          large_wav):
    """The body is spooled to scratch before anything goes to the store: a client gone mid-body
    never starts a multipart upload, and leaves no object."""
    import socket

    s3 = private_s3[0]
    bucket = s3.new_bucket()
    settings = dataclasses.replace(settings, **s3.storage_settings(bucket))
    service = live_service(settings, workers=0)
    boundary = "tingxie-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"large.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    length = len(head) + large_wav.stat().st_size + len(f"\r\n--{boundary}--\r\n")
    with socket.create_connection((settings.host, settings.port), timeout=60) as sock:
        sock.sendall((f"POST /api/v1/jobs HTTP/1.1\r\nHost: {settings.host}\r\nContent-Length: {length}\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode() + head)
        with open(large_wav, "rb") as fh:
            sock.sendall(fh.read(100 * 1024**2))  # half the file, then gone
    spool = settings.scratch_dir / "uploads"
    wait_for(lambda: not list(spool.glob("*.part")), 120, "the web tier to drop the upload")
    assert _multipart_uploads(s3, bucket) == [] and s3.objects(bucket) == []
    assert requests.get(service.base_url + "/readyz", timeout=30).status_code == 200


def test_past_the_bound_the_job_fails_store_unavailable(live_service, settings, sql, private_s3, speech_path):
    """A store still down after TINGXIE_STORE_RETRY_S (3 s here): the job fails at attempt 1 with
    store_unavailable and a message naming the store and the setting; it is not counted as lost."""
    s3 = private_s3[0]
    bucket = s3.new_bucket()
    settings = dataclasses.replace(settings, store_retry_s=3.0, **s3.storage_settings(bucket))
    service = live_service(settings, workers=0)
    job_id = service.submit(speech_path("jfk.flac"), language="en")["id"]
    s3.stop()
    service.start_worker()
    job = service.wait(job_id, timeout_s=300)
    assert (job["status"], job["attempt"], job["error"]["code"]) == ("failed", 1, "store_unavailable"), job
    assert "TINGXIE_STORE_RETRY_S" in job["error"]["message"] and f"s3://{bucket}/media/" in job["error"]["message"]
    assert sql(settings).job(job_id).lost_attempts == 0
