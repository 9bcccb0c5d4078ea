"""Webhooks: signatures, which targets may be called, and one recorded delivery attempt against a
real HTTP receiver on 127.0.0.1 and a real database."""
from __future__ import annotations

import dataclasses
import json
import time

import pytest

from core import jobs, webhooks
from core.db import session_scope
from core.models import Job
from core.settings import Settings
from core.options import JobOptions


def test_signature_round_trip_and_replay_window():
    key, body = b"secret", b'{"event":"job.done"}'
    header = webhooks.sign(key, body, int(time.time()))
    assert header.startswith("t=") and ",v1=" in header
    assert webhooks.verify(key, body, header)
    assert not webhooks.verify(b"other", body, header)
    assert not webhooks.verify(key, body + b" ", header)
    old = webhooks.sign(key, body, int(time.time()) - 3600)
    assert not webhooks.verify(key, body, old)
    assert not webhooks.verify(key, body, "garbage")


def test_secret_is_made_once_when_none_is_configured(tmp_path):
    settings = Settings(data_dir=tmp_path)
    first = webhooks.secret(settings)
    assert len(first) == 64 and webhooks.secret(settings) == first
    assert oct((tmp_path / "webhook-secret").stat().st_mode & 0o777) == "0o600"
    assert webhooks.secret(dataclasses.replace(settings, webhook_secret="configured")) == b"configured"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://localhost:8080/", "http://10.1.2.3/", "http://192.168.0.10/",
    "http://172.16.5.5/", "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://0.0.0.0/",
    "http://100.64.0.1/", "http://[::ffff:127.0.0.1]/",
])
def test_internal_targets_are_refused(tmp_path, url):
    with pytest.raises(webhooks.WebhookTargetError) as caught:
        webhooks.check_target(url, Settings(data_dir=tmp_path))
    assert "TINGXIE_WEBHOOK_ALLOW" in str(caught.value)


# Every IPv6 form that embeds an internal IPv4 address, and every non-global IPv6 range.
@pytest.mark.parametrize("address", [
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",  # IPv4-mapped
    "::7f00:1", "::127.0.0.1", "::a9fe:a9fe", "::1", "::",  # IPv4-compatible (and loopback, unspecified)
    "::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe", "::ffff:0:c0a8:1",  # SIIT (IPv4-translated)
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1",  # NAT64, well-known prefix
    "64:ff9b:1::a9fe:a9fe", "64:ff9b:1:a9fe:a9:fe00::", "64:ff9b:1::808:808",  # local-use NAT64: all of it
    "2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:c0a8:101::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::1", "2001:0:7f00:1::",  # Teredo
    "fec0::1", "fec0:1:2::3",  # site-local
    "fc00::1", "fd12:3456::1",  # unique local
    "fe80::1", "febf::1",  # link-local
    "ff02::1", "ff0e::101",  # multicast, even global scope
    "2001:db8::1", "3fff::1",  # documentation
    "100::1", "2001:10::1", "5f00::1",  # discard, ORCHID, segment routing
])
def test_internal_ipv6_forms_are_refused(tmp_path, address):
    with pytest.raises(webhooks.WebhookTargetError) as caught:
        webhooks.check_target(f"http://[{address}]:8080/hook", Settings(data_dir=tmp_path))
    assert "TINGXIE_WEBHOOK_ALLOW" in str(caught.value)


@pytest.mark.parametrize("address, delivered_to", [
    ("2606:4700:4700::1111", "2606:4700:4700::1111"),  # public IPv6
    ("::ffff:8.8.8.8", "8.8.8.8"),  # forms of a public IPv4 address go to that address
    ("64:ff9b::808:808", "8.8.8.8"),
    ("2002:808:808::1", "8.8.8.8"),
])
def test_public_ipv6_forms_are_accepted(tmp_path, address, delivered_to):
    assert webhooks.check_target(f"http://[{address}]/hook", Settings(data_dir=tmp_path)) == [delivered_to]


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "http:///nohost", "javascript:alert(1)"])
def test_only_http_urls_with_a_host(tmp_path, url):
    with pytest.raises(webhooks.WebhookTargetError):
        webhooks.check_target(url, Settings(data_dir=tmp_path))


def test_allow_list_by_host_address_or_network(tmp_path):
    for allow in (("127.0.0.1",), ("127.0.0.0/8",)):
        settings = Settings(data_dir=tmp_path, webhook_allow=allow)
        assert webhooks.check_target("http://127.0.0.1:9/x", settings) == ["127.0.0.1"]
    by_name = Settings(data_dir=tmp_path, webhook_allow=("localhost",))
    assert "127.0.0.1" in webhooks.check_target("http://localhost:9/x", by_name)
    with pytest.raises(webhooks.WebhookTargetError):
        webhooks.check_target("http://127.0.0.1:9/x", by_name)  # the name is allowed, not the address
    settings = Settings(data_dir=tmp_path, webhook_allow=("127.0.0.1",))
    with pytest.raises(webhooks.WebhookTargetError):
        webhooks.check_target("http://10.0.0.1/", settings)
    # A public address literal needs no allow-list (no DNS involved).
    assert webhooks.check_target("https://8.8.8.8/hook", Settings(data_dir=tmp_path)) == ["8.8.8.8"]


