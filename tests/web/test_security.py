"""Issue 12 on the web tier, in process on both backends: every route x every kind of caller
(no token, a garbage, revoked or expired token, another tenant's token, the owner's token, an
admin token), the status each gets, and that no byte of another tenant's job reaches anyone who
may not see it; the page's session, its CSRF token and Origin checks; rate limits; headers."""
from __future__ import annotations

import dataclasses
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core import jobs, tokens
from core.db import session_scope
from core.models import Job, Token, utcnow

SECRET_A, SECRET_B = "alphasecretwords", "bravosecretwords"
TRANSCRIPT = {"language": "en", "duration_ms": 5550, "segments": [
    {"start_ms": 0, "end_ms": 900, "text": "", "words": [{"start_ms": 0, "end_ms": 900, "text": "x"}]}]}


CREDENTIALS = ("none", "garbage", "not-bearer", "revoked", "expired", "other", "own", "admin")


def _secure(settings):
    """A web tier that needs a token for everything (TINGXIE_AUTH=required) and a token of every
    kind: (app, {kind: credential})."""
    from web import create_app

    app = create_app(dataclasses.replace(settings, auth="required", openai_wait_s=0.1), {"TESTING": True})
    with session_scope(app.extensions["tingxie"].db) as s:
        own = tokens.create(s, tenant="tenant-a").secret
        other = tokens.create(s, tenant="tenant-b").secret
        admin = tokens.create(s, tenant="ops", admin=True).secret
        revoked = tokens.create(s, tenant="tenant-a")
        tokens.revoke(s, revoked.info.id)
        expired = tokens.create(s, tenant="tenant-a", expires_at=utcnow() + timedelta(hours=1))
        s.execute(update(Token).where(Token.id == expired.info.id).values(expires_at=utcnow() - timedelta(seconds=1)))
    creds = {
        "none": None, "garbage": "tx_0123456789ab_" + "x" * 43, "not-bearer": "Basic dXNlcjpwdw==",
        "revoked": revoked.secret, "expired": expired.secret,
        "other": other, "own": own, "admin": admin,
    }
    assert tuple(creds) == CREDENTIALS
    return app, creds


@pytest.fixture
def secured(any_settings, db):
    app, creds = _secure(any_settings)
    yield app, creds
    app.extensions["tingxie"].close()


def _headers(credential: str | None) -> dict:
    if credential is None:
        return {}
    if credential.startswith("Basic "):
        return {"Authorization": credential}
    return {"Authorization": f"Bearer {credential}"}


def _finished_job(app, client, token: str, speech_path, name: str, secret: str) -> str:
    wav = speech_path("asr_example.wav")
    r = client.post("/api/v1/jobs", headers=_headers(token), content_type="multipart/form-data",
                    data={"file": (io.BytesIO(wav.read_bytes()), name), "hotwords": secret})
    assert r.status_code == 202, r.json
    job_id = r.json["id"]
    with session_scope(app.extensions["tingxie"].db) as s:
        transcript = {**TRANSCRIPT, "text": f"{secret} spoken"}
        transcript["segments"] = [{**TRANSCRIPT["segments"][0], "text": f"{secret} spoken"}]
        jobs.complete(s, job_id, jobs.claim(s, job_id), transcript)
    return job_id


