"""Jobs by bucket key and delivery to a bucket, on the real S3 server the tests run (moto's):
an s3:// source read with the deployment's credentials, and a done job's transcript written to
its output_url once, in each format, the same bytes again on a retry."""
from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import update

from core import delivery, jobs
from core.db import session_scope
from core.errors import NotFoundError, TingxieError
from core.fetch import FIRST_PROBE_BYTES, fetch
from core.models import Job
from core.options import JobOptions
from core.sources import check_source
from core.submit import resolve_options
from tests.support.media_files import long_wav

TRANSCRIPT = {"language": "en", "duration_ms": 2000, "text": "Hello there.",
              "segments": [{"start_ms": 0, "end_ms": 2000, "text": "Hello there.", "words": []}]}


@pytest.fixture
def s3_settings(any_settings, s3_server, s3_bucket):
    return dataclasses.replace(any_settings, **s3_server.storage_settings(s3_bucket),
                               tenant_sources={"acme": (f"s3://{s3_bucket}/in/acme/",)},
                               tenant_outputs={"acme": (f"s3://{s3_bucket}/out/acme/",)})


def test_a_key_is_read_with_the_deployments_credentials(s3_settings, s3_server, s3_bucket, tmp_path):
    s3_server.client().put_object(Bucket=s3_bucket, Key="in/acme/call.wav", Body=b"RIFF-bytes")
    url = f"s3://{s3_bucket}/in/acme/call.wav"
    check_source(url, "acme", s3_settings.tenant_sources)
    assert fetch(s3_settings, url, tmp_path / "got").read_bytes() == b"RIFF-bytes"


def test_a_missing_key_or_foreign_bucket_is_answered_as_not_found(s3_settings, s3_server, s3_bucket, tmp_path):
    """The worker reads only what the door let through; a key that is gone, and a bucket the
    store does not have, both fail the same way as a key nobody listed (404-shaped)."""
    for url in (f"s3://{s3_bucket}/in/acme/gone.wav", "s3://no-such-bucket-here/in/acme/x.wav"):
        with pytest.raises(Exception) as failed:
            fetch(s3_settings, url, tmp_path / "got")
        assert getattr(failed.value, "code", None) == "not_found", failed.value
    s3_server.client().put_object(Bucket=s3_bucket, Key="in/beta/call.wav", Body=b"theirs")
    with pytest.raises(NotFoundError):
        check_source(f"s3://{s3_bucket}/in/beta/call.wav", "acme", s3_settings.tenant_sources)


def test_the_size_cap_holds_for_a_key(s3_settings, s3_server, s3_bucket, tmp_path):
    s3_server.client().put_object(Bucket=s3_bucket, Key="in/acme/big.wav", Body=b"x" * 4096)
    with pytest.raises(Exception) as refused:
        fetch(dataclasses.replace(s3_settings, max_upload_bytes=1024), f"s3://{s3_bucket}/in/acme/big.wav",
              tmp_path / "got")
    assert refused.value.code == "too_large"
    assert not (tmp_path / "got").exists()


def test_the_duration_cap_holds_as_a_key_arrives(s3_settings, s3_server, s3_bucket, tmp_path):
    """A 10-minute WAV (19 MB) under a one-minute cap: its header, which the object's length holds,
    stops the read at the first probe (1 MiB); a 50 s one is read whole."""
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="in/acme/long.wav", Body=b"".join(long_wav(600).pieces()))
    client.put_object(Bucket=s3_bucket, Key="in/acme/short.wav", Body=b"".join(long_wav(50).pieces()))
    settings = dataclasses.replace(s3_settings, max_duration_s=60.0)
    seen: list[int] = []
    with pytest.raises(TingxieError) as refused:
        fetch(settings, f"s3://{s3_bucket}/in/acme/long.wav", tmp_path / "got",
              lambda received, total: seen.append(received))
    assert refused.value.code == "too_long"
    assert refused.value.message == (f"s3://{s3_bucket}/in/acme/long.wav: The file lasts at least 10m00s, longer than "
                                     "the 1m00s this service accepts; split it or ask the operator to raise the limit. "
                                     "(TINGXIE_MAX_DURATION_S)")
    assert max(seen) < FIRST_PROBE_BYTES  # the chunk that reached 1 MiB was the last one read
    assert not (tmp_path / "got").exists()
    got = fetch(settings, f"s3://{s3_bucket}/in/acme/short.wav", tmp_path / "got")
    assert got.read_bytes() == b"".join(long_wav(50).pieces())


