"""The REST API against a real database and a real broker (no worker: jobs stay queued)."""
import io
import json
import os

import pytest
from sqlalchemy import select

from core import dispatch, jobs
from core.db import session_scope
from core.models import Job
from tests.support.settings import embedded_only


def _upload(client, data: bytes | None = None, name="a.flac", path=None, **form):
    if path is not None:
        data, name = path.read_bytes(), path.name
    form["file"] = (io.BytesIO(data), name)
    return client.post("/api/v1/jobs", data=form, content_type="multipart/form-data")


def test_submit_commits_then_enqueues(client, app, speech_path, any_settings):
    r = _upload(client, path=speech_path("jfk.flac"), language="en", hotwords="ComfyUI 20", itn="false")
    assert r.status_code == 202, r.json
    body = r.json
    assert body["status"] == "queued" and r.headers["Location"] == body["links"]["self"]
    job = client.get(body["links"]["self"]).json
    assert job["duration_ms"] == 11000 and job["options"] == {
        "language": "en", "itn": False, "hotwords": [["ComfyUI", 20.0]],
        "diarize": False, "num_speakers": None, "min_speakers": None, "max_speakers": None,
        "output_url": None, "output_formats": []}
    with session_scope(app.extensions["tingxie"].db) as s:
        row = s.get(Job, body["id"])
        assert row.enqueued_at is not None  # the message reached the broker
        assert row.media_key == f"{row.id}/source.flac"  # a key in the store, never a path
        assert (any_settings.media_dir / row.media_key).read_bytes() == speech_path("jfk.flac").read_bytes()
    # Nothing is left behind in the upload spool.
    assert list((any_settings.work_dir / "uploads").iterdir()) == []
    # The message is really on the broker.
    if any_settings.embedded_broker:
        assert len(list((any_settings.broker_dir / "queue").glob("*.msg"))) == 1
    else:
        import redis

        assert redis.Redis.from_url(any_settings.broker_url).llen("tingxie.offline") == 1  # its profile's queue


@pytest.mark.parametrize(
    "data,name,status,code",
    [
        (b"", "empty.wav", 400, "empty_file"),
        (b"this is not audio at all" * 100, "notes.mp3", 415, "bad_media"),
    ],
)
@embedded_only
def test_bad_uploads_are_refused_and_leave_nothing(client, app, any_settings, data, name, status, code):
    r = _upload(client, data, name)
    assert r.status_code == status and r.json["error"]["code"] == code, r.json
    assert name in r.json["error"]["message"] or code == "empty_file"
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.execute(select(Job)).first() is None
    assert list((any_settings.work_dir / "uploads").iterdir()) == []
    assert list(any_settings.media_dir.iterdir()) == []


@pytest.mark.parametrize("kind", ["hls-absolute", "hls-relative", "hls-m3u8", "concat-absolute", "concat-relative"])
@embedded_only
def test_playlists_naming_another_upload_are_refused_and_leave_nothing(client, app, any_settings, speech_path, kind):
    """Issue 12's cross-tenant read: a file that makes ffmpeg open another job's upload is 415 at
    upload, whatever it is called; no job, no stored file, nothing in the spool."""
    victim = _upload(client, path=speech_path("asr_example.mp3")).json["id"]
    with session_scope(app.extensions["tingxie"].db) as s:
        victim_path = str(any_settings.media_dir / s.get(Job, victim).media_key)
    relative = f"../{victim}/{os.path.basename(victim_path)}"
    target = victim_path if kind.endswith("absolute") or kind == "hls-m3u8" else relative
    if kind.startswith("hls"):
        data, name = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{target}\n#EXT-X-ENDLIST\n", "x.mp3"
        name = "list.m3u8" if kind == "hls-m3u8" else name
    else:
        data, name = f"ffconcat version 1.0\nfile '{target}'\n", "x.mp3"
    r = _upload(client, data.encode(), name)
    assert r.status_code == 415 and r.json["error"]["code"] == "bad_media", r.json
    assert name in r.json["error"]["message"]
    with session_scope(app.extensions["tingxie"].db) as s:
        assert [j.id for j in s.execute(select(Job)).scalars()] == [victim]
    assert [p.name for p in any_settings.media_dir.iterdir()] == [victim]
    assert list((any_settings.work_dir / "uploads").iterdir()) == []