class World:
    """The secured web tier with tenants A and B and a finished job each (``a``, ``b``)."""

    def __init__(self, settings, speech_path):
        self.app, self.creds = _secure(settings)
        client = self.app.test_client()
        self.a = _finished_job(self.app, client, self.creds["own"], speech_path, f"{SECRET_A}.wav", SECRET_A)
        self.b = _finished_job(self.app, client, self.creds["other"], speech_path, f"{SECRET_B}.wav", SECRET_B)
        self._addresses = 0

    def client(self):
        """A client from an address of its own: the failed-authentication budget
        (TINGXIE_AUTH_FAIL_RATE_LIMIT, per address) is one cell's, not the module's."""
        self._addresses += 1
        client = self.app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.{self._addresses // 250}.{self._addresses % 250}.1"
        return client

    def close(self):
        self.app.extensions["tingxie"].close()


@pytest.fixture(scope="module")
def world(module_settings, speech_dir):
    """One world per module and backend, for the cells that only read it (most of the matrix:
    building a world is most of a cell's time)."""
    world = World(module_settings, lambda name: speech_dir / name)
    yield world
    world.close()


@pytest.fixture
def fresh_world(fresh_settings, speech_path):
    """A world of this test's own, for the cells that change it (a deletion, a new job)."""
    world = World(fresh_settings, speech_path)
    yield world
    world.close()


# Every route that reads or changes a job, and what each caller gets for tenant A's job.
JOB_ROUTES = [
    ("GET", "/api/v1/jobs/{id}"),
    ("GET", "/api/v1/jobs/{id}/transcript"),
    ("GET", "/api/v1/jobs/{id}/transcript?format=srt"),
    ("GET", "/api/v1/jobs/{id}/media"),
    ("POST", "/api/v1/jobs/{id}/cancel"),
    ("PUT", "/api/v1/jobs/{id}/speakers"),
    ("DELETE", "/api/v1/jobs/{id}"),
]
EXPECTED = {"none": 401, "garbage": 401, "not-bearer": 401, "revoked": 401, "expired": 401,
            "other": 404, "own": None, "admin": None}  # None: the route's own success status


def _ok(method: str, path: str) -> int:
    """What the job's own tenant gets: the route ran (the job is finished, so there is nothing to
    cancel, and it was not diarized, so there are no speakers to name)."""
    if path.endswith("/cancel"):
        return 409
    if path.endswith("/speakers"):
        return 400
    return 204 if method == "DELETE" else 200


def _leaks(body: bytes, *secrets: str) -> list[str]:
    text = body.decode("utf-8", "replace").lower()
    return [s for s in secrets if s.lower() in text]


# The cells that change the world: the owner and an admin delete the job.
JOB_CELLS = [(who, method, route) for method, route in JOB_ROUTES for who in EXPECTED]
CHANGES = {(who, "DELETE", "/api/v1/jobs/{id}") for who in EXPECTED if EXPECTED[who] is None}


def _job_route_for_a_caller(world, who, method, route):
    app, client, creds, a = world.app, world.client(), world.creds, world.a
    body = {"json": {"names": {"S1": "x"}}} if route.endswith("/speakers") else {}
    r = client.open(route.format(id=a), method=method, headers=_headers(creds[who]), **body)
    expected = EXPECTED[who] or _ok(method, route)
    assert r.status_code == expected, (who, route, r.status_code, r.data[:200])
    if expected >= 400 and EXPECTED[who] is not None:
        assert r.json["error"]["code"] == {401: "unauthorized", 404: "not_found"}[expected]
        # The same answer as for a job that does not exist (it repeats the id asked for, nothing else).
        assert not _leaks(r.data, SECRET_A, "tenant-a"), r.data
    if expected == 404:
        missing = client.open(route.format(id="f" * 32), method=method, headers=_headers(creds[who]), **body)
        assert missing.status_code == 404 and missing.data.replace(b"f" * 32, a.encode()) == r.data
    if expected == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    with session_scope(app.extensions["tingxie"].db) as s:
        still_there = s.get(Job, a) is not None
    assert still_there == (method != "DELETE" or expected != 204), "only the owner or an admin deletes"


@pytest.mark.parametrize("who,method,route", [cell for cell in JOB_CELLS if cell not in CHANGES])
def test_every_job_route_for_every_caller(world, who, method, route):
    _job_route_for_a_caller(world, who, method, route)


@pytest.mark.parametrize("who,method,route", sorted(CHANGES))
def test_every_job_route_for_every_caller_that_changes_the_job(fresh_world, who, method, route):
    _job_route_for_a_caller(fresh_world, who, method, route)


@pytest.mark.parametrize("who", list(EXPECTED))
def test_the_job_list_shows_each_caller_its_own_tenant(world, who):
    client, creds, a, b = world.client(), world.creds, world.a, world.b
    r = client.get("/api/v1/jobs?per_page=100", headers=_headers(creds[who]))
    if EXPECTED[who] == 401:
        assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"
        assert not _leaks(r.data, SECRET_A, SECRET_B, a, b)
        return
    assert r.status_code == 200
    ids = {j["id"] for j in r.json["items"]}
    if who == "admin":
        assert ids == {a, b} and r.json["total"] == 2
        assert {j["tenant"] for j in r.json["items"]} == {"tenant-a", "tenant-b"}
        only_b = client.get("/api/v1/jobs?tenant=tenant-b", headers=_headers(creds[who])).json
        assert [j["id"] for j in only_b["items"]] == [b]
    elif who == "own":
        assert ids == {a} and r.json["total"] == 1 and not _leaks(r.data, SECRET_B, b)
    else:  # other
        assert ids == {b} and r.json["total"] == 1 and not _leaks(r.data, SECRET_A, a)
        # Naming tenant A in the query does not widen what tenant B sees.
        r = client.get("/api/v1/jobs?tenant=tenant-a", headers=_headers(creds[who]))
        assert r.json["items"] == [] and not _leaks(r.data, SECRET_A, a)


@pytest.mark.parametrize("who", list(EXPECTED))
def test_the_openai_routes_for_every_caller(request, module_settings, who, speech_path):
    # A caller let in makes a job: a world of its own.
    world = request.getfixturevalue("world" if EXPECTED[who] == 401 else "fresh_world")
    app, client, creds, a, b = world.app, world.client(), world.creds, world.a, world.b
    headers = _headers(creds[who])
    models = client.get("/v1/models", headers=headers)
    model = client.get("/v1/models/whisper-1", headers=headers)
    wav = speech_path("asr_example.wav")
    call = client.post("/v1/audio/transcriptions", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(wav.read_bytes()), "call.wav"), "model": "whisper-1"})
    if EXPECTED[who] == 401:
        for r in (models, model, call):
            assert r.status_code == 401, r.data
            assert r.json["error"]["type"] == "authentication_error" and r.json["error"]["code"] == "unauthorized"
        with session_scope(app.extensions["tingxie"].db) as s:
            assert s.execute(select(Job).where(Job.filename == "call.wav")).first() is None
        return
    assert models.status_code == 200 and model.status_code == 200
    assert not _leaks(models.data + model.data, SECRET_A, SECRET_B, a, b)
    # No worker runs here: the call waits, then names its own job, which belongs to the caller.
    assert call.status_code == 504 and call.json["error"]["code"] == "still_running"
    assert not _leaks(call.data, SECRET_A, SECRET_B, a, b)
    job = client.get(call.headers["Location"], headers=headers).json
    tenant = {"own": "tenant-a", "other": "tenant-b", "admin": "ops"}[who]
    assert job["tenant"] == tenant and job["source"] == "openai"


