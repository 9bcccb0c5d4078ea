"""Bad input found on the running service: each gets a 4xx in the API's JSON shape, never a 500,
and none of it poisons later responses."""
from __future__ import annotations

import io
import json
import socket
import time

import pytest
import requests
from sqlalchemy import select

from core import jobs
from core.db import session_scope
from core.hotwords import MAX_HOTWORDS_BYTES
from core.models import Job
from tests.support.settings import embedded_only


def _upload(client, path, name=None, **form):
    form["file"] = (io.BytesIO(path.read_bytes()), name or path.name)
    return client.post("/api/v1/jobs", data=form, content_type="multipart/form-data")


def _upload_named(client, path, name: str):
    """A multipart upload whose file name is sent as RFC 2231 ``filename*``, so control characters
    arrive decoded (as some clients send them)."""
    from urllib.parse import quote

    boundary = "----tingxie-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.flac\"; "
            f"filename*=UTF-8''{quote(name, safe='')}\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return client.post("/api/v1/jobs", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.data[:300])
    assert response.content_type.startswith("application/json")
    body = response.json
    assert body["error"]["code"] == code and body["error"]["message"], body
    return body


@pytest.mark.parametrize("query,says", [
    ("page=99999999999999999999", "page"),
    ("page=0", "page"),
    ("page=-3", "page"),
    ("page=abc", "page"),
    ("per_page=-1", "per_page"),
    ("per_page=0", "per_page"),
    ("per_page=100000", "per_page"),
    ("status=finished", "status"),
])
@embedded_only
def test_paging_is_refused_with_a_message_not_clamped(client, query, says):
    body = _error(client.get(f"/api/v1/jobs?{query}"), 400, "bad_option")
    assert says in body["error"]["message"]


def test_the_last_page_and_past_it_answer_normally(client, speech_path):
    _upload(client, speech_path("asr_example.wav"))
    assert client.get("/api/v1/jobs?page=1000000&per_page=100").json["items"] == []
    assert client.get("/api/v1/jobs?page=1&per_page=100").json["total"] == 1


@pytest.mark.parametrize("url", [
    "http://" + "a" * 10_000 + ".example.com/hook",
    "http://[::1/",
    "http://" + "b" * 70 + ".example.com/",
    "javascript:alert(1)",
    "http://[64:ff9b::7f00:1]/",  # NAT64 form of 127.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 form of 127.0.0.1
    "http://[ff0e::1]/",  # multicast
])
@embedded_only
def test_bad_callback_urls_are_refused(client, speech_path, url):
    _error(_upload(client, speech_path("asr_example.wav"), callback_url=url), 400, "bad_callback_url")


@pytest.mark.parametrize("hotwords", ["hello nan", "hello inf", "hello -1", "hello 1e12", '{"hello": "NaN"}'])
@embedded_only
def test_absurd_hotword_weights_are_refused(client, speech_path, hotwords):
    _error(_upload(client, speech_path("asr_example.wav"), hotwords=hotwords), 400, "bad_hotwords")


