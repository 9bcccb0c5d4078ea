"""Issue 12 against the real service: web, worker and gateway processes on a deployment that needs
tokens. The events WebSocket and the FunASR gateway for every kind of caller; hostile files (a
playlist or concat script naming another tenant's upload, an mp3 with a script in its title
saved as .html/.svg/...) through REST and the gateway; the web servers' banner and slow clients."""
from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import websocket
import websockets
from sqlalchemy import select, update

from core import tokens
from core.db import make_engine, make_sessionmaker, session_scope
from core.models import Job, Token, utcnow
from media import find_ffmpeg
from tests.support.settings import REPO, make_settings
from tests.support.funasr_testclient import Audio, read_answer, send_file
from tests.support.service import settings_env
from tests.support.gateway import pcm_of, start_gateway
from tests.support.wsclient import close_ws

pytestmark = pytest.mark.slow

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A service that needs a token for everything, with one worker; tokens of every kind."""
    from core.migrate import upgrade
    from tests.support.service import Service

    tmp = tmp_path_factory.mktemp("secure")
    settings = make_settings(tmp, auth="required", gateway_tenant="funasr-clients")
    upgrade(settings)
    engine = make_engine(settings.database_url)
    db = make_sessionmaker(engine)
    with session_scope(db) as s:
        creds = {
            "own": tokens.create(s, tenant="tenant-a").secret,
            "other": tokens.create(s, tenant="tenant-b").secret,
            "admin": tokens.create(s, tenant="ops", admin=True).secret,
            "garbage": "tx_0123456789ab_" + "z" * 43,
        }
        revoked = tokens.create(s, tenant="tenant-a")
        tokens.revoke(s, revoked.info.id)
        expired = tokens.create(s, tenant="tenant-a", expires_at=utcnow() + timedelta(hours=1))
        s.execute(update(Token).where(Token.id == expired.info.id).values(expires_at=utcnow() - timedelta(seconds=1)))
        creds.update(revoked=revoked.secret, expired=expired.secret)
    (tmp / "logs").mkdir()
    service = Service(settings=settings, log_dir=tmp / "logs")
    service.start_web()
    service.start_worker()
    yield service, creds, db
    service.discard()
    engine.dispose()


def bearer(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def upload(service, token: str, path: Path, name: str | None = None, **form) -> requests.Response:
    with open(path, "rb") as fh:
        return requests.post(f"{service.base_url}/api/v1/jobs", headers=bearer(token),
                             files={"file": (name or path.name, fh)}, data=form, timeout=60)


# --- One connection, many callers ----------------------------------------------------------------

def test_callers_sharing_one_connection_are_each_identified_afresh(deployment, speech_path):
    """A reverse proxy keeps connections to tingxie open and sends many clients' requests down each,
    and so may any client. Whoever sent the previous request on a connection (an upload, whose body the server read while
    it ran) is never the next request's caller: no token is 401, another tenant's token sees only
    its own jobs, and the page's signed-out session stays signed out."""
    import http.client
    from email.message import Message

    service, creds, _ = deployment
    conn = http.client.HTTPConnection("127.0.0.1", service.settings.port, timeout=60)

    def call(method: str, path: str, token: str | None = None, headers: dict | None = None,
             **kwargs) -> tuple[int, Message, bytes]:
        prepared = requests.Request(method, service.base_url + path, headers={**bearer(token), **(headers or {})},
                                    **kwargs).prepare()
        conn.request(method, prepared.path_url, body=prepared.body, headers=dict(prepared.headers))
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read()

    audio = speech_path("asr_example.wav").read_bytes()
    sock = None
    for round_ in range(3):
        status, _, body = call("POST", "/api/v1/jobs", creds["own"], files={"file": ("onewire.wav", audio)})
        assert status == 202, body
        job_id = json.loads(body)["id"]
        sock = sock or conn.sock
        assert call("GET", "/api/v1/jobs")[0] == 401, round_
        assert call("GET", f"/api/v1/jobs/{job_id}")[0] == 401, round_
        status, _, body = call("GET", "/api/v1/jobs?per_page=100", creds["other"])
        assert status == 200 and job_id.encode() not in body and b"onewire" not in body, round_
        assert call("GET", f"/api/v1/jobs/{job_id}", creds["other"])[0] == 404, round_
        status, headers, body = call("POST", "/api/v1/session", json={"token": creds["own"]})
        assert status == 200, body
        cookie = headers["Set-Cookie"].split(";", 1)[0]
        csrf = json.loads(body)["csrf_token"]
        assert call("DELETE", "/api/v1/session", headers={"Cookie": cookie, "X-CSRF-Token": csrf,
                                                           "Origin": service.base_url})[0] == 204
        status, headers, _ = call("GET", "/api/v1/session")
        assert status == 401 and "Set-Cookie" not in headers, round_  # nothing of the signed-out session
        assert conn.sock is sock, "the requests did not share one connection"
    # A WebSocket handshake on the same connection, no credentials, after an upload read its body.
    assert call("POST", "/api/v1/jobs", creds["own"], files={"file": ("onewire.wav", audio)})[0] == 202
    assert conn.sock is sock
    conn.sock.sendall(f"GET /api/v1/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = conn.sock.recv(4096).split(b"\r\n", 1)[0]
    assert head.endswith(b" 401 Unauthorized"), head
    conn.close()


# --- The events WebSocket ------------------------------------------------------------------------

def _events(service, job_id: str, token: str | None = None, origin: str | None = None):
    """(status of a refused handshake, None) or (None, messages until the server closes, close code)."""
    url = f"ws://127.0.0.1:{service.settings.port}/api/v1/jobs/{job_id}/events"
    headers = [f"Authorization: Bearer {token}"] if token else []
    try:
        ws = websocket.create_connection(url, header=headers, timeout=30, origin=origin,
                                         suppress_origin=origin is None)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code, None, None
    messages = []
    try:
        while True:
            opcode, data = ws.recv_data(control_frame=False)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return None, messages, int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            messages.append(json.loads(data))
            if messages[-1]["type"] == "snapshot" and messages[-1]["job"]["status"] not in ("done", "failed"):
                return None, messages, None  # a live watch: the snapshot is what this test reads
    finally:
        close_ws(ws)


@pytest.mark.parametrize("who,refused", [
    ("none", 401), ("garbage", 401), ("revoked", 401), ("expired", 401),
    ("other", None), ("own", None), ("admin", None),
])
def test_the_events_socket_for_every_caller(deployment, speech_path, who, refused):
    service, creds, _ = deployment
    job_id = upload(service, creds["own"], speech_path("asr_example.wav"), "alphasecret.wav").json()["id"]
    status, messages, code = _events(service, job_id, creds.get(who))
    assert status == refused, (who, status)
    if refused:
        return
    if who == "other":
        # Another tenant's job answers exactly as a job that does not exist; nothing of it is sent.
        unknown = _events(service, "f" * 32, creds[who])
        assert code == 1008 == unknown[2]
        assert messages == [{"type": "error", "error": {"code": "not_found", "message": f"no job {job_id}"}}]
        assert json.dumps(unknown[1]).replace("f" * 32, job_id) == json.dumps(messages)
        assert "alphasecret" not in json.dumps(messages)
        return
    assert messages[0]["type"] == "snapshot" and messages[0]["job"]["id"] == job_id
    assert messages[0]["job"]["tenant"] == "tenant-a" and messages[0]["job"]["filename"] == "alphasecret.wav"


def test_the_events_socket_refuses_other_origins_before_accepting(deployment, speech_path):
    service, creds, _ = deployment
    job_id = upload(service, creds["own"], speech_path("asr_example.wav")).json()["id"]
    assert _events(service, job_id, creds["own"], origin=EVIL)[0] == 403
    assert _events(service, job_id, creds["own"], origin="null")[0] == 403
    own_origin = f"http://127.0.0.1:{service.settings.port}"
    status, messages, _ = _events(service, job_id, creds["own"], origin=own_origin)
    assert status is None and messages[0]["type"] == "snapshot"


# --- The FunASR gateway --------------------------------------------------------------------------

def _gateway(url: str, audio: Audio, headers: dict | None = None, origin: str | None = None):
    """(refused HTTP status, None) or (None, the answer frame)."""
    async def go():
        kwargs = {"additional_headers": headers or {}, "subprotocols": ["binary"], "ping_interval": None,
                  "open_timeout": 30}
        if origin is not None:
            kwargs["origin"] = origin
        try:
            async with websockets.connect(url, **kwargs) as ws:
                await send_file(ws, audio, "new")
                return None, (await read_answer(ws, "new", 300)).result
        except websockets.exceptions.InvalidStatus as exc:
            return exc.response.status_code, json.loads(exc.response.body or b"{}")
    return asyncio.run(go())


def _tenant_of(service, admin: str, job_id: str) -> str:
    return requests.get(f"{service.base_url}/api/v1/jobs/{job_id}", headers=bearer(admin), timeout=10).json()["tenant"]


def test_the_gateway_keeps_funasr_clients_working_as_its_tenant_and_checks_tokens(deployment, speech_path):
    service, creds, _ = deployment
    open_url = start_gateway(service, "--certfile", "0")  # tenant from TINGXIE_GATEWAY_TENANT
    strict_url = start_gateway(service, "--certfile", "0", "--require-token")
    pcm, _ = pcm_of(speech_path("asr_example.wav"))
    audio = Audio(pcm, "clip", "pcm", 16000)

    # FunASR's own clients send nothing: their jobs are the gateway's tenant.
    status, frame = _gateway(open_url, audio)
    assert status is None and frame["text"] and _tenant_of(service, creds["admin"], frame["job_id"]) == "funasr-clients"
    # A client that can send a token: as a header or on the URL, its jobs are its tenant's.
    status, frame = _gateway(open_url, audio, headers=bearer(creds["own"]))
    assert status is None and _tenant_of(service, creds["admin"], frame["job_id"]) == "tenant-a"
    status, frame = _gateway(f"{strict_url}/?token={creds['other']}", audio)
    assert status is None and _tenant_of(service, creds["admin"], frame["job_id"]) == "tenant-b"
    # A token that is sent is always checked; --require-token refuses clients without one.
    for url, headers in ((open_url, bearer(creds["revoked"])), (open_url, bearer(creds["garbage"])),
                         (f"{open_url}/?token={creds['expired']}", None), (strict_url, None),
                         (strict_url, {"Authorization": "Basic dXNlcjpwdw=="})):
        status, body = _gateway(url, audio, headers=headers)
        assert status == 401 and body["error"]["code"] == "unauthorized", (url, headers, body)
    # A browser page from another origin is refused before the socket opens; tingxie's own page is not.
    status, body = _gateway(open_url, audio, origin=EVIL)
    assert status == 403 and body["error"]["code"] == "origin_not_allowed"
    status, frame = _gateway(open_url, audio, origin=f"http://127.0.0.1:{service.settings.port}")
    assert status is None and frame["text"]


# --- Hostile files through the real service -----------------------------------------------------

def _playlist(kind: str, victim: Path, folder: Path) -> bytes:
    target = str(victim) if kind.endswith("absolute") else str(Path("..") / victim.parent.name / victim.name)
    if kind.startswith("hls"):
        return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{target}\n#EXT-X-ENDLIST\n".encode()
    return f"ffconcat version 1.0\nfile '{target}'\n".encode()


def test_playlists_and_concat_scripts_naming_another_tenants_upload_are_refused(deployment, speech_path, tmp_path):
    """The issue's cross-tenant read, over REST and over the gateway: refused at upload (415
    bad_media), no job, no stored file, nothing left in the spool, no worker time."""
    service, creds, db = deployment
    victim = upload(service, creds["own"], speech_path("asr_example.mp3"), "victim.mp3").json()["id"]
    with session_scope(db) as s:
        victim_path = service.settings.media_dir / s.get(Job, victim).media_key
        before = set(s.execute(select(Job.id)).scalars())
    url = start_gateway(service, "--certfile", "0")
    for kind in ("hls-absolute", "hls-relative", "concat-absolute", "concat-relative"):
        data = _playlist(kind, victim_path, tmp_path)
        path = tmp_path / f"{kind}.mp3"
        path.write_bytes(data)
        r = upload(service, creds["other"], path, "x.mp3")
        assert r.status_code == 415 and r.json()["error"]["code"] == "bad_media", (kind, r.text)
        status, frame = _gateway(url, Audio(data, "x.mp3", "mp3", None, chunk_bytes=4096),
                                 headers=bearer(creds["other"]))
        assert status is None and frame["error_code"] == "bad_media" and frame["job_id"] is None, (kind, frame)
        assert frame["text"] == ""
    with session_scope(db) as s:
        assert set(s.execute(select(Job.id)).scalars()) == before  # no job was made
    stored = {p.name for p in service.settings.media_dir.iterdir()}
    assert stored == before and victim in stored
    assert list((service.settings.work_dir / "uploads").iterdir()) == []
    assert "tenant-b" not in " ".join(service.log(f"worker{i}") for i in range(len(service.workers)))


def _script_in_its_title(src: Path, dst: Path) -> Path:
    """A valid mp3 (real speech) whose ID3 title is a script: what a browser would run if tingxie
    served it as HTML."""
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-i", str(src), "-c", "copy", "-id3v2_version", "3",
                    "-metadata", "title=<script>document.title='pwned';fetch('/api/v1/jobs')</script>",
                    "-f", "mp3", str(dst)], check=True)
    assert b"<script>" in dst.read_bytes()
    return dst