@pytest.mark.parametrize("who", list(EXPECTED))
def test_submitting_and_the_service_routes_for_every_caller(request, module_settings, who, speech_path):
    # A caller let in makes a job: a world of its own.
    world = request.getfixturevalue("world" if EXPECTED[who] == 401 else "fresh_world")
    app, client, creds = world.app, world.client(), world.creds
    headers = _headers(creds[who])
    wav = speech_path("asr_example.wav")
    submit = client.post("/api/v1/jobs", headers=headers, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(wav.read_bytes()), "new.wav")})
    profiles = client.get("/api/v1/profiles", headers=headers)
    session = client.get("/api/v1/session", headers=headers)
    # Public: health, the page, the API document.
    for path in ("/healthz", "/", "/api/v1/openapi.json", "/api/v1/docs"):
        assert client.get(path).status_code == 200, path
    if EXPECTED[who] == 401:
        assert {submit.status_code, profiles.status_code, session.status_code} == {401}
        if who != "none":  # a token that is sent is checked even where none is needed
            assert client.get("/api/v1/openapi.json", headers=headers).status_code == 401
        with session_scope(app.extensions["tingxie"].db) as s:
            assert s.execute(select(Job).where(Job.filename == "new.wav")).first() is None
        assert list((app.extensions["tingxie"].settings.work_dir / "uploads").iterdir()) == []
        return
    assert submit.status_code == 202 and profiles.status_code == 200
    assert session.json["tenant"] == {"own": "tenant-a", "other": "tenant-b", "admin": "ops"}[who]
    assert session.json["via"] == "token" and session.json["admin"] is (who == "admin")
    job = client.get(submit.json["links"]["self"], headers=headers).json
    assert job["tenant"] == session.json["tenant"]


