"""Retention (core.retention) and usage (core.usage) on a real database and media store: media
deleted once its days are over (the clock moved forward), transcripts still read, whole jobs
deleted after TINGXIE_RETAIN_TRANSCRIPT_DAYS, per-tenant usage and the monthly quota."""
import dataclasses
import io
from datetime import datetime, timedelta, timezone

import pytest

from core import jobs, retention, tokens, usage
from core.db import session_scope
from core.models import Job, utcnow

TRANSCRIPT = {"text": "hello", "language": "en", "duration_ms": 5000, "segments": [
    {"start_ms": 0, "end_ms": 900, "text": "hello", "words": [{"start_ms": 0, "end_ms": 900, "text": "hello"}]}]}


def _app(any_settings, **changes):
    from web import create_app

    return create_app(dataclasses.replace(any_settings, **changes), {"TESTING": True})


def _submit(client, speech_path, token=None, **form):
    wav = speech_path("asr_example.wav")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/v1/jobs", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(wav.read_bytes()), "a.wav"), **form})


def _finish(app, job_id: str) -> None:
    with session_scope(app.extensions["tingxie"].db) as s:
        assert jobs.complete(s, job_id, jobs.claim(s, job_id), TRANSCRIPT)


def test_media_leaves_the_store_when_its_days_are_over_and_the_transcript_stays(any_settings, db, speech_path):
    app = _app(any_settings, retain_media_days=7.0)
    svc = app.extensions["tingxie"]
    client = app.test_client()
    kept_long = _submit(client, speech_path).json["id"]  # the deployment's 7 days
    short = _submit(client, speech_path, retain_media_days="1").json["id"]
    running = _submit(client, speech_path, retain_media_days="1").json["id"]
    for job_id in (kept_long, short):
        _finish(app, job_id)
    with session_scope(svc.db) as s:
        jobs.claim(s, running)
    job = client.get(f"/api/v1/jobs/{short}").json
    accepted = datetime.fromisoformat(job["created_at"])
    assert datetime.fromisoformat(job["media_expires_at"]) - accepted == timedelta(days=1)
    assert job["media_expired_at"] is None

    # Nothing is due yet.
    assert retention.expire_media(svc.db, svc.store, utcnow()) == []
    # Two days later: the short job's media is gone; the running one's waits for its end.
    later = utcnow() + timedelta(days=2)
    assert retention.expire_media(svc.db, svc.store, later) == [short]
    assert not any(key.startswith(short + "/") for key in svc.store.keys())
    assert any(key.startswith(kept_long + "/") for key in svc.store.keys())
    job = client.get(f"/api/v1/jobs/{short}").json
    assert job["media_expired_at"] is not None
    r = client.get(f"/api/v1/jobs/{short}/media")
    assert r.status_code == 410 and r.json["error"]["code"] == "media_expired", r.json
    assert "TINGXIE_RETAIN_MEDIA_DAYS" in r.json["error"]["message"]
    r = client.get(f"/api/v1/jobs/{short}/transcript")
    assert r.status_code == 200 and r.json["text"] == "hello"
    # A second sweep has nothing left to do; the running job's media goes once it has ended.
    assert retention.expire_media(svc.db, svc.store, later) == []
    with session_scope(svc.db) as s:
        jobs.cancel(s, running)
    assert retention.expire_media(svc.db, svc.store, later) == [running]
    # Eight days later the deployment's 7 days are over too.
    assert retention.expire_media(svc.db, svc.store, utcnow() + timedelta(days=8)) == [kept_long]
    svc.close()


def test_a_job_may_ask_for_less_retention_never_more(any_settings, db, speech_path):
    app = _app(any_settings, retain_media_days=7.0)
    client = app.test_client()
    r = _submit(client, speech_path, retain_media_days="30")
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_option", r.json
    assert "at most 7 days" in r.json["error"]["message"]
    r = _submit(client, speech_path, retain_media_days="0")
    assert r.status_code == 400, r.json
    assert app.extensions["tingxie"].store.keys() == []
    app.extensions["tingxie"].close()
    # Without a deployment limit media is kept for ever unless the job asks.
    app = _app(any_settings)
    client = app.test_client()
    forever = client.get(_submit(client, speech_path).json["links"]["self"]).json
    assert forever["media_expires_at"] is None
    app.extensions["tingxie"].close()


