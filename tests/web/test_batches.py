"""The batches API in process, on both backends with the real broker (no worker: jobs are ended
through core, as a worker ends them): an open batch takes files, refuses a key twice, closes, shows
its counts, zips its transcripts, is canceled and deleted whole; another tenant gets 404 on every
route; bad input is a 4xx."""
from __future__ import annotations

import dataclasses
import io
import zipfile

import pytest
from sqlalchemy import select

from core import jobs, tokens
from core.db import session_scope
from core.models import Batch, Job
from tests.support.transcripts import HELLO_ZH as TRANSCRIPT


def _file(client, batch_id: str, data: bytes, name: str, key: str | None = None, headers=None):
    form = {"file": (io.BytesIO(data), name), **({"key": key} if key else {})}
    return client.post(f"/api/v1/batches/{batch_id}/files", data=form, content_type="multipart/form-data",
                       headers=headers or {})


def _finish(app, job_id: str) -> None:
    with session_scope(app.extensions["tingxie"].db) as s:
        jobs.complete(s, job_id, jobs.claim(s, job_id), TRANSCRIPT)


def test_an_open_batch_takes_files_once_each_then_closes_ends_and_zips(client, app, any_settings, speech_path):
    r = client.post("/api/v1/batches", json={"name": "calls", "language": "zh", "hotwords": "阿里巴巴 20"})
    assert r.status_code == 201 and r.json["status"] == "open" and r.headers["Location"] == r.json["links"]["self"]
    batch = r.json
    assert batch["options"]["language"] == "zh" and batch["options"]["hotwords"] == [["阿里巴巴", 20.0]]
    wav = speech_path("asr_example.wav").read_bytes()
    first = _file(client, batch["id"], wav, "a.wav", key="day1/a.wav")
    second = _file(client, batch["id"], wav, "b.wav", key="day1/b.wav")
    assert first.status_code == 202 and second.status_code == 202, (first.json, second.json)
    again = _file(client, batch["id"], wav, "a.wav", key="day1/a.wav")  # a resumed upload
    assert again.status_code == 200 and again.json["id"] == first.json["id"]
    assert list((any_settings.work_dir / "uploads").iterdir()) == []  # the second copy was not kept
    job = client.get(first.json["links"]["self"]).json
    assert job["batch_id"] == batch["id"] and job["batch_key"] == "day1/a.wav"
    assert job["options"]["language"] == "zh" and job["callback_url"] is None
    listed = client.get(batch["links"]["jobs"]).json
    assert [j["batch_key"] for j in listed["items"]] == ["day1/a.wav", "day1/b.wav"] and listed["total"] == 2

    closed = client.post(batch["links"]["close"]).json
    assert closed["status"] == "running" and closed["counts"]["queued"] == 2 and closed["total"] == 2
    refused = _file(client, batch["id"], wav, "c.wav", key="day1/c.wav")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "batch_closed"
    _finish(app, first.json["id"])
    half = client.get(batch["links"]["self"]).json
    assert half["counts"]["done"] == 1 and 0 < half["progress"] < 1
    _finish(app, second.json["id"])
    assert client.get(batch["links"]["self"]).json["status"] == "running"  # nobody has looked yet
    client.post(batch["links"]["close"])  # closing again is harmless, and sees the end
    done = client.get(batch["links"]["self"]).json
    assert done["status"] == "completed" and done["progress"] == 1.0 and done["finished_at"] is not None

    r = client.get(f"{batch['links']['transcripts']}?format=srt,txt")
    assert r.status_code == 200 and r.mimetype == "application/zip"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="calls.zip"')
    names = sorted(zipfile.ZipFile(io.BytesIO(r.data)).namelist())
    assert names == ["day1/a.srt", "day1/a.txt", "day1/b.srt", "day1/b.txt", "jobs.jsonl"]
    assert [b["id"] for b in client.get("/api/v1/batches").json["items"]] == [batch["id"]]