def test_truncated_media_is_refused_or_accepted_for_the_worker(client, speech_path):
    data = speech_path("asr_example.mp3").read_bytes()[:200]
    r = _upload(client, data, "cut.mp3")
    # ffmpeg can tell some truncations apart at probe time; the rest fail in the worker.
    assert r.status_code in (202, 415, 422), r.json


@embedded_only
def test_too_long_and_too_big(app, client, speech_path):
    settings = app.extensions["tingxie"].settings
    object.__setattr__(settings, "max_duration_s", 5.0)
    r = _upload(client, path=speech_path("jfk.flac"))
    assert r.status_code == 413 and r.json["error"]["code"] == "too_long"
    app.config["MAX_CONTENT_LENGTH"] = 1000
    r = _upload(client, path=speech_path("asr_example.wav"))
    assert r.status_code == 413 and r.json["error"]["code"] == "too_large"


@embedded_only
def test_bad_options(client, speech_path, app):
    jfk = speech_path("jfk.flac")
    assert _upload(client, path=jfk, language="xx").json["error"]["code"] == "unsupported_language"
    assert _upload(client, path=jfk, itn="maybe").json["error"]["code"] == "bad_option"
    assert _upload(client, path=jfk, profile="nope").json["error"]["code"] == "unknown_profile"
    settings = app.extensions["tingxie"].settings
    many = "\n".join(f"w{i}" for i in range(settings.max_hotwords + 1))
    r = _upload(client, path=jfk, hotwords=many)
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_hotwords"
    assert client.post("/api/v1/jobs", data={}).json["error"]["code"] == "no_file"


@embedded_only
def test_traditional_chinese_is_a_language_of_both_profiles(client, speech_path):
    """zh-Hant / zh-TW pass the one options path (checked, lower-cased, stored) on either profile."""
    for language, profile in [("zh-Hant", "offline"), ("zh-TW", "funasr")]:
        r = _upload(client, path=speech_path("asr_example.wav"), language=language, profile=profile)
        assert r.status_code == 202, r.json
        assert client.get(r.json["links"]["self"]).json["options"]["language"] == language.lower()
    profiles = {p["name"]: [lang["code"] for lang in p["languages"]] for p in client.get("/api/v1/profiles").json["items"]}
    assert {"zh-hant", "zh-tw"} <= set(profiles["offline"]) and {"zh-hant", "zh-tw"} <= set(profiles["funasr"])


def test_list_paginates_newest_first(client, speech_path):
    ids = [_upload(client, path=speech_path("asr_example.wav")).json["id"] for _ in range(3)]
    page1 = client.get("/api/v1/jobs?per_page=2").json
    assert page1["total"] == 3 and [j["id"] for j in page1["items"]] == ids[::-1][:2]
    assert "next" in page1["links"]
    page2 = client.get(page1["links"]["next"]).json
    assert [j["id"] for j in page2["items"]] == ids[:1]
    assert client.get("/api/v1/jobs?status=done").json["total"] == 0


def test_transcript_formats_cancel_and_delete(client, app, speech_path, any_settings):
    job_id = _upload(client, path=speech_path("asr_example.wav")).json["id"]
    assert client.get(f"/api/v1/jobs/{job_id}/transcript").status_code == 409
    factory = app.extensions["tingxie"].db
    data = {"text": "你好。", "language": "zh", "duration_ms": 5550,
            "segments": [{"start_ms": 0, "end_ms": 900, "text": "你好。", "words": [{"start_ms": 0, "end_ms": 900, "text": "你好"}]}]}
    with session_scope(factory) as s:
        attempt = jobs.claim(s, job_id)
        jobs.complete(s, job_id, attempt, data)
    # The stored form at the current version: each word with its place in its sentence's text.
    assert client.get(f"/api/v1/jobs/{job_id}/transcript").json == {
        "v": 2, "text": "你好。", "language": "zh", "duration_ms": 5550,
        "segments": [{"start_ms": 0, "end_ms": 900, "text": "你好。", "punc": "", "tokens": [],
                      "words": [{"start_ms": 0, "end_ms": 900, "text": "你好", "start_char": 0, "end_char": 2}]}]}
    srt = client.get(f"/api/v1/jobs/{job_id}/transcript?format=srt&download=1")
    assert srt.data.decode() == "1\n00:00:00,000 --> 00:00:01,000\n你好。\n"  # a short cue stays up 1 s
    assert "asr_example.srt" in srt.headers["Content-Disposition"]
    assert client.get(f"/api/v1/jobs/{job_id}/transcript?format=doc").status_code == 400
    media = client.get(f"/api/v1/jobs/{job_id}/media", headers={"Range": "bytes=0-99"})
    assert media.status_code == 206 and len(media.data) == 100
    # Deleting a finished job removes it and its files.
    assert client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 404
    assert not (any_settings.media_dir / job_id).exists()
    # Deleting a queued job cancels it.
    other = _upload(client, path=speech_path("asr_example.wav")).json["id"]
    r = client.delete(f"/api/v1/jobs/{other}")
    assert r.status_code == 200 and r.json["status"] == "canceled"