@pytest.mark.parametrize("name", ["poly.html", "poly.htm", "poly.xhtml", "poly.svg"])
def test_an_mp3_named_like_a_page_is_served_as_audio_never_as_a_page(deployment, speech_path, tmp_path, name):
    service, creds, _ = deployment
    poly = _script_in_its_title(speech_path("asr_example.mp3"), tmp_path / "poly.mp3")
    r = upload(service, creds["own"], poly, name)
    assert r.status_code == 202, r.text
    media = requests.get(f"{service.base_url}{r.json()['links']['media']}", headers=bearer(creds["own"]), timeout=10)
    assert media.status_code == 200 and media.content == poly.read_bytes()
    assert media.headers["Content-Type"] == "audio/mpeg"
    assert media.headers["X-Content-Type-Options"] == "nosniff"
    assert media.headers["Content-Security-Policy"].startswith("sandbox")
    assert media.headers["Content-Disposition"].startswith("inline")
    # And it is an ordinary job: the worker transcribes the speech in it.
    job, deadline = None, time.monotonic() + 300
    while time.monotonic() < deadline:
        job = requests.get(f"{service.base_url}{r.json()['links']['self']}", headers=bearer(creds["own"]),
                           timeout=10).json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.5)
    assert job["status"] == "done" and job["filename"] == name