def _done_job(settings, factory, output_url: str, formats=("json", "srt"), tenant="acme") -> str:
    job_id = jobs.new_job_id()
    options = resolve_options(settings, JobOptions(output_url=output_url, output_formats=formats), tenant=tenant)
    with session_scope(factory) as session:
        jobs.create_job(session, job_id=job_id, options=options, media_key=f"{job_id}/source.wav",
                        filename="call.wav", size_bytes=1, duration_ms=2000, tenant=tenant)
    with session_scope(factory) as session:
        attempt = jobs.claim(session, job_id)
        assert jobs.complete(session, job_id, attempt, TRANSCRIPT)
    return job_id


def test_a_done_job_is_delivered_once_in_each_format(s3_settings, db, s3_server, s3_bucket):
    job_id = _done_job(s3_settings, db, f"s3://{s3_bucket}/out/acme/batch-1/")
    result = delivery.deliver(s3_settings, db, job_id)
    assert result.ok, result
    keys = sorted(k for k in s3_server.objects(s3_bucket) if k.startswith("out/"))
    assert keys == [f"out/acme/batch-1/{job_id}.json", f"out/acme/batch-1/{job_id}.srt"]
    client = s3_server.client()
    srt = client.get_object(Bucket=s3_bucket, Key=f"out/acme/batch-1/{job_id}.srt")
    assert b"Hello there." in srt["Body"].read() and srt["ContentType"].startswith("application/x-subrip")
    with session_scope(db) as session:
        job = session.get(Job, job_id)
        assert job.output_delivered_at is not None and job.output_last_status.startswith("delivered: s3://")
    # A second delivery (a redelivered message) writes nothing.
    tags = {k: client.head_object(Bucket=s3_bucket, Key=k)["LastModified"] for k in keys}
    assert delivery.deliver(s3_settings, db, job_id) is None
    # A retry after a delivery whose record was lost writes the same bytes to the same keys.
    before = {k: client.get_object(Bucket=s3_bucket, Key=k)["Body"].read() for k in keys}
    with session_scope(db) as session:
        session.execute(update(Job).where(Job.id == job_id).values(output_delivered_at=None))
    assert delivery.deliver(s3_settings, db, job_id).ok
    assert sorted(k for k in s3_server.objects(s3_bucket) if k.startswith("out/")) == keys
    assert {k: client.get_object(Bucket=s3_bucket, Key=k)["Body"].read() for k in keys} == before
    assert set(tags) == set(keys)


def test_output_outside_the_tenants_folders_is_not_found_at_submission(s3_settings, s3_bucket):
    for url, tenant in [(f"s3://{s3_bucket}/out/beta/", "acme"), ("s3://foreign-bucket/out/acme/", "acme"),
                        (f"s3://{s3_bucket}/out/acme/", "beta")]:
        with pytest.raises(NotFoundError):
            resolve_options(s3_settings, JobOptions(output_url=url), tenant=tenant)


def test_a_location_taken_away_after_submission_receives_nothing(s3_settings, db, s3_server, s3_bucket):
    job_id = _done_job(s3_settings, db, f"s3://{s3_bucket}/out/acme/")
    result = delivery.deliver(dataclasses.replace(s3_settings, tenant_outputs={}), db, job_id)
    assert not result.ok and not result.retry and result.status.startswith("refused: no output location")
    assert not [k for k in s3_server.objects(s3_bucket) if k.startswith("out/")]