def test_cancel_cancels_and_never_deletes(client, app, speech_path):
    queued = _upload(client, path=speech_path("asr_example.wav")).json["id"]
    r = client.post(f"/api/v1/jobs/{queued}/cancel")
    assert r.status_code == 200 and r.json["status"] == "canceled" and r.json["id"] == queued
    again = client.post(f"/api/v1/jobs/{queued}/cancel")
    assert again.status_code == 409 and again.json["error"] == {
        "code": "not_cancelable", "message": f"job {queued} is already canceled; nothing to cancel"}
    finished = _upload(client, path=speech_path("asr_example.wav")).json["id"]
    with session_scope(app.extensions["tingxie"].db) as s:
        attempt = jobs.claim(s, finished)
        jobs.complete(s, finished, attempt, {"text": "", "language": "zh", "duration_ms": 5550, "segments": []})
    r = client.post(f"/api/v1/jobs/{finished}/cancel")
    assert r.status_code == 409 and r.json["error"]["code"] == "not_cancelable"
    assert client.get(f"/api/v1/jobs/{finished}").json["status"] == "done"  # still there, transcript and all
    missing = client.post(f"/api/v1/jobs/{'0' * 32}/cancel")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json["checks"] == {"database": "ok", "broker": "ok", "media_store": "ok"}


def test_not_ready_when_broker_is_down(tmp_path, migrated):
    from core.settings import Settings
    from web import create_app

    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0")
    migrated.migrate(settings)
    r = create_app(settings).test_client().get("/readyz")
    assert r.status_code == 503 and r.json["checks"]["broker"].startswith("unreachable")


def test_not_ready_while_the_media_store_is_down(tmp_path, s3_server, s3_bucket, migrated):
    """An object store that does not answer makes the web tier not ready, naming the store; back up, ready."""
    from core.settings import Settings
    from tests.support.service import free_port
    from web import create_app

    down = {**s3_server.storage_settings(s3_bucket), "s3_endpoint_url": f"http://127.0.0.1:{free_port()}"}
    settings = Settings(data_dir=tmp_path, **down)
    migrated.migrate(settings)
    r = create_app(settings).test_client().get("/readyz")
    assert r.status_code == 503, r.json
    store = r.json["checks"]["media_store"]
    assert store.startswith("unavailable: ") and f"s3://{s3_bucket}/media/" in store
    assert (r.json["checks"]["database"], r.json["checks"]["broker"]) == ("ok", "ok")
    up = Settings(data_dir=tmp_path, **s3_server.storage_settings(s3_bucket))
    assert create_app(up).test_client().get("/readyz").status_code == 200


def test_job_accepted_while_broker_is_down_is_kept(tmp_path, speech_path, migrated):
    """The row is committed before sending; a broker outage leaves it queued and unsent for a sweeper."""
    from core.settings import Settings
    from web import create_app

    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0")
    migrated.migrate(settings)
    app = create_app(settings)
    r = _upload(app.test_client(), path=speech_path("asr_example.wav"))
    assert r.status_code == 202
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.get(Job, r.json["id"]).enqueued_at is None
        assert dispatch.held(s) == [r.json["id"]]