def test_a_revoked_token_stops_working_at_once(secured, speech_path):
    app, creds = secured
    client = app.test_client()
    with session_scope(app.extensions["tingxie"].db) as s:
        issued = tokens.create(s, tenant="tenant-c")
    headers = _headers(issued.secret)
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    with session_scope(app.extensions["tingxie"].db) as s:
        assert tokens.revoke(s, issued.info.display)
    r = client.get("/api/v1/jobs", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json["error"]["message"]
    assert issued.secret not in r.json["error"]["message"]


# --- The anonymous caller of a loopback web tier ------------------------------------------------

def test_anonymous_loopback_use_is_the_local_tenant_and_never_an_admin(client, app, speech_path):
    """The default (TINGXIE_AUTH=auto, bound to 127.0.0.1): this machine needs no token and is the
    'local' tenant; a token, when sent, is checked and shows its own tenant only."""
    wav = speech_path("asr_example.wav")
    mine = client.post("/api/v1/jobs", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(wav.read_bytes()), "mine.wav")}).json["id"]
    with session_scope(app.extensions["tingxie"].db) as s:
        team = tokens.create(s, tenant="team").secret
    theirs = client.post("/api/v1/jobs", headers=_headers(team), content_type="multipart/form-data",
                         data={"file": (io.BytesIO(wav.read_bytes()), "theirs.wav")}).json["id"]
    assert client.get("/api/v1/session").json == {"tenant": "local", "admin": False, "via": "anonymous",
                                                  "csrf_token": None, "expires_at": None}
    assert [j["id"] for j in client.get("/api/v1/jobs").json["items"]] == [mine]
    assert client.get(f"/api/v1/jobs/{theirs}").status_code == 404
    assert [j["id"] for j in client.get("/api/v1/jobs", headers=_headers(team)).json["items"]] == [theirs]
    assert client.get(f"/api/v1/jobs/{mine}", headers=_headers(team)).status_code == 404
    assert client.get("/api/v1/jobs", headers=_headers("tx_0123456789ab_" + "y" * 43)).status_code == 401


@pytest.mark.parametrize("environ,headers", [
    ({"REMOTE_ADDR": "10.1.2.3"}, {}),  # another machine (the server is bound to loopback, but a proxy may pass it on)
    ({}, {"Host": "attacker.example:8000"}),  # a page whose DNS name was rebound to 127.0.0.1
    ({}, {"X-Forwarded-For": "203.0.113.9"}),  # came through a reverse proxy
    ({}, {"Forwarded": "for=203.0.113.9"}),
])
def test_anonymous_use_is_only_for_this_machine_directly(client, environ, headers):
    r = client.get("/api/v1/jobs", headers=headers, environ_base=environ)
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"


def test_a_non_loopback_web_tier_needs_tokens_unless_told_otherwise(any_settings, db):
    from web import create_app

    for auth, status in (("auto", 401), ("required", 401), ("insecure-no-auth", 200)):
        app = create_app(dataclasses.replace(any_settings, host="0.0.0.0", auth=auth), {"TESTING": True})
        r = app.test_client().get("/api/v1/jobs", environ_base={"REMOTE_ADDR": "192.168.1.20"})
        assert r.status_code == status, auth
        app.extensions["tingxie"].close()


# --- The page's session: cookie, CSRF, Origin ---------------------------------------------------

