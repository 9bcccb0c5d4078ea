"""Waits that hold no thread (web.waits): the OpenAI call's wait for its job is awaited on the
event loop on the process's one event hub (core.hub). The hub's ``wait_for_end`` on both backends; the
deferred answer read for its caller only; and, against a running web tier with no worker, 200
calls waiting at once while the tier keeps answering, with one Redis subscription between them."""
from __future__ import annotations

import asyncio
import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
import requests
from sqlalchemy import select

from core import jobs
from core.access import Principal
from core.db import session_scope
from core.hub import EventHub
from core.models import Job
from core.options import JobOptions
from tests.support.waiting import Callers, assert_answered_canceled, make_token, release, wait_for_waiting_calls

openai = pytest.importorskip("openai")

CALLS = 200


def _new_job(db, tenant: str = "local") -> str:
    job_id = jobs.new_job_id()
    with session_scope(db) as session:
        jobs.create_job(session, job_id=job_id, media_key=f"{job_id}/source.wav", filename="a.wav", size_bytes=1,
                        duration_ms=None, options=JobOptions(profile="offline"), tenant=tenant)
    return job_id


def _finish(db, job_id: str, text: str = "") -> None:
    with session_scope(db) as session:
        attempt = jobs.claim(session, job_id)
    with session_scope(db) as session:
        jobs.report_progress(session, job_id, attempt, "asr", 0.5)
    with session_scope(db) as session:
        jobs.complete(session, job_id, attempt, {"text": text, "language": "en", "duration_ms": 1000, "segments": []})


def test_the_hub_waits_for_jobs_to_end(db, any_settings):
    """One hub, many waiters: each gets its job's terminal event (a job that had already ended at
    once), a job that does not end gives None after the timeout, and nothing stays watched."""
    done, canceled, quiet, ended = (_new_job(db) for _ in range(4))
    with session_scope(db) as session:
        jobs.cancel(session, ended)

    async def main() -> None:
        hub = EventHub(db, any_settings.events_url)
        await hub.start()
        try:
            assert (await hub.wait_for_end(ended, 60))["type"] == "canceled"
            waiting = [asyncio.create_task(hub.wait_for_end(job_id, 120)) for job_id in (done, canceled, quiet)]
            assert await hub.wait_for_end(quiet, 0.3) is None
            await asyncio.to_thread(_finish, db, done)
            with session_scope(db) as session:
                jobs.cancel(session, canceled)
            ends = await asyncio.wait_for(asyncio.gather(*waiting[:2]), 60)
            assert [(m["job_id"], m["type"]) for m in ends] == [(done, "done"), (canceled, "canceled")]
            assert not waiting[2].done() and hub.watchers == 1
            waiting[2].cancel()
            await asyncio.gather(waiting[2], return_exceptions=True)
            assert hub.watchers == 0
        finally:
            await hub.close()

    asyncio.run(main())


def test_a_deferred_answer_is_read_for_its_caller(any_settings, db):
    """What renders a waiting call's answer reads the job for the caller who made the call: were a
    deferral ever to name another tenant's job, that caller gets 404 and nothing of the job."""
    from web import create_app, openai as web_openai, waits

    app = create_app(any_settings)
    try:
        job_id = _new_job(db, tenant="tenant-a")
        _finish(db, job_id, text="the secret minutes of tenant a")
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/audio/transcriptions", "SERVER_NAME": "127.0.0.1",
                   "SERVER_PORT": "80", "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1"}

        def answer_for(caller: Principal):
            pending = waits.Pending(job_id, 0.0, partial(web_openai.answer, job_id, "json", {"segment"}),
                                    environ, {"tingxie_principal": caller, "tingxie_auth_error": None})
            return waits._render(app, pending)

        theirs = answer_for(Principal("tenant-b", via="token", token_id="b"))
        assert theirs.status_code == 404 and theirs.json["error"]["code"] == "not_found"
        assert "secret" not in theirs.get_data(as_text=True)
        assert theirs.headers["Cache-Control"] == "no-store"  # the route's after-request hooks ran
        own = answer_for(Principal("tenant-a", via="token", token_id="a"))
        assert own.status_code == 200 and own.json["text"] == "the secret minutes of tenant a"
        admin = answer_for(Principal("ops", admin=True, via="token", token_id="o"))
        assert admin.status_code == 200
    finally:
        app.extensions["tingxie"].close()


