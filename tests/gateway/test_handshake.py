"""The gateway's opening handshake and frames against hostile input, on a real gateway (real
database, no worker): a DNS-rebound page is not this machine's page, a malformed handshake is 400,
and a seeded fuzz of handshakes and frames never gets a 500, a traceback, or a server that stops."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import socket

import pytest
import websockets

from gateway import GatewayConfig
from tests.support.gateway import run_in_thread

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


@pytest.fixture
def handshake_gateway(settings, migrated):
    migrated.migrate(settings)
    config = GatewayConfig.from_settings(dataclasses.replace(settings, max_duration_s=3.0), port=0, certfile="0",
                                         idle_timeout_s=1.0, max_frame_bytes=64 * 1024)
    thread = run_in_thread(settings, config)
    yield thread
    thread.stop()


def handshake(port: int, lines: list[bytes], request_line: bytes = b"GET / HTTP/1.1") -> tuple[int | None, bytes]:
    """Send a raw handshake; (the status answered, the whole answer); None when the server closed
    without an answer (websockets does that for a request it cannot parse at all)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_line + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n")
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or (b" 101 " not in answer.split(b"\r\n", 1)[0]
                                                and len(answer) < 65536 and _body_short(answer)):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    if not answer.startswith(b"HTTP/1.1 "):
        return None, answer
    return int(answer[9:12]), answer


def _body_short(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) < int(line.split(b":", 1)[1])
    return False


def good_lines(port: int, host: str | None = None) -> list[bytes]:
    return [f"Host: {host or f'127.0.0.1:{port}'}".encode(), b"Upgrade: websocket", b"Connection: Upgrade",
            f"Sec-WebSocket-Key: {KEY}".encode(), b"Sec-WebSocket-Version: 13"]


def test_a_dns_rebound_page_is_not_this_machines_page(handshake_gateway, settings):
    """A page at evil.example whose name now points at 127.0.0.1 sends ``Host: evil.example`` and
    ``Origin: http://evil.example:<web port>``: refused (403) before the socket opens. The same page
    on a loopback name is tingxie's own."""
    port = handshake_gateway.gateway.port
    status, answer = handshake(port, good_lines(port, f"evil.example:{port}")
                               + [f"Origin: http://evil.example:{settings.port}".encode()])
    assert status == 403 and b"origin_not_allowed" in answer, answer
    for host in ("127.0.0.1", "localhost"):
        status, answer = handshake(port, good_lines(port, f"{host}:{port}")
                                   + [f"Origin: http://{host}:{settings.port}".encode()])
        assert status == 101, answer


def _as_file_page(url: str) -> tuple[list[dict], int | None]:
    """FunASR's html5 page opened from disk: ``Origin: null``; an empty file, then wait for the close."""
    async def go():
        frames = []
        async with websockets.connect(url, origin="null", ping_interval=None) as ws:
            try:  # a refused page's sends may meet the close; what was sent to it is still read
                await ws.send(json.dumps({"mode": "offline", "wav_name": "page", "is_speaking": True}))
                await ws.send(json.dumps({"is_speaking": False}))
            except websockets.ConnectionClosed:
                pass
            try:
                while True:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            except websockets.ConnectionClosed as exc:
                return frames, exc.rcvd.code if exc.rcvd else None
    return asyncio.run(go())


def test_a_page_from_disk_is_told_why_it_is_refused(handshake_gateway):
    """A refused handshake's answer is invisible to a page (it sees only a failed socket): the
    socket is accepted, one frame says why (in ``text``, which the html5 page shows), then 1008."""
    frames, code = _as_file_page(handshake_gateway.url)
    assert code == 1008 and len(frames) == 1, frames
    assert frames[0]["error_code"] == "origin_not_allowed" and frames[0]["is_final"] is False
    assert "TINGXIE_GATEWAY_ALLOW_FILE_PAGES" in frames[0]["text"] == frames[0]["error"]


def test_a_page_from_disk_is_served_where_the_deployment_allows_it(settings, migrated):
    migrated.migrate(settings)
    allowed = dataclasses.replace(settings, gateway_allow_file_pages=True)
    thread = run_in_thread(allowed, GatewayConfig.from_settings(allowed, port=0, certfile="0", idle_timeout_s=1.0))
    try:
        frames, code = _as_file_page(thread.url)
    finally:
        thread.stop()
    assert [f["error_code"] for f in frames] == ["empty_audio"] and code == 1000  # served: its file answered


@pytest.mark.parametrize("extra", [
    [b"Host: evil.example"], [b"Origin: http://127.0.0.1:8000", b"Origin: http://127.0.0.1:8000"],
    [b"Authorization: Bearer a", b"Authorization: Bearer b"], [b"Sec-WebSocket-Version: 13"],
])
def test_a_handshake_with_a_header_twice_is_400(handshake_gateway, extra):
    port = handshake_gateway.gateway.port
    status, answer = handshake(port, good_lines(port) + extra)
    assert status == 400 and b"bad_request" in answer and b"Traceback" not in answer, answer


def test_a_handshake_without_host_is_400(handshake_gateway):
    port = handshake_gateway.gateway.port
    status, answer = handshake(port, good_lines(port)[1:])
    assert status == 400 and b"Host" in answer, answer


# --- Fuzz ------------------------------------------------------------------------------------------