def test_cancel_then_delete_a_whole_batch(client, app, any_settings, speech_path):
    batch = client.post("/api/v1/batches", json={}).json
    wav = speech_path("asr_example.wav").read_bytes()
    ids = [_file(client, batch["id"], wav, f"{n}.wav").json["id"] for n in range(3)]
    _finish(app, ids[0])
    canceled = client.post(batch["links"]["cancel"]).json
    assert canceled["status"] == "canceled" and canceled["counts"] == {
        "queued": 0, "running": 0, "done": 1, "failed": 0, "canceled": 2}
    assert canceled["finished_at"] is not None
    again = client.post(batch["links"]["cancel"])
    assert again.status_code == 409 and again.json["error"]["code"] == "not_cancelable"
    assert client.delete(batch["links"]["self"]).status_code == 204
    assert client.get(batch["links"]["self"]).status_code == 404
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.execute(select(Job.id).where(Job.id.in_(ids))).first() is None
        assert s.execute(select(Batch)).first() is None
    assert list(any_settings.media_dir.iterdir()) == []  # every job's file went with it


def test_deleting_a_batch_cancels_its_running_jobs_first(client, app):
    batch = client.post("/api/v1/batches", json={}).json
    with session_scope(app.extensions["tingxie"].db) as s:
        job_id = jobs.new_job_id()
        from core import batches
        jobs.create_job(s, job_id=job_id, options=batches.job_options(s.get(Batch, batch["id"])),
                        media_key=f"{job_id}/source.wav", filename="x.wav", size_bytes=1, duration_ms=1,
                        tenant="local", batch_id=batch["id"])
        jobs.claim(s, job_id)
    assert client.delete(batch["links"]["self"]).status_code == 204
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.get(Job, job_id) is None


@pytest.mark.parametrize("body,code", [
    ({"sources": ["ftp://host/a.wav"]}, "bad_request"),
    ({"sources": ["http://host/a.wav"] * 10_001}, "bad_option"),
    ({"sources": "http://host/a.wav"}, "bad_option"),
    ({"profile": "nope"}, "unknown_profile"),
    ({"language": "xx"}, "unsupported_language"),
    ({"callback_url": "http://127.0.0.1/hook"}, "bad_callback_url"),
    ({"num_speakers": 2, "diarize": False}, "bad_speakers"),
])
def test_bad_batches_are_refused_and_make_nothing(client, app, body, code):
    r = client.post("/api/v1/batches", json=body)
    assert r.status_code == 400 and r.json["error"]["code"] == code, r.json
    if "sources" in body and isinstance(body["sources"], list) and len(body["sources"]) > 10_000:
        assert "at most 10000 sources" in r.json["error"]["message"]
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.execute(select(Batch)).first() is None


def test_links_become_the_batchs_jobs_at_once_and_foreign_buckets_make_nothing(client, app):
    r = client.post("/api/v1/batches", json={"sources": ["https://example.com/a.wav", "https://example.com/b.mp3"],
                                             "language": "en"})
    assert r.status_code == 201, r.json
    batch = r.json
    assert batch["total"] == 2
    with session_scope(app.extensions["tingxie"].db) as s:
        rows = s.execute(select(Job).where(Job.batch_id == batch["id"]).order_by(Job.filename)).scalars().all()
        assert [(j.filename, j.source_url, j.status) for j in rows] == [
            ("a.wav", "https://example.com/a.wav", "queued"), ("b.mp3", "https://example.com/b.mp3", "queued")]
        assert all(j.options["language"] == "en" and j.callback_url is None for j in rows)
    # A bucket the tenant was not given: 404, and no batch nor job is left.
    r = client.post("/api/v1/batches", json={"sources": ["https://example.com/c.wav", "s3://bucket/b.wav"]})
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found", r.json
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.execute(select(Batch).where(Batch.id != batch["id"])).first() is None
        assert s.execute(select(Job).where(Job.batch_id.is_(None))).first() is None


def test_more_sources_than_the_tenant_may_queue_are_refused(any_settings, db):
    from web import create_app

    app = create_app(dataclasses.replace(any_settings, tenant_max_jobs=3), {"TESTING": True})
    r = app.test_client().post("/api/v1/batches", json={"sources": ["https://example.com/a.wav"] * 4})
    assert r.status_code == 429 and r.json["error"]["code"] == "too_many_jobs"
    assert "TINGXIE_TENANT_MAX_JOBS" in r.json["error"]["message"]
    app.extensions["tingxie"].close()


