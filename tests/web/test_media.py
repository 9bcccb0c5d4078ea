"""GET /api/v1/jobs/<id>/media from either store: the probe's type, nosniff and a sandbox CSP,
byte ranges for players, conditional requests, 416 outside the file, 410 once it is gone."""
from __future__ import annotations

import io

import pytest

from core.db import session_scope
from core.models import Job
from tests.support.settings import make_settings


@pytest.fixture(params=["local", "s3"])
def media_client(request, tmp_path, migrated):
    from web import create_app

    overrides = {}
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        overrides = server.storage_settings(request.getfixturevalue("s3_bucket"))
    settings = make_settings(tmp_path, **overrides)
    migrated.migrate(settings)
    app = create_app(settings, {"TESTING": True})
    yield app.test_client()
    app.extensions["tingxie"].close()


def test_ranges_and_conditional_requests(media_client, speech_path):
    data = speech_path("jfk.flac").read_bytes()
    job = media_client.post("/api/v1/jobs", data={"file": (io.BytesIO(data), "jfk.flac")},
                            content_type="multipart/form-data").json
    url = job["links"]["media"]
    whole = media_client.get(url)
    assert whole.status_code == 200 and whole.data == data
    assert whole.headers["Content-Type"] == "audio/flac" and whole.headers["Content-Length"] == str(len(data))
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert whole.headers["Content-Security-Policy"] == "sandbox; default-src 'none'; frame-ancestors 'none'"
    assert whole.headers["Content-Disposition"].startswith("inline;")
    etag = whole.headers["ETag"]

    part = media_client.get(url, headers={"Range": "bytes=-100"})
    assert part.status_code == 206 and part.data == data[-100:]
    assert part.headers["Content-Range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"
    open_ended = media_client.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert open_ended.status_code == 206 and open_ended.data == data[-10:]
    assert media_client.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    # A Range for another version of the file (If-Range) gets the whole current file.
    stale = media_client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.data == data
    assert media_client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}).data == data[:10]
    assert media_client.get(url, headers={"If-None-Match": etag}).status_code == 304
    head = media_client.head(url)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data)) and head.data == b""


def test_a_file_gone_from_the_store_is_410(media_client, speech_path):
    job = media_client.post("/api/v1/jobs", data={"file": (io.BytesIO(speech_path("jfk.flac").read_bytes()), "a.flac")},
                            content_type="multipart/form-data").json
    services = media_client.application.extensions["tingxie"]
    with session_scope(services.db) as session:
        job_id = session.get(Job, job["id"]).id
    services.store.delete_job(job_id)
    gone = media_client.get(job["links"]["media"])
    assert gone.status_code == 410 and gone.json["error"]["code"] == "gone"