@pytest.mark.network
def test_post_is_signed_and_failures_are_reported(tmp_path, webhook_receiver):
    settings = Settings(data_dir=tmp_path, webhook_secret="k", webhook_allow=("127.0.0.1",))
    ok = webhook_receiver([200])
    body = b'{"a":1}'
    result = webhooks.post(settings, ok.url, body, {"X-Extra": "1"})
    assert result == webhooks.Delivery(True, "200", retry=False)
    headers, received = ok.deliveries[0]
    assert received == body and headers["X-Extra"] == "1" and headers["Content-Type"] == "application/json"
    assert webhooks.verify(b"k", received, headers[webhooks.SIGNATURE_HEADER])
    failing = webhook_receiver([500])
    assert webhooks.post(settings, failing.url, body, {}) == webhooks.Delivery(False, "HTTP 500", retry=True)
    # Refused targets are never contacted and not retried.
    refused = webhooks.post(dataclasses.replace(settings, webhook_allow=()), ok.url, body, {})
    assert refused.ok is False and refused.retry is False and refused.status.startswith("refused:")
    assert len(ok.deliveries) == 1


def _finished_job(db, status: str, callback_url: str) -> str:
    job_id = jobs.new_job_id()
    with session_scope(db) as session:
        jobs.create_job(session, job_id=job_id, media_key=f"{job_id}/source.wav", filename="a.wav", size_bytes=1,
                        duration_ms=None, options=JobOptions(profile="offline", callback_url=callback_url))
    with session_scope(db) as session:
        attempt = jobs.claim(session, job_id)
        if status == "done":
            jobs.complete(session, job_id, attempt, {"text": "你好。", "language": "zh", "duration_ms": 1000,
                                                      "segments": []})
        else:
            jobs.fail(session, job_id, attempt, "bad_media", "not audio")
    return job_id


def test_delivery_is_recorded_on_the_job_and_happens_once(db, any_settings, webhook_receiver):
    settings = dataclasses.replace(any_settings, webhook_secret="s", webhook_allow=("127.0.0.1",))
    hook = webhook_receiver([200])
    job_id = _finished_job(db, "done", hook.url)
    result = webhooks.deliver_for_job(settings, db, job_id)
    assert result.ok and result.status == "200"
    assert webhooks.deliver_for_job(settings, db, job_id) is None  # delivered: nothing more
    assert len(hook.deliveries) == 1
    headers, body = hook.deliveries[0]
    payload = json.loads(body)
    assert payload["event"] == "job.done" and payload["job"]["id"] == job_id and payload["job"]["text"] == "你好。"
    assert headers[webhooks.EVENT_HEADER] == "job.done" and headers[webhooks.DELIVERY_HEADER] == f"{job_id}.1"
    assert webhooks.verify(b"s", body, headers[webhooks.SIGNATURE_HEADER])
    with session_scope(db) as session:
        job = session.get(Job, job_id)
        assert (job.webhook_attempts, job.webhook_last_status) == (1, "200")
        assert job.webhook_delivered_at is not None


def test_failing_receiver_is_recorded_until_attempts_run_out(db, any_settings, webhook_receiver):
    settings = dataclasses.replace(any_settings, webhook_secret="s", webhook_allow=("127.0.0.1",))
    hook = webhook_receiver([503])
    job_id = _finished_job(db, "failed", hook.url)
    outcomes = [webhooks.deliver_for_job(settings, db, job_id) for _ in range(webhooks.MAX_ATTEMPTS + 1)]
    assert [o.retry for o in outcomes[:-2]] == [True] * (webhooks.MAX_ATTEMPTS - 1)
    assert outcomes[-2].retry is False and outcomes[-1] is None  # the last attempt gives up
    assert json.loads(hook.deliveries[0][1])["job"]["error"] == {"code": "bad_media", "message": "not audio"}
    with session_scope(db) as session:
        job = session.get(Job, job_id)
        assert job.webhook_attempts == webhooks.MAX_ATTEMPTS and job.webhook_last_status == "HTTP 503"
        assert job.webhook_delivered_at is None


def test_refused_target_is_recorded_and_not_retried(db, any_settings):
    job_id = _finished_job(db, "done", "http://10.9.8.7/hook")
    result = webhooks.deliver_for_job(any_settings, db, job_id)
    assert result.ok is False and result.retry is False
    with session_scope(db) as session:
        assert session.get(Job, job_id).webhook_last_status.startswith("refused:")