def _openai_call(path) -> tuple[dict, bytes]:
    """An OpenAI call's ASGI scope and body, from this machine (anonymous loopback use)."""
    prepared = requests.Request("POST", "http://127.0.0.1/v1/audio/transcriptions", data={"model": "whisper-1"},
                                files={"file": (path.name, path.read_bytes())}).prepare()
    headers = [(b"host", b"127.0.0.1"), (b"content-type", prepared.headers["Content-Type"].encode()),
               (b"content-length", str(len(prepared.body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/audio/transcriptions", "raw_path": b"/v1/audio/transcriptions", "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    return scope, prepared.body


@pytest.mark.parametrize("ending", ["canceled", "caller_leaves"])
def test_the_tier_answers_a_waiting_call_once_its_job_ends(settings, speech_path, ending):
    """The web tier itself (web.server.Tier, no HTTP server around it): the call's view returns at
    once and nothing is sent while the job runs (the view's placeholder never reaches the client);
    the job's end is the answer. A caller that leaves ends the wait, and nothing is sent."""
    from core.migrate import upgrade
    from web import create_app
    from web.server import Tier

    settings = dataclasses.replace(settings, openai_wait_s=600.0)
    upgrade(settings)
    tier = Tier(create_app(settings), threads=4)
    scope, body = _openai_call(speech_path("asr_example.mp3"))

    async def main() -> list[dict]:
        await tier.hub.start()
        incoming = [{"type": "http.request", "body": body, "more_body": False}]
        gone, sent = asyncio.Event(), []

        async def receive() -> dict:
            if incoming:
                return incoming.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        async def until_waiting() -> None:
            while tier.hub.watchers == 0:  # once the view has returned, the call waits on the hub
                assert not call.done(), sent
                await asyncio.sleep(0.1)

        call = asyncio.create_task(tier(scope, receive, send))
        try:
            await asyncio.wait_for(until_waiting(), 60)
            assert sent == []
            if ending == "canceled":
                with session_scope(tier.flask.extensions["tingxie"].db) as session:
                    job_id = session.execute(select(Job.id)).scalar_one()
                    jobs.cancel(session, job_id)
            else:
                gone.set()
            await asyncio.wait_for(call, 60)
            assert tier.hub.watchers == 0
            return sent
        finally:
            await tier.hub.close()
            tier.flask.extensions["tingxie"].close()

    sent = asyncio.run(main())
    if ending == "caller_leaves":
        assert sent == []
        return
    start, answer = sent
    headers = dict(start["headers"])
    assert start["status"] == 409 and headers[b"x-should-retry"] == b"false"
    assert headers[b"content-type"] == b"application/json" and headers[b"cache-control"] == b"no-store"
    error = json.loads(answer["body"])["error"]
    assert error["code"] == "canceled" and error["type"] == "invalid_request_error" and error["job_id"]


# --- Against a running web tier ------------------------------------------------------------------

@pytest.fixture(params=["embedded", "servers"])
def waiting_service(request, live_service, tmp_path):
    """A web tier and no worker (every job stays queued): on the embedded default, or on PostgreSQL
    and a private Redis (its own server, so its subscription counts are this test's alone)."""
    from tests.support.settings import make_settings
    from tests.support.servers import PrivateRedis

    overrides = dict(upload_rate_limit="off", rate_limit="off", openai_wait_s=600.0)
    redis_server = None
    if request.param == "servers":
        redis_server = PrivateRedis().start()
        overrides.update(database_url=request.getfixturevalue("postgres_url"), broker_url=redis_server.url)
    try:
        service = live_service(make_settings(tmp_path, **overrides), workers=0)
        service.redis = redis_server
        yield service
    finally:
        if redis_server is not None:
            redis_server.stop()


@pytest.mark.slow
def test_200_waiting_calls_hold_no_thread_and_one_subscription(waiting_service, speech_path):
    """200 OpenAI calls whose jobs do not end (no worker) are all taken in and wait together, while
    the web tier still answers /healthz and 40 API requests at once (more than its 32 threads); on
    Redis, the 200 waits are one pattern subscription of the web process, not one each. Cancelling
    the jobs answers every call (409 canceled, naming its job)."""
    service = waiting_service
    headers = {"Authorization": f"Bearer {make_token(service.settings, 'team')}"}
    callers = Callers(service.base_url, headers["Authorization"].split()[1], speech_path("asr_example.mp3"), CALLS)
    callers.start()
    job_ids = wait_for_waiting_calls(service, headers, CALLS, callers)

    assert requests.get(service.base_url + "/healthz", timeout=60).status_code == 200
    with ThreadPoolExecutor(40) as pool:
        listed = list(pool.map(lambda _: requests.get(service.base_url + "/api/v1/jobs?per_page=1", headers=headers,
                                                      timeout=120), range(40)))
    assert [r.status_code for r in listed] == [200] * 40 and listed[0].json()["total"] == CALLS
    assert callers.is_alive()  # all 200 still waiting
    if service.redis is not None:
        import redis

        server = redis.Redis.from_url(service.redis.url)
        subscribers = [c for c in server.client_list() if int(c["sub"]) or int(c["psub"])]
        assert server.pubsub_numpat() == 1 and len(subscribers) == 1, subscribers
        assert server.pubsub_channels() == []  # no per-call channel subscription

    release(service, headers, job_ids)
    assert_answered_canceled(callers, job_ids)