def test_oversized_hotwords_are_refused_and_never_listed(client, speech_path):
    _error(_upload(client, speech_path("asr_example.wav"), hotwords="x" * 400_000), 400, "bad_hotwords")
    _error(_upload(client, speech_path("asr_example.wav"), hotwords="y" * 200), 400, "bad_hotwords")
    many = "\n".join(f"长词语{i:05d}" for i in range(MAX_HOTWORDS_BYTES // 15))
    _error(_upload(client, speech_path("asr_example.wav"), hotwords=many), 400, "bad_hotwords")
    listing = client.get("/api/v1/jobs")
    assert listing.status_code == 200 and listing.json["total"] == 0


def test_the_job_list_stays_valid_json_after_bad_hotwords(client, speech_path):
    _upload(client, speech_path("asr_example.wav"), hotwords="hello nan")
    ok = _upload(client, speech_path("asr_example.wav"), hotwords="hello 20")
    assert ok.status_code == 202
    text = client.get("/api/v1/jobs").data.decode()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the job list"))["total"] == 1


@pytest.mark.parametrize("raw,shown", [
    ("a\r\nSet-Cookie: x=1.flac", "a Set-Cookie: x=1.flac"),
    ("nul\x00byte.flac", "nulbyte.flac"),
    ("bell\x07\x1b[31m.flac", "bell[31m.flac"),
    ("..\\..\\windows\\会议.flac", "会议.flac"),
    ("\u202etxt.flac", "txt.flac"),
])
def test_control_characters_in_file_names_are_cleaned(client, app, speech_path, raw, shown):
    r = _upload_named(client, speech_path("jfk.flac"), raw)
    assert r.status_code == 202, r.json
    job = client.get(r.json["links"]["self"]).json
    assert job["filename"] == shown
    media = client.get(job["links"]["media"])
    assert media.status_code == 200 and media.data == speech_path("jfk.flac").read_bytes()
    disposition = media.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "filename*=UTF-8''" in disposition
    data = {"text": "x", "language": "en", "duration_ms": 1000, "segments": []}
    with session_scope(app.extensions["tingxie"].db) as s:
        jobs.complete(s, job["id"], jobs.claim(s, job["id"]), data)
    download = client.get(job["links"]["transcript"] + "?format=txt&download=1")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith('attachment; filename="')


@embedded_only
def test_every_option_error_is_json_with_its_code(client, speech_path):
    jfk = speech_path("jfk.flac")
    _error(_upload(client, jfk, language="xx"), 400, "unsupported_language")
    _error(_upload(client, jfk, itn="maybe"), 400, "bad_option")
    _error(_upload(client, jfk, profile="nope"), 400, "unknown_profile")
    _error(_upload(client, jfk, source="gateway"), 400, "bad_option")
    _error(_upload(client, jfk, hotword="typo"), 400, "bad_option")  # unknown field
    _error(client.post("/api/v1/jobs", data={}), 400, "no_file")
    _error(client.get("/api/v1/jobs/nope"), 404, "not_found")
    _error(client.get("/api/v1/jobs/nope/transcript?format=doc"), 400, "bad_format")
    with session_scope(client.application.extensions["tingxie"].db) as s:
        assert s.execute(select(Job)).first() is None


@embedded_only
def test_routing_errors_are_json(client):
    _error(client.get("/no/such/page"), 404, "not_found")
    _error(client.put("/api/v1/jobs"), 405, "method_not_allowed")
    client.application.config["MAX_CONTENT_LENGTH"] = 10
    _error(client.post("/api/v1/jobs", data={"file": (io.BytesIO(b"x" * 100), "a.wav")}), 413, "too_large")


def _raw(port: int, request: bytes) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert b"application/json" in head, head
    return status, json.loads(body)


@pytest.mark.slow
@pytest.mark.parametrize("server", ["dev", "production"])
def test_the_http_parser_refusals_are_json(live_service, tmp_path, server):
    """414 and 431 come before the application (the server's limits): still the API's shape, in one
    process (`tingxie web --dev`, what `tingxie up` runs) and in the production server's workers."""
    from tests.support.settings import make_settings

    settings = make_settings(tmp_path)
    service = live_service(settings, workers=0)
    if server == "production":
        service.stop()
        service.web = service._spawn("production", "web", "--workers", "2", "--threads", "2")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(service.base_url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
    port = settings.port
    status, body = _raw(port, b"GET /api/v1/jobs?" + b"x" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 414 and body["error"]["code"] == "uri_too_long"
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"y" * 100) for i in range(150))
    status, body = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert status == 431 and body["error"]["code"] == "headers_too_large"
    # A head too large to buffer at all, and a request that is not HTTP: the parser's own refusals.
    status, body = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"z" * 200_000 + b"\r\n\r\n")
    assert status == 431 and body["error"]["code"] == "headers_too_large"
    status, body = _raw(port, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400 and body["error"]["code"] == "bad_request"
    # And the server goes on answering.
    assert requests.get(service.base_url + "/healthz", timeout=5).json() == {"status": "ok"}


@embedded_only
def test_subtitle_limits_are_query_parameters_checked_with_a_message(client, app, speech_path):
    r = _upload(client, speech_path("jfk.flac"))
    job_id = r.json["id"]
    words = [{"start_ms": 300 + 400 * i, "end_ms": 600 + 400 * i, "text": w}
             for i, w in enumerate("and so my fellow americans ask not what your country can do for you".split())]
    data = {"text": " ".join(w["text"] for w in words), "language": "en", "duration_ms": 11000,
            "segments": [{"start_ms": 300, "end_ms": words[-1]["end_ms"], "text": " ".join(w["text"] for w in words),
                          "words": words}]}
    with session_scope(app.extensions["tingxie"].db) as s:
        jobs.complete(s, job_id, jobs.claim(s, job_id), data)
    url = f"/api/v1/jobs/{job_id}/transcript?format=srt"
    narrow = client.get(url + "&max_line_chars=12&max_lines=1&max_cue_s=3").data.decode()
    lines = [line for block in narrow.strip().split("\n\n") for line in block.split("\n")[2:]]
    assert len(lines) > 3 and all(len(line) <= 12 for line in lines)
    assert " ".join(lines).split() == data["text"].split()
    body = _error(client.get(url + "&max_lines=9"), 400, "bad_option")
    assert "max_lines" in body["error"]["message"]
    _error(client.get(url + "&max_cue_s=abc"), 400, "bad_option")


@pytest.mark.parametrize("path", [
    "/api/v1/jobs/" + "0" * 32 + "%00",
    "/api/v1/jobs/%00/transcript",
    "/api/v1/jobs/%00/media",
    "/api/v1/jobs?tenant=a%00b",
    "/api/v1/jobs?status=done%00",
    "/v1/models/whisper-1%00",
])
@embedded_only
def test_nul_bytes_in_a_url_are_refused(client, path):
    """PostgreSQL cannot hold a NUL in a text value: a NUL reached the database and failed there (500)."""
    response = client.get(path)
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    assert response.json["error"]["code"] in ("bad_request", "not_found", "bad_option")


@embedded_only
def test_a_nul_byte_in_a_callback_url_is_refused(client, speech_path):
    _error(_upload(client, speech_path("asr_example.wav"), callback_url="http://example.com/a\x00b"), 400,
           "bad_callback_url")


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@embedded_only
def test_deeply_nested_json_is_refused(client):
    """5,000 levels of nesting used to exhaust the parser's recursion: 500."""
    response = client.put("/api/v1/jobs/" + "0" * 32 + "/speakers", data=_nested(5000),
                          content_type="application/json")
    _error(response, 400, "bad_request")
    body = '{"names": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}"
    _error(client.put("/api/v1/jobs/" + "0" * 32 + "/speakers", data=body, content_type="application/json"),
           400, "bad_request")
    # The public sign-in route: before any token is checked.
    _error(client.post("/api/v1/session", data='{"token": ' + _nested(1000) + "}", content_type="application/json"),
           400, "bad_request")
    response = client.post("/api/v1/session", data=_nested(100_000), content_type="application/json")
    assert response.status_code in (400, 413), response.data[:300]  # 413 where the public body cap is below it