# --- The web servers: no version banner, slow clients dropped -------------------------------------

def _start_production(service) -> None:
    """The web tier as compose runs it: several processes (uvicorn's supervisor)."""
    service.web = service._spawn("production", "web", "--workers", "2", "--threads", "4")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(service.base_url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(service.log("production"))


def _stalls(port: int, partial: bytes, limit_s: float) -> tuple[bool, bytes]:
    """Send part of a request and stop: whether the server gave up (closed) before the client's
    ``limit_s`` (a hang guard far past the idle timeout), and what it said."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
        sock.sendall(partial)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            return False, answer
        except ConnectionResetError:
            pass
    return True, answer


@pytest.mark.parametrize("server", ["dev", "production"])
def test_no_version_banner_and_stalled_requests_are_dropped(live_service, tmp_path, server):
    settings = make_settings(tmp_path, request_idle_timeout_s=2.0)
    service = live_service(settings, workers=0)
    if server == "production":
        service.stop()
        _start_production(service)
    r = requests.get(service.base_url + "/healthz", timeout=5)
    banner = r.headers.get("Server", "")
    assert "werkzeug" not in banner.lower() and "python" not in banner.lower() and "/" not in banner, banner
    port = settings.port
    # Headers that never finish, and a body that stops half-way: dropped by the server (its idle timeout).
    for partial in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                    b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                    b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; "
                    b"name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF"):
        dropped, answer = _stalls(port, partial, limit_s=120)
        assert dropped, (server, answer)
        status_line = answer.split(b"\r\n", 1)[0]
        assert not answer or b" 408 " in status_line, answer  # headers: just closed; a body: 408 request_timeout
    # The half upload is not kept (removed once the request's thread has unwound, which the 408 does not wait for).
    deadline = time.monotonic() + 20
    while list((settings.work_dir / "uploads").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list((settings.work_dir / "uploads").iterdir()) == []
    final = requests.get(service.base_url + "/healthz", timeout=5)
    assert final.status_code == 200, (final.text, service.log("production" if server == "production" else "web")[-3000:])  # and it still answers
    assert "Traceback" not in service.log("production" if server == "production" else "web")


# --- Issue 20: revocation reaches open sockets ---------------------------------------------------

def _held_job(service, db, tenant: str) -> str:
    """A job that stays running while the test watches it: made without being sent to a worker,
    its lease running for an hour, so no sweeper takes it back."""
    from core import jobs
    from core.options import JobOptions
    from core.submit import resolve_options

    job_id = jobs.new_job_id()
    with session_scope(db) as s:
        jobs.create_job(s, job_id=job_id, options=resolve_options(service.settings, JobOptions()), media_key="held",
                        filename="held.wav", size_bytes=1, duration_ms=1000, tenant=tenant)
        s.execute(update(Job).where(Job.id == job_id).values(status="running", attempt=1, started_at=utcnow(),
                                                             enqueued_at=utcnow(),
                                                             heartbeat_at=utcnow() + timedelta(hours=1)))
    return job_id


def _watching(service, job_id: str, headers: list[str], origin: str | None = None):
    ws = websocket.create_connection(f"ws://127.0.0.1:{service.settings.port}/api/v1/jobs/{job_id}/events",
                                     header=headers, timeout=60, origin=origin, suppress_origin=origin is None)
    assert json.loads(ws.recv())["type"] == "snapshot"
    return ws


def _close_code(ws) -> int | None:
    """Read until the server closes (within the socket's timeout): its close code."""
    try:
        while True:
            opcode, data = ws.recv_data(control_frame=False)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big") if len(data) >= 2 else None
    finally:
        close_ws(ws)


def test_revoked_or_expired_tokens_and_ended_sessions_lose_their_open_event_sockets(deployment):
    """Sockets opened with a token that `tingxie tokens revoke` then revokes, with a token that then
    expires, and with a page session that then signs out, are closed with 1008; another token's
    socket on the same job stays open."""
    service, creds, db = deployment
    with session_scope(db) as s:
        revoked = tokens.create(s, tenant="tenant-r")
        expiring = tokens.create(s, tenant="tenant-r", expires_at=utcnow() + timedelta(hours=1))
        kept = tokens.create(s, tenant="tenant-r").secret
        paged = tokens.create(s, tenant="tenant-r").secret
    job_id = _held_job(service, db, "tenant-r")
    page = requests.Session()
    signed_in = page.post(f"{service.base_url}/api/v1/session", json={"token": paged}, timeout=10)
    assert signed_in.status_code == 200
    cookie = "; ".join(f"{c.name}={c.value}" for c in page.cookies)
    sockets = {
        "revoked": _watching(service, job_id, [f"Authorization: Bearer {revoked.secret}"]),
        "expired": _watching(service, job_id, [f"Authorization: Bearer {expiring.secret}"]),
        "signed out": _watching(service, job_id, [f"Cookie: {cookie}"], origin=service.base_url),
        "kept": _watching(service, job_id, [f"Authorization: Bearer {kept}"]),
    }
    done = subprocess.run([sys.executable, "-m", "cli", "tokens", "revoke", f"tx_{revoked.info.id}_…"],
                          cwd=REPO, env=settings_env(service.settings), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with session_scope(db) as s:
        s.execute(update(Token).where(Token.id == expiring.info.id).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert page.delete(f"{service.base_url}/api/v1/session", timeout=10, headers={
        "X-CSRF-Token": signed_in.json()["csrf_token"], "Origin": service.base_url}).status_code == 204
    page.close()
    for name in ("revoked", "expired", "signed out"):
        assert _close_code(sockets[name]) == 1008, name
    still = sockets["kept"]
    still.ping(b"alive")
    assert still.recv_data(control_frame=True)[0] == websocket.ABNF.OPCODE_PONG  # not closed
    close_ws(still)


def test_a_revoked_token_loses_its_gateway_connection_and_makes_no_more_jobs(deployment, speech_path):
    """A FunASR client connected with a token makes a job; once the token is revoked (core.tokens),
    the connection gets an `unauthorized` error frame and a 1008 close, and a file it sends after
    the revocation becomes no job."""
    service, creds, db = deployment
    url = start_gateway(service, "--certfile", "0")
    with session_scope(db) as s:
        issued = tokens.create(s, tenant="tenant-g")
    pcm, _ = pcm_of(speech_path("asr_example.wav"))

    def jobs_of_tenant() -> int:
        with session_scope(db) as s:
            return len(s.execute(select(Job.id).where(Job.tenant == "tenant-g")).scalars().all())

    async def go():
        async with websockets.connect(url, additional_headers=bearer(issued.secret), subprotocols=["binary"],
                                      ping_interval=None, open_timeout=30) as ws:
            await send_file(ws, Audio(pcm, "before", "pcm", 16000), "new")
            assert (await read_answer(ws, "new", 300)).result["text"]
            with session_scope(db) as s:
                assert tokens.revoke(s, issued.info.id)
            frames = []
            try:
                await send_file(ws, Audio(pcm, "after", "pcm", 16000), "new")
                while True:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            except websockets.ConnectionClosed as exc:
                return frames, exc.rcvd.code if exc.rcvd else None

    frames, code = asyncio.run(go())
    assert code == 1008, (code, frames)
    assert frames and all(frame.get("error_code") == "unauthorized" and not frame["text"] for frame in frames), frames
    assert jobs_of_tenant() == 1
    status, body = _gateway(url, Audio(pcm, "again", "pcm", 16000), headers=bearer(issued.secret))
    assert status == 401 and jobs_of_tenant() == 1