def test_bad_zip_formats_and_bad_paging(client):
    batch = client.post("/api/v1/batches", json={}).json
    for query in ("format=pdf", "format=srt,doc", "format=,"):
        r = client.get(f"{batch['links']['transcripts']}?{query}")
        assert r.status_code == 400 and r.json["error"]["code"] == "bad_format", (query, r.json)
    assert client.get(f"{batch['links']['jobs']}?per_page=1001").status_code == 400
    assert client.get("/api/v1/batches?page=0").status_code == 400


# --- tenants ------------------------------------------------------------------------------------
BATCH_ROUTES = [
    ("GET", "/api/v1/batches/{id}", 200),
    ("GET", "/api/v1/batches/{id}/jobs", 200),
    ("GET", "/api/v1/batches/{id}/transcripts.zip?format=srt,json", 200),
    ("POST", "/api/v1/batches/{id}/files", 202),
    ("POST", "/api/v1/batches/{id}/close", 200),
    ("POST", "/api/v1/batches/{id}/cancel", 200),
    ("DELETE", "/api/v1/batches/{id}", 204),
]


@pytest.fixture
def two_tenants(any_settings, db):
    from web import create_app

    app = create_app(dataclasses.replace(any_settings, auth="required"), {"TESTING": True})
    with session_scope(app.extensions["tingxie"].db) as s:
        own = {"Authorization": f"Bearer {tokens.create(s, tenant='tenant-a').secret}"}
        other = {"Authorization": f"Bearer {tokens.create(s, tenant='tenant-b').secret}"}
    client = app.test_client()
    batch = client.post("/api/v1/batches", json={"name": "secret-name"}, headers=own).json
    yield app, client, own, other, batch["id"]
    app.extensions["tingxie"].close()


@pytest.mark.parametrize("method,route,ok", BATCH_ROUTES)
def test_another_tenant_gets_404_on_every_batch_route(two_tenants, speech_path, method, route, ok):
    app, client, own, other, batch_id = two_tenants
    wav = speech_path("asr_example.wav").read_bytes()

    def call(headers, target=batch_id):
        extra = {"data": {"file": (io.BytesIO(wav), "a.wav")}, "content_type": "multipart/form-data"} \
            if route.endswith("/files") else {}
        return client.open(route.format(id=target), method=method, headers=headers, **extra)

    theirs = call(other)
    assert theirs.status_code == 404 and theirs.json["error"]["code"] == "not_found", theirs.data[:200]
    assert b"secret-name" not in theirs.data and b"tenant-a" not in theirs.data
    missing = call(other, "f" * 32)
    assert missing.data.replace(b"f" * 32, batch_id.encode()) == theirs.data  # the same as no batch at all
    assert call({}).status_code == 401
    assert call(own).status_code == ok
    with session_scope(app.extensions["tingxie"].db) as s:
        assert (s.get(Batch, batch_id) is None) == (method == "DELETE")


def test_the_batch_list_shows_each_tenant_its_own(two_tenants):
    _app, client, own, other, batch_id = two_tenants
    assert [b["id"] for b in client.get("/api/v1/batches", headers=own).json["items"]] == [batch_id]
    assert client.get("/api/v1/batches", headers=other).json == {
        "items": [], "page": 1, "per_page": 20, "total": 0, "links": {}}


def test_the_job_list_can_leave_out_batches_jobs(client, speech_path):
    """The page lists a batch as one row: ``in_batch=false`` leaves its jobs out of the job list."""
    wav = speech_path("asr_example.wav").read_bytes()
    single = client.post("/api/v1/jobs", data={"file": (io.BytesIO(wav), "one.wav")},
                         content_type="multipart/form-data").json["id"]
    batch = client.post("/api/v1/batches", json={}).json
    in_batch = _file(client, batch["id"], wav, "a.wav", key="a.wav").json["id"]

    def ids(query: str) -> list[str]:
        answer = client.get(f"/api/v1/jobs?{query}").json
        assert answer["total"] == len(answer["items"])
        return [job["id"] for job in answer["items"]]

    assert set(ids("")) == {single, in_batch}
    assert ids("in_batch=false") == [single]
    assert ids("in_batch=true") == [in_batch]
    assert client.get("/api/v1/jobs?in_batch=maybe").status_code == 400