_HEADER_NAMES = [b"Host", b"Upgrade", b"Connection", b"Sec-WebSocket-Key", b"Sec-WebSocket-Version", b"Origin",
                 b"Authorization", b"Sec-WebSocket-Protocol", b"Sec-WebSocket-Extensions", b"Cookie", b"X-Junk"]
_VALUES = [b"", b" ", b"websocket", b"Upgrade", b"13", b"8", b"999999999999", KEY.encode(), b"AAAA", b"null",
           b"Bearer ", b"Bearer tx_0123456789ab_" + b"x" * 43, b"Basic Zm9vOmJhcg==", b"http://evil.example",
           b"\xff\xfe\x00", b"\x7f\x01", b"a" * 9000, "漢字".encode(), b"[::1]:1", b"127.0.0.1:0", b"evil.example",
           b"permessage-deflate; client_max_window_bits=99", b"binary, binary", b";;;,,,", b"\t"]
_REQUEST_LINES = [b"GET / HTTP/1.1", b"GET /?token= HTTP/1.1", b"GET /?token=%00%ff&token=x HTTP/1.1",
                  b"GET /" + b"a" * 5000 + b" HTTP/1.1", b"POST / HTTP/1.1", b"GET / HTTP/1.0", b"GET  HTTP/1.1",
                  b"BREW / HTCPCP/1.0", b"GET http://evil.example/ HTTP/1.1", b"\x00\x01\x02"]


def _mutated_handshake(rng: random.Random, port: int) -> tuple[bytes, list[bytes]]:
    lines = good_lines(port)
    for _ in range(rng.randint(1, 4)):
        action = rng.random()
        if action < 0.3 and lines:
            lines.pop(rng.randrange(len(lines)))
        elif action < 0.6:
            lines.append(rng.choice(_HEADER_NAMES) + b": " + rng.choice(_VALUES))
        elif action < 0.8 and lines:
            i = rng.randrange(len(lines))
            lines[i] = lines[i].split(b":", 1)[0] + b": " + rng.choice(_VALUES)
        else:
            lines.append(bytes(rng.randrange(32, 127) for _ in range(rng.randint(0, 40))))
    request_line = rng.choice(_REQUEST_LINES) if rng.random() < 0.25 else b"GET / HTTP/1.1"
    return request_line, lines


def _random_frames(rng: random.Random) -> list:
    config = {"mode": "offline", "wav_name": "fuzz", "wav_format": "pcm", "audio_fs": 16000, "is_speaking": True}
    frames: list = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        if kind < 0.35:
            mutated = dict(config)
            for _ in range(rng.randint(0, 3)):
                key = rng.choice(list(config) + ["hotwords", "itn", "chunk_size", "is_end", "svs_lang", "\x00"])
                mutated[key] = rng.choice([None, -1, 0, 1e308, "", "x" * 300, [], {}, True, "\ud800".encode(
                    "utf-8", "surrogatepass").decode("utf-8", "replace"), {"a": [1, {"b": 2}]}, "offline", "2pass"])
            frames.append(json.dumps(mutated))
        elif kind < 0.55:
            frames.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 4000))))
        elif kind < 0.7:
            frames.append(rng.choice(["", "{", "[]", "null", "1", '{"is_speaking": false}', '{"is_end": true}',
                                      "\x00", "{" * 2000, '"' + "\\u0000" * 50 + '"']))
        else:
            frames.append(json.dumps({"is_speaking": False, "is_end": rng.choice([True, False, None, "yes"])}))
    return frames


async def _fuzz_frames(url: str, frames: list) -> int | None:
    async with websockets.connect(url, subprotocols=["binary"], ping_interval=None, max_size=2**20,
                                  close_timeout=1) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            while True:
                message = await asyncio.wait_for(ws.recv(), 2)
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                assert "Traceback" not in text and "/work/" not in text and "site-packages" not in text, text
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        except TimeoutError:  # a file became a job, and no worker runs here: its answer would wait
            return None


def test_fuzzed_handshakes_and_frames_never_get_a_500_and_the_gateway_stays_up(handshake_gateway, caplog):
    """Seeded, so a failure repeats: 300 mutated handshakes (headers missing, doubled, garbage,
    odd request lines) and 40 connections sending random frames. Every answer is an HTTP status
    below 500 (or a close for a request that cannot be parsed), no traceback reaches a client or
    the log, and a well-formed client is served at the end."""
    rng = random.Random(20)
    port = handshake_gateway.gateway.port
    caplog.set_level(logging.INFO)
    statuses = set()
    for _ in range(300):
        request_line, lines = _mutated_handshake(rng, port)
        status, answer = handshake(port, lines, request_line)
        statuses.add(status)
        assert status is None or status < 500 or status == 505, (request_line, lines, answer[:300])  # 505: HTTP/1.0
        assert b"Traceback" not in answer and b"site-packages" not in answer and b"websockets/" not in answer
    assert {101, 400} <= statuses, statuses
    codes = set()
    for _ in range(40):
        codes.add(asyncio.run(_fuzz_frames(handshake_gateway.url, _random_frames(rng))))
    assert codes <= {None, 1000, 1002, 1007, 1008, 1009}, codes
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not failures, [(r.getMessage(), r.exc_info) for r in failures[:5]]
    status, _ = handshake(port, good_lines(port))
    assert status == 101
    assert handshake_gateway.stats()["connections"] <= 1
