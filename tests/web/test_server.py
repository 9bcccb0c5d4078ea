"""The web tier's server against a live ``tingxie web`` process (issues 19 and 20): request bodies
are read on the event loop before a request gets a thread, under a cap, a rate and a deadline;
chunked bodies arrive whole; an ambiguous head is a 400; event sockets outlive the request idle
timeout; a full scratch disk answers 507; a stopping server answers the uploads it was receiving 503."""
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import websocket

from tests.support.settings import make_settings
from tests.support.wsclient import close_ws

pytestmark = pytest.mark.slow


def _answer(sock: socket.socket) -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of the one response on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, body
        body += chunk
    return int(lines[0].split()[1]), headers, json.loads(body)


def _head(method: str, path: str, length: int | None, content_type: str = "application/json",
          extra: str = "") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{size}{extra}\r\n"
            ).encode()


MULTIPART_START = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                   b"Content-Type: audio/wav\r\n\r\nRIFF")


def _spooled(settings) -> list[Path]:
    return list((settings.scratch_dir / "uploads").glob("*.part"))


def test_slow_bodies_hold_no_thread_and_public_bodies_are_small(live_service, tmp_path):
    """Twice as many callers as threads trickle sign-in bodies: the health check is answered while
    every one of them is still sending; a body over the public cap is refused before it is read."""
    settings = make_settings(tmp_path, web_threads=2)
    service = live_service(settings, workers=0)
    port = settings.port
    slow = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(4)]
    for sock in slow:
        sock.sendall(_head("POST", "/api/v1/session", 50) + b"{")
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.5):
            for sock in slow:
                sock.sendall(b" ")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(1.0)  # the slow callers are in (a thread each, before this change)
        r = requests.get(service.base_url + "/healthz", timeout=30)
        assert r.status_code == 200
        for sock in slow:  # still sending: none of them has been answered
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
    finally:
        stop.set()
        trickler.join()
        for sock in slow:
            sock.close()
    # Public routes take a few KiB: a big declared body and a big chunked one are refused (413).
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(_head("POST", "/api/v1/session", 200 * 2**20) + b"{")
        status, _, body = _answer(sock)
    assert status == 413 and body["error"]["code"] == "too_large" and "TINGXIE_PUBLIC_BODY_KB" in body["error"]["message"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(_head("POST", "/api/v1/session", None))
        for _ in range(20):
            sock.sendall(b"%x\r\n%s\r\n" % (1024, b" " * 1024))
        status, _, body = _answer(sock)
    assert status == 413 and body["error"]["code"] == "too_large"
    # An upload route takes a large body only as multipart (into the spool); anything else is held
    # in memory and capped as JSON.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(_head("POST", "/api/v1/jobs", 200 * 2**20) + b"{")
        status, _, body = _answer(sock)
    assert status == 413 and "TINGXIE_MAX_BODY_KB" in body["error"]["message"]
    assert requests.get(service.base_url + "/healthz", timeout=10).status_code == 200


def test_a_body_under_the_minimum_rate_is_answered_408(live_service, tmp_path):
    settings = make_settings(tmp_path, request_idle_timeout_s=1.0, body_min_rate_bytes_s=1024)
    service = live_service(settings, workers=0)
    with socket.create_connection(("127.0.0.1", settings.port), timeout=60) as sock:
        sock.sendall(_head("POST", "/api/v1/session", 5000) + b"{")
        answer = None
        for _ in range(100):  # a byte every 0.2 s: never idle, but far under 1 KiB/s
            time.sleep(0.2)
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(0.01)
            try:
                answer = sock.recv(65536, socket.MSG_PEEK)
            except TimeoutError:
                continue
            if answer:
                break
        sock.settimeout(30)
        status, _, body = _answer(sock)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert "TINGXIE_BODY_MIN_RATE_KB_S" in body["error"]["message"]
    assert requests.get(service.base_url + "/healthz", timeout=10).status_code == 200


def test_two_host_headers_are_a_json_400(live_service, tmp_path):
    """Refused by the HTTP parser (h11) before the application, in the API's shape."""
    settings = make_settings(tmp_path)
    live_service(settings, workers=0)
    with socket.create_connection(("127.0.0.1", settings.port), timeout=30) as sock:
        sock.sendall(b"GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n")
        status, _, body = _answer(sock)
    assert status == 400 and body["error"]["code"] == "bad_request" and "Host" in body["error"]["message"]


def test_a_chunked_upload_with_curl_becomes_a_job(live_service, tmp_path, speech_path):
    """A client that streams a file without a length (curl's chunked upload, the OpenAI Node SDK's
    read stream): the upload arrives whole and is transcribed."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    service = live_service(make_settings(tmp_path))
    out = subprocess.run(["curl", "-sS", "-H", "Transfer-Encoding: chunked", "-F",
                          f"file=@{speech_path('jfk.flac')}", "-w", "\n%{http_code}",
                          service.base_url + "/api/v1/jobs"], capture_output=True, text=True, timeout=120)
    body, _, code = out.stdout.rpartition("\n")
    assert code == "202", (out.stdout, out.stderr)
    job = service.wait(json.loads(body)["id"])
    assert job["status"] == "done" and job["filename"] == "jfk.flac", job
    # The OpenAI route the same way, its form fields parsed as the body arrived.
    out = subprocess.run(["curl", "-sS", "-H", "Transfer-Encoding: chunked", "-F", f"file=@{speech_path('jfk.flac')}",
                          "-F", "model=whisper-1", "-F", "response_format=json", "-w", "\n%{http_code}",
                          service.base_url + "/v1/audio/transcriptions"], capture_output=True, text=True, timeout=400)
    body, _, code = out.stdout.rpartition("\n")
    assert code == "200" and "ask not" in json.loads(body)["text"].lower(), (out.stdout, out.stderr)
    assert _spooled(service.settings) == []


def test_an_upload_without_good_credentials_is_refused_unread(live_service, tmp_path):
    """Nobody without a token can make the server spool a body: 401 before the body is read."""
    settings = make_settings(tmp_path, auth="required")
    live_service(settings, workers=0)
    with socket.create_connection(("127.0.0.1", settings.port), timeout=30) as sock:
        sock.sendall(_head("POST", "/api/v1/jobs", 100 * 2**20, "multipart/form-data; boundary=b") + MULTIPART_START)
        status, headers, body = _answer(sock)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert _spooled(settings) == []


def test_an_event_socket_outlives_the_request_idle_timeout(live_service, tmp_path, speech_path):
    """A socket on a quiet queued job, held for several idle timeouts, stays open (the server
    pings it) and then receives the job's events, to the end."""
    settings = make_settings(tmp_path, request_idle_timeout_s=1.0, ws_ping_s=4.0)
    service = live_service(settings, workers=0)
    with open(speech_path("jfk.flac"), "rb") as fh:
        job_id = requests.post(service.base_url + "/api/v1/jobs", files={"file": ("jfk.flac", fh)},
                               timeout=60).json()["id"]
    ws = websocket.create_connection(f"ws://127.0.0.1:{settings.port}/api/v1/jobs/{job_id}/events", timeout=30)
    try:
        assert json.loads(ws.recv())["type"] == "snapshot"
        held_until, pings = time.monotonic() + 6.0, 0
        while time.monotonic() < held_until:  # six idle timeouts of a quiet job: the server's pings only
            opcode, frame = ws.recv_data_frame(control_frame=True)  # (answered by the client)
            assert opcode == websocket.ABNF.OPCODE_PING, (opcode, frame.data)
            pings += 1
        assert pings >= 2 and ws.connected
        service.start_worker(wait=False)  # the client goes on reading: it answers the pings as it waits
        ws.settimeout(300)
        seen, close = [], None
        while close is None:
            frame = ws.recv_frame()
            if frame.opcode == websocket.ABNF.OPCODE_PING:
                ws.pong(frame.data)
            elif frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                close = (int.from_bytes(frame.data[:2], "big"), frame.data[2:].decode())
            else:
                seen.append(json.loads(frame.data)["type"])
    finally:
        close_ws(ws)
    assert close[0] == 1000 and seen[-1] == "done", (close, seen)


@contextmanager
def _small_disk(path: Path, size_mb: int):
    """A tmpfs of ``size_mb`` at ``path`` (root), else a loop-mounted ext4 image of that size."""
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                             capture_output=True)
    if mounted.returncode != 0:
        image = path.with_suffix(".img")
        subprocess.run(["truncate", "-s", f"{size_mb}M", str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", str(image)], check=True, capture_output=True)
        mounted = subprocess.run(["mount", "-o", "loop", str(image), str(path)], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a small disk here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_scratch_disk_answers_507_and_keeps_serving(live_service, tmp_path):
    with _small_disk(tmp_path / "scratch", 30) as scratch:
        settings = make_settings(tmp_path, scratch_dir=scratch)
        service = live_service(settings, workers=0)
        payload = b"RIFF" + b"\x00" * (60 * 2**20)  # twice what the disk holds
        r = requests.post(service.base_url + "/api/v1/jobs", files={"file": ("big.wav", payload)}, timeout=120)
        assert r.status_code == 507 and r.json()["error"]["code"] == "insufficient_storage", r.text
        assert _spooled(settings) == []
        assert requests.get(service.base_url + "/healthz", timeout=10).status_code == 200
        assert service.web.poll() is None and "Traceback" not in service.log("web")
        service.discard()


def test_a_stopping_server_answers_uploads_in_flight_503_and_removes_their_spool(live_service, tmp_path):
    settings = make_settings(tmp_path)
    service = live_service(settings, workers=0)
    with socket.create_connection(("127.0.0.1", settings.port), timeout=60) as sock:
        sock.sendall(_head("POST", "/api/v1/jobs", 10 * 2**20, "multipart/form-data; boundary=b") + MULTIPART_START)
        deadline = time.monotonic() + 30
        while not _spooled(settings) and time.monotonic() < deadline:
            sock.sendall(b"\x00" * 1024)
            time.sleep(0.1)
        assert _spooled(settings), "the upload was not being received"
        service.web.send_signal(signal.SIGTERM)
        status, headers, body = _answer(sock)
    assert status == 503 and body["error"]["code"] == "shutting_down" and int(headers["retry-after"]) > 0
    assert _spooled(settings) == []  # removed by the process that received it, before it answered
    assert service.web.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn ends by the signal it was sent
    assert "Finished server process" in service.log("web") and "Traceback" not in service.log("web")