def _sign_in(client, credential: str, **kwargs):
    return client.post("/api/v1/session", json={"token": credential}, **kwargs)


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_the_session(secured, speech_path):
    app, creds = secured
    client = app.test_client()
    r = _sign_in(client, creds["own"])
    assert r.status_code == 200 and r.json["tenant"] == "tenant-a" and r.json["via"] == "session"
    csrf = r.json["csrf_token"]
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; under https it is Secure (next test)
    assert creds["own"] not in cookie
    assert client.get("/api/v1/jobs").status_code == 200  # the cookie alone reads
    wav = speech_path("asr_example.wav")

    def submit(**headers):
        return client.post("/api/v1/jobs", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(wav.read_bytes()), "page.wav")})

    # A state-changing request needs the session's CSRF token, and the page's own origin.
    assert submit().json["error"]["code"] == "csrf_failed"
    assert submit(**{"X-CSRF-Token": "0" * 64}).status_code == 403
    refused = submit(**{"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:9999"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "origin_not_allowed"
    made = submit(**{"X-CSRF-Token": csrf, "Origin": "http://localhost"})
    assert made.status_code == 202
    assert client.get(made.json["links"]["self"]).json["tenant"] == "tenant-a"
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.execute(select(Job.id).where(Job.filename == "page.wav")).scalars().all() == [made.json["id"]]
    # Signing out needs the token too, then ends the session on the server: the old cookie is refused.
    session_cookie = client.get_cookie("tingxie_session").value
    assert client.delete("/api/v1/session").status_code == 403
    assert client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get_cookie("tingxie_session") is None
    client.set_cookie("tingxie_session", session_cookie)
    r = client.get("/api/v1/jobs")
    assert r.status_code == 401 and "revoked" in r.json["error"]["message"]
    assert "tingxie_session=;" in r.headers["Set-Cookie"]  # the dead cookie is cleared


def test_the_cookie_is_secure_under_https_and_a_session_ends_with_its_token(secured):
    app, creds = secured
    client = app.test_client()
    with session_scope(app.extensions["tingxie"].db) as s:
        issued = tokens.create(s, tenant="tenant-d")
    r = _sign_in(client, issued.secret, base_url="https://tingxie.example")
    assert "Secure" in r.headers["Set-Cookie"]
    assert client.get("/api/v1/jobs", base_url="https://tingxie.example").status_code == 200
    with session_scope(app.extensions["tingxie"].db) as s:
        tokens.revoke(s, issued.info.id)
    assert client.get("/api/v1/jobs", base_url="https://tingxie.example").status_code == 401


def test_sign_in_refusals(secured):
    app, creds = secured
    client = app.test_client()
    for bad in ("revoked", "expired", "garbage"):
        r = _sign_in(client, creds[bad])
        assert r.status_code == 401 and "Set-Cookie" not in r.headers, bad
    assert client.post("/api/v1/session", json={}).status_code == 400
    # Login CSRF: another site's page cannot sign a visitor's browser in (as the attacker).
    r = _sign_in(client, creds["own"], headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "Set-Cookie" not in r.headers


def test_a_one_time_sign_in_code_works_once(secured):
    app, creds = secured
    client = app.test_client()
    with session_scope(app.extensions["tingxie"].db) as s:
        code = tokens.signin_code(s, tenant="local", admin=True).secret
    assert client.get("/api/v1/jobs", headers=_headers(code)).status_code == 401  # not an API token
    r = _sign_in(client, code)
    assert r.status_code == 200 and r.json["admin"] is True and r.json["tenant"] == "local"
    assert app.test_client().post("/api/v1/session", json={"token": code}).status_code == 401  # used up


def test_anonymous_writes_from_another_origin_are_refused(client, speech_path):
    """A page on another site makes the visitor's browser POST to a loopback tingxie: refused."""
    wav = speech_path("asr_example.wav")
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        r = client.post("/api/v1/jobs", headers=headers, content_type="multipart/form-data",
                        data={"file": (io.BytesIO(wav.read_bytes()), "csrf.wav")})
        assert r.status_code == 403 and r.json["error"]["code"] == "origin_not_allowed", headers
    assert client.get("/api/v1/jobs").json["total"] == 0


def test_an_allowed_origin_may_write(any_settings, db, speech_path):
    from web import create_app

    app = create_app(dataclasses.replace(any_settings, allowed_origins=("https://console.example",)), {"TESTING": True})
    wav = speech_path("asr_example.wav")
    r = app.test_client().post("/api/v1/jobs", headers={"Origin": "https://console.example"},
                               content_type="multipart/form-data",
                               data={"file": (io.BytesIO(wav.read_bytes()), "ok.wav")})
    assert r.status_code == 202
    app.extensions["tingxie"].close()


def test_bearer_calls_need_no_csrf_token(secured, speech_path):
    app, creds = secured
    wav = speech_path("asr_example.wav")
    r = app.test_client().post("/api/v1/jobs", headers=_headers(creds["own"]), content_type="multipart/form-data",
                               data={"file": (io.BytesIO(wav.read_bytes()), "api.wav")})
    assert r.status_code == 202


# --- Rate limits, fair share cap, headers --------------------------------------------------------

def test_rate_limits_answer_429_with_retry_after(any_settings, db, speech_path):
    from web import create_app

    app = create_app(dataclasses.replace(any_settings, rate_limit="5/minute", upload_rate_limit="2/minute"), {"TESTING": True})
    client = app.test_client()
    with session_scope(app.extensions["tingxie"].db) as s:
        token = tokens.create(s, tenant="busy").secret
    statuses = [client.get("/api/v1/jobs").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    r = client.get("/api/v1/jobs")
    assert r.json["error"]["code"] == "rate_limited" and 1 <= int(r.headers["Retry-After"]) <= 61
    # Per token: another caller has its own counter; health checks are never limited.
    assert client.get("/api/v1/jobs", headers=_headers(token)).status_code == 200
    assert all(client.get("/healthz").status_code == 200 for _ in range(10))
    # The OpenAI routes answer in OpenAI's shape.
    wav = speech_path("asr_example.wav")
    r = [client.post("/api/v1/jobs", headers=_headers(token), content_type="multipart/form-data",
                     data={"file": (io.BytesIO(wav.read_bytes()), "u.wav")}) for _ in range(3)]
    assert [x.status_code for x in r] == [202, 202, 429]
    openai = client.post("/v1/audio/transcriptions", headers=_headers(token), content_type="multipart/form-data",
                         data={"file": (io.BytesIO(wav.read_bytes()), "o.wav"), "model": "whisper-1"})
    assert openai.status_code == 429 and openai.json["error"]["type"] == "rate_limit_error"
    assert "Retry-After" in openai.headers
    app.extensions["tingxie"].close()


def test_a_tenant_past_its_cap_is_refused(any_settings, db, speech_path):
    from web import create_app

    app = create_app(dataclasses.replace(any_settings, tenant_max_jobs=2), {"TESTING": True})
    client = app.test_client()
    wav = speech_path("asr_example.wav")

    def submit(headers=None):
        return client.post("/api/v1/jobs", headers=headers or {}, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(wav.read_bytes()), "j.wav")})

    assert [submit().status_code for _ in range(2)] == [202, 202]
    r = submit()
    assert r.status_code == 429 and r.json["error"]["code"] == "too_many_jobs" and "TINGXIE_TENANT_MAX_JOBS" in \
        r.json["error"]["message"]
    assert list((any_settings.work_dir / "uploads").iterdir()) == []
    with session_scope(app.extensions["tingxie"].db) as s:
        other = tokens.create(s, tenant="other").secret
    assert submit(_headers(other)).status_code == 202  # another tenant is not affected
    app.extensions["tingxie"].close()


def test_security_headers_on_pages_api_and_errors(client):
    for path in ("/", "/api/v1/docs", "/api/v1/jobs", "/api/v1/jobs/nope", "/nowhere", "/healthz"):
        r = client.get(path)
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, path
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "Server" not in r.headers or "werkzeug" not in r.headers["Server"].lower()
    assert "script-src 'self'" in client.get("/").headers["Content-Security-Policy"]
    for page in ("/", "/api/v1/docs"):
        html = client.get(page).data.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script"
        assert not re.search(r"\son[a-z]+\s*=", html) and "style=" not in html and "javascript:" not in html


# --- Issue 20: cookies that cannot be tossed, rate limits across routes and sessions -------------

def test_under_https_the_session_cookie_is_host_prefixed(secured):
    """``__Host-``: Secure, Path=/, no Domain, so no other origin of the host can set or shadow it."""
    app, creds = secured
    client = app.test_client()
    r = _sign_in(client, creds["own"], base_url="https://tingxie.example")
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("__Host-tingxie_session=txs_"), cookie
    assert "Secure" in cookie and "Path=/;" in cookie + ";" and "Domain" not in cookie
    assert client.get("/api/v1/session", base_url="https://tingxie.example").json["via"] == "session"
    # A plain-named cookie is not the session under https (any origin of the host could set that one).
    secret = cookie.split(";", 1)[0].split("=", 1)[1]
    plain = app.test_client(use_cookies=False)  # sends the Cookie header as given
    r = plain.get("/api/v1/jobs", base_url="https://tingxie.example",
                  headers={"Cookie": f"tingxie_session={secret}"})
    assert r.status_code == 401
    # Behind a trusted proxy, X-Forwarded-Proto says https, and the cookie is prefixed too.
    proxied = create_app_with(app, trusted_proxies=1)
    r = _sign_in(proxied.test_client(), creds["own"], headers={"X-Forwarded-Proto": "https",
                                                                "X-Forwarded-For": "203.0.113.9"})
    assert r.headers["Set-Cookie"].startswith("__Host-tingxie_session=")
    proxied.extensions["tingxie"].close()


def create_app_with(app, **changes):
    from web import create_app

    return create_app(dataclasses.replace(app.extensions["tingxie"].settings, **changes), {"TESTING": True})


def test_two_session_cookies_are_refused_and_csrf_tokens_are_bound_to_their_session(secured, speech_path):
    """Cookie tossing: a page on another port of the host plants its own session cookie for a
    narrower path; the victim's requests then carry two. Neither is used: 400 session_conflict,
    saying to clear the cookies, and no job is made for anyone."""
    app, creds = secured
    victim = _sign_in(app.test_client(), creds["own"]).json
    victim_cookie = _sign_in(app.test_client(), creds["own"]).headers["Set-Cookie"].split(";", 1)[0]
    attacker = _sign_in(app.test_client(), creds["other"])
    attacker_cookie = attacker.headers["Set-Cookie"].split(";", 1)[0]
    victim_csrf = tokens.csrf_token(victim_cookie.split("=", 1)[1])
    client = app.test_client(use_cookies=False)  # sends the Cookie header as given
    both = {"Cookie": f"{attacker_cookie}; {victim_cookie}"}
    r = client.get("/api/v1/session", headers=both)
    assert r.status_code == 400 and r.json["error"]["code"] == "session_conflict"
    assert "clear" in r.json["error"]["message"] and "txs_" not in r.json["error"]["message"]
    assert client.get("/", headers=both).status_code == 200  # the page loads, and says so
    wav = speech_path("asr_example.wav")
    for cookies in (both, {"Cookie": f"{victim_cookie}; {attacker_cookie}"}):
        r = client.post("/api/v1/jobs", headers={**cookies, "X-CSRF-Token": victim_csrf, "Origin": "http://localhost"},
                        content_type="multipart/form-data", data={"file": (io.BytesIO(wav.read_bytes()), "tossed.wav")})
        assert r.status_code == 400 and r.json["error"]["code"] == "session_conflict"
    # The CSRF token is bound to its session: the victim's token does nothing with the attacker's cookie.
    r = client.post("/api/v1/jobs", headers={"Cookie": attacker_cookie, "X-CSRF-Token": victim_csrf,
                                             "Origin": "http://localhost"},
                    content_type="multipart/form-data", data={"file": (io.BytesIO(wav.read_bytes()), "tossed.wav")})
    assert r.status_code == 403 and r.json["error"]["code"] == "csrf_failed"
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.execute(select(Job.id).where(Job.filename == "tossed.wav")).scalars().all() == []
    assert victim["csrf_token"] != attacker.json["csrf_token"]


def test_one_request_budget_per_token_across_every_route_and_every_sign_in(any_settings, db):
    """``TINGXIE_RATE_LIMIT`` is one budget per token across all routes (not one per route), and a
    page session spends its token's budget: signing in again gives no fresh one."""
    from web import create_app

    app = create_app(dataclasses.replace(any_settings, auth="required", rate_limit="12/minute", auth_fail_rate_limit="off"),
                     {"TESTING": True})
    with session_scope(app.extensions["tingxie"].db) as s:
        token = tokens.create(s, tenant="busy").secret
        other = tokens.create(s, tenant="calm").secret
    routes = ["/api/v1/jobs", "/api/v1/profiles", "/v1/models", "/api/v1/session", "/api/v1/jobs/" + "f" * 32,
              "/nowhere"]
    statuses = [app.test_client().get(route, headers=_headers(token)).status_code for route in routes]
    assert 429 not in statuses, statuses
    # Three page sessions of the same token: each signs in (from its own address), then reads.
    for n in range(3):
        page = app.test_client()
        page.environ_base["REMOTE_ADDR"] = f"192.0.2.{n + 1}"
        assert _sign_in(page, token).status_code == 200
        statuses += [page.get(route).status_code for route in ("/api/v1/jobs", "/api/v1/profiles")]
    assert statuses == [200, 200, 200, 200, 404, 404] + [200] * 6, statuses
    # The token's 12 are spent, on whichever route, by it or by any of its sessions.
    assert app.test_client().get("/v1/models", headers=_headers(token)).status_code == 429
    assert page.get("/api/v1/jobs/" + "f" * 32).status_code == 429
    fresh = app.test_client()
    fresh.environ_base["REMOTE_ADDR"] = "192.0.2.9"
    assert _sign_in(fresh, token).status_code == 200  # signing in is counted by address...
    assert fresh.get("/api/v1/jobs").status_code == 429  # ...and the new session still has no budget
    assert app.test_client().get("/api/v1/jobs", headers=_headers(other)).status_code == 200
    app.extensions["tingxie"].close()


def test_failed_authentication_has_a_stricter_budget_per_address(any_settings, db):
    """Bad tokens, sessions and sign-ins from one address, spread over routes, are held by
    ``TINGXIE_AUTH_FAIL_RATE_LIMIT`` long before the request budget; other addresses are not."""
    from web import create_app

    app = create_app(dataclasses.replace(any_settings, auth="required", rate_limit="1000/minute", auth_fail_rate_limit="8/minute"),
                     {"TESTING": True})
    with session_scope(app.extensions["tingxie"].db) as s:
        token = tokens.create(s, tenant="honest").secret
    attacker = app.test_client(use_cookies=False)
    attacker.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    garbage = "tx_0123456789ab_" + "x" * 43
    tries = []
    for n in range(40):
        kind = n % 5
        if kind == 0:
            r = attacker.get("/api/v1/jobs", headers=_headers(garbage))
        elif kind == 1:
            r = attacker.post("/v1/audio/transcriptions", headers=_headers(garbage))
        elif kind == 2:
            r = attacker.get("/api/v1/profiles", headers={"Cookie": "tingxie_session=" + garbage.replace("tx_", "txs_")})
        elif kind == 3:
            r = _sign_in(attacker, garbage)
        else:
            r = attacker.get("/nowhere", headers=_headers(garbage))
        tries.append(r.status_code)
    assert tries[:8] == [401] * 8 and set(tries[8:]) == {429}, tries
    r = attacker.get("/api/v1/jobs", headers=_headers(garbage))
    assert r.json["error"]["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
    assert "failed" in r.json["error"]["message"]
    assert attacker.get("/healthz").status_code == 200
    assert app.test_client().get("/api/v1/jobs", headers=_headers(token)).status_code == 200  # another address
    app.extensions["tingxie"].close()