def test_finished_jobs_are_deleted_whole_after_the_transcript_days(any_settings, db, speech_path):
    app = _app(any_settings, retain_transcript_days=30.0)
    svc = app.extensions["tingxie"]
    client = app.test_client()
    old, queued = (_submit(client, speech_path).json["id"] for _ in range(2))
    _finish(app, old)
    assert retention.expire_transcripts(svc.db, svc.settings, svc.store, utcnow() + timedelta(days=29)) == []
    deleted = retention.expire_transcripts(svc.db, svc.settings, svc.store, utcnow() + timedelta(days=31))
    assert deleted == [old]
    assert client.get(f"/api/v1/jobs/{old}").status_code == 404
    assert not any(key.startswith(old + "/") for key in svc.store.keys())
    assert client.get(f"/api/v1/jobs/{queued}").json["status"] == "queued"  # not ended: kept
    svc.close()


def test_retention_deletes_from_an_s3_store(settings, migrated, s3_server, s3_bucket, speech_path):
    s3 = dataclasses.replace(settings, **s3_server.storage_settings(s3_bucket))
    migrated.migrate(s3)
    app = _app(s3, retain_media_days=1.0)
    svc = app.extensions["tingxie"]
    client = app.test_client()
    job_id = _submit(client, speech_path).json["id"]
    _finish(app, job_id)
    assert any(key.startswith(job_id + "/") for key in svc.store.keys())
    assert retention.expire_media(svc.db, svc.store, utcnow() + timedelta(days=2)) == [job_id]
    assert not any(key.startswith(job_id + "/") for key in svc.store.keys())
    assert client.get(f"/api/v1/jobs/{job_id}/transcript").status_code == 200
    # DELETE purges a finished job's objects from the bucket at once.
    other = _submit(client, speech_path).json["id"]
    _finish(app, other)
    assert any(other in key for key in s3_server.objects(s3_bucket))
    assert client.delete(f"/api/v1/jobs/{other}").status_code == 204
    assert s3_server.objects(s3_bucket) == []
    svc.close()


def _tokens(app):
    with session_scope(app.extensions["tingxie"].db) as s:
        return (tokens.create(s, tenant="acme").secret, tokens.create(s, tenant="globex").secret,
                tokens.create(s, tenant="ops", admin=True).secret)


def test_usage_per_tenant_and_profile_and_only_ones_own(any_settings, db, speech_path):
    app = _app(any_settings, auth="required")
    client = app.test_client()
    acme, globex, admin = _tokens(app)
    done = _submit(client, speech_path, acme).json["id"]
    _submit(client, speech_path, acme)  # queued: counted as a job, not as audio done
    _finish(app, _submit(client, speech_path, globex).json["id"])
    _finish(app, done)

    def get(token, **query):
        return client.get("/api/v1/usage", query_string=query, headers={"Authorization": f"Bearer {token}"})

    today = utcnow().strftime("%Y-%m-%d")
    r = get(acme)
    assert r.status_code == 200, r.json
    assert r.json["items"] == [{"period": today, "tenant": "acme", "profile": "offline", "jobs": 2, "done_jobs": 1,
                                "audio_seconds": 5.0}]
    assert r.json["quota"]["tenant"] == "acme" and r.json["quota"]["quota_hours"] is None
    # Another tenant's usage is not there for a tenant's token.
    r = get(acme, tenant="globex")
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    # An admin sees every tenant, by month or in total.
    month = utcnow().strftime("%Y-%m")
    r = get(admin, group="month")
    assert [(i["period"], i["tenant"], i["jobs"], i["audio_seconds"]) for i in r.json["items"]] == [
        (month, "acme", 2, 5.0), (month, "globex", 1, 5.0)]
    assert get(admin, group="total", tenant="globex").json["items"] == [
        {"period": "total", "tenant": "globex", "profile": "offline", "jobs": 1, "done_jobs": 1, "audio_seconds": 5.0}]
    # A range that holds none of them.
    assert get(admin, **{"from": "2020-01-01", "to": "2020-02-01"}).json["items"] == []
    r = get(admin, **{"from": "2020-02-01", "to": "2020-01-01"})
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_option"
    assert get(admin, group="week").status_code == 400
    app.extensions["tingxie"].close()


