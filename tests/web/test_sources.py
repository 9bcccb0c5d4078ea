"""The REST door taking a link instead of a file (``source_url``, a form without a file or JSON)
and a delivery location (``output_url``): the web tier records the job and never connects to the
link; a bucket the tenant was not given is a 404, as is another tenant's."""
from __future__ import annotations

import dataclasses

import pytest

from core.db import session_scope
from core.models import Job
from tests.support.waiting import make_token

SOURCES = {"acme": ("s3://calls/acme/",), "beta": ("s3://calls/beta/",)}


@pytest.fixture
def sources_app(any_settings, db):
    """The web tier of a deployment that lists buckets for acme (TINGXIE_TENANT_SOURCES/OUTPUTS)."""
    from web import create_app

    app = create_app(dataclasses.replace(any_settings, tenant_sources=SOURCES,
                                         tenant_outputs={"acme": ("s3://results/acme/",)}), {"TESTING": True})
    yield app
    app.extensions["tingxie"].close()


@pytest.fixture
def sources_client(sources_app):
    return sources_app.test_client()


@pytest.fixture
def acme(any_settings, db):
    return {"Authorization": f"Bearer {make_token(any_settings, 'acme')}"}


def test_a_link_is_recorded_for_the_worker_to_fetch(sources_client, sources_app, acme):
    r = sources_client.post("/api/v1/jobs", headers=acme, json={
        "source_url": "https://media.example.com/calls/0412%20am.wav?sig=abc", "language": "en",
        "output_url": "s3://results/acme/run-1/", "output_formats": ["srt", "json"]})
    assert r.status_code == 202, r.json
    job = sources_client.get(r.json["links"]["self"], headers=acme).json
    assert job["source_url"] == "https://media.example.com/calls/0412%20am.wav?sig=abc"
    assert job["filename"] == "0412 am.wav" and job["size_bytes"] == 0 and job["duration_ms"] is None
    assert job["options"]["output_url"] == "s3://results/acme/run-1/"
    assert job["options"]["output_formats"] == ["srt", "json"]
    assert job["output"] == {"last_status": None, "delivered_at": None}
    with session_scope(sources_app.extensions["tingxie"].db) as s:
        row = s.get(Job, job["id"])
        assert row.media_info is None and row.media_key == f"{row.id}/source.wav" and row.enqueued_at is not None
    assert sources_app.extensions["tingxie"].store.keys() == []  # nothing fetched by the web tier


def test_a_form_without_a_file_takes_a_link(sources_client, acme):
    r = sources_client.post("/api/v1/jobs", headers=acme, data={"source_url": "s3://calls/acme/2024/a.flac"},
                    content_type="multipart/form-data")
    assert r.status_code == 202, r.json
    assert sources_client.get(r.json["links"]["self"], headers=acme).json["filename"] == "a.flac"


@pytest.mark.parametrize("body,status,code", [
    ({}, 400, "no_file"),
    ({"source_url": "ftp://example.com/a.wav"}, 400, "bad_source_url"),
    ({"source_url": "file:///etc/passwd"}, 400, "bad_source_url"),
    ({"source_url": "s3://calls/acme/../beta/a.wav"}, 400, "bad_source_url"),
    ({"source_url": 7}, 400, "bad_source_url"),
    ({"source_url": "https://example.com/a.wav", "output_formats": ["docx"]}, 400, "bad_output_url"),
    ({"source_url": "https://example.com/a.wav", "output_url": "https://example.com/out/"}, 400, "bad_output_url"),
    ({"source_url": "s3://calls/beta/a.wav"}, 404, "not_found"),  # another tenant's folder
    ({"source_url": "s3://foreign-bucket/acme/a.wav"}, 404, "not_found"),  # a bucket nobody listed
    ({"source_url": "https://example.com/a.wav", "output_url": "s3://results/beta/"}, 404, "not_found"),
    ({"source_url": "https://example.com/a.wav", "output_url": "s3://other-results/acme/"}, 404, "not_found"),
])
def test_refused_links_leave_no_job(sources_client, sources_app, acme, body, status, code):
    r = sources_client.post("/api/v1/jobs", headers=acme, json=body)
    assert (r.status_code, r.json["error"]["code"]) == (status, code), r.json
    with session_scope(sources_app.extensions["tingxie"].db) as s:
        assert s.query(Job).count() == 0


def test_a_file_and_a_link_together_are_refused(sources_client, acme, speech_path):
    with open(speech_path("jfk.flac"), "rb") as fh:
        r = sources_client.post("/api/v1/jobs", headers=acme, content_type="multipart/form-data",
                        data={"file": (fh, "jfk.flac"), "source_url": "https://example.com/a.wav"})
    assert (r.status_code, r.json["error"]["code"]) == (400, "bad_source_url")


def test_another_tenant_neither_reads_the_bucket_nor_sees_the_job(sources_client, any_settings, acme):
    beta = {"Authorization": f"Bearer {make_token(any_settings, 'beta')}"}
    mine = sources_client.post("/api/v1/jobs", headers=acme, json={"source_url": "s3://calls/acme/a.wav"}).json
    r = sources_client.post("/api/v1/jobs", headers=beta, json={"source_url": "s3://calls/acme/a.wav"})
    assert (r.status_code, r.json["error"]["code"]) == (404, "not_found")
    assert sources_client.get(mine["links"]["self"], headers=beta).status_code == 404