def test_past_the_monthly_quota_a_submission_gets_429_naming_the_reset(any_settings, db, speech_path):
    # asr_example.wav is 5.6 s: a quota of 3 such files, in hours, for acme; globex has none.
    app = _app(any_settings, auth="required", tenant_quota_hours={"acme": 15 / 3600})
    client = app.test_client()
    acme, globex, _ = _tokens(app)
    first = _submit(client, speech_path, acme)
    second = _submit(client, speech_path, acme)
    assert first.status_code == second.status_code == 202
    r = _submit(client, speech_path, acme)
    assert r.status_code == 429 and r.json["error"]["code"] == "quota_exceeded", r.json
    _, resets = usage.month_bounds(datetime.now(timezone.utc))
    assert f"resets on {resets:%Y-%m-%d}" in r.json["error"]["message"]
    assert "TINGXIE_TENANT_QUOTA_HOURS" in r.json["error"]["message"]
    assert _submit(client, speech_path, globex).status_code == 202
    # A canceled job is not charged: room again.
    client.post(f"/api/v1/jobs/{second.json['id']}/cancel", headers={"Authorization": f"Bearer {acme}"})
    assert _submit(client, speech_path, acme).status_code == 202
    quota = client.get("/api/v1/usage", headers={"Authorization": f"Bearer {acme}"}).json["quota"]
    assert quota["quota_hours"] == pytest.approx(15 / 3600) and quota["used_hours"] > 0
    assert quota["resets_at"].startswith(f"{resets:%Y-%m-%d}")
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.query(Job).filter(Job.tenant == "acme").count() == 3
    app.extensions["tingxie"].close()


@pytest.mark.parametrize("text,quotas", [("100", {"*": 100.0}), ("acme=50, globex=2.5,*=10",
                                                                   {"acme": 50.0, "globex": 2.5, "*": 10.0})])
def test_quota_setting(text, quotas):
    from core.settings import Settings

    settings = Settings.from_env({"TINGXIE_TENANT_QUOTA_HOURS": text, "TINGXIE_RETAIN_MEDIA_DAYS": "30"})
    assert settings.tenant_quota_hours == quotas and settings.retain_media_days == 30.0
    assert Settings.from_env(settings.to_env()).tenant_quota_hours == quotas
    assert usage.quota_hours(settings, "nobody") == quotas["*"]


def test_bad_quota_setting_says_what_is_allowed():
    from core.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="TINGXIE_TENANT_QUOTA_HOURS"):
        Settings.from_env({"TINGXIE_TENANT_QUOTA_HOURS": "Acme Corp=5"})


@pytest.mark.subprocess
def test_a_workers_sweep_with_its_clock_two_days_ahead_expires_the_media(any_settings, db, speech_path, tmp_path):
    """The sweeper wiring: one sweep, as a worker's sweeper runs it, in a process whose wall clock
    is two days ahead (tests/support/clockshift.c); the same sweep at the true time expires nothing."""
    import subprocess
    import sys

    from tests.support.clock import build_shim, stepped
    from tests.support.faults import SWEEP
    from tests.support.service import REPO, settings_env

    settings = dataclasses.replace(any_settings, retain_media_days=1.0)
    app = _app(settings)
    client = app.test_client()
    job_id = _submit(client, speech_path).json["id"]
    _finish(app, job_id)
    library = build_shim(tmp_path)

    def sweep(env: dict) -> None:
        subprocess.run([sys.executable, "-c", SWEEP], cwd=REPO, env={**settings_env(settings), **env},
                       check=True, capture_output=True, timeout=300)

    sweep({})
    assert client.get(f"/api/v1/jobs/{job_id}").json["media_expired_at"] is None
    sweep(stepped(library, 2 * 86400))
    job = client.get(f"/api/v1/jobs/{job_id}").json
    assert job["media_expired_at"] is not None
    assert client.get(f"/api/v1/jobs/{job_id}/media").status_code == 410
    assert client.get(f"/api/v1/jobs/{job_id}/transcript").status_code == 200
    app.extensions["tingxie"].close()
