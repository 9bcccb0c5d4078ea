"""A worker fetching a job's link (core.fetch) from a real HTTP server on this host: what it may
connect to (every address form of an internal address, every hop of a redirect chain, the
connected socket's peer), the caps as bytes arrive (size; duration, from hours of audio the server
makes up as it streams them), and sources that fail or stall."""
from __future__ import annotations

import http.server
import socket
import threading
from urllib.parse import quote, unquote

import pytest

import media
from core.fetch import (CHUNK_BYTES, FIRST_PROBE_BYTES, PROBE_GROWTH, FetchFailedError, FetchRefusedError,
                        check_peer, fetch)
from core.errors import TingxieError
from tests.support.media_files import MadeUpMedia, long_mp3, long_wav
from tests.support.settings import make_settings

pytestmark = pytest.mark.network

BODY = b"RIFF" + bytes(range(256)) * 64


class Source(http.server.ThreadingHTTPServer):
    """Routes: /file (200 with BODY), /chunked (BODY without a length), /missing (404),
    /redirect?to=URL (302), /loop (302 to itself), /stall-body and /stall-head (stop sending
    until the test ends), and each path in ``media`` (its bytes as they are made, with their
    length; ``?chunked``: without). ``requests`` records every path asked for, ``served`` the bytes
    of ``media`` each path handed to its socket."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[str] = []
        self.release = threading.Event()
        self.media: dict[str, MadeUpMedia | bytes] = {}
        self.served: dict[str, int] = {}
        self.streams_ended = threading.Semaphore(0)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server: Source = self.server
        server.requests.append(self.path)
        path, _, query = self.path.partition("?")
        if path == "/file":
            self._send(200, BODY, length=True)
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(16):
                self.wfile.write(BODY)
        elif path == "/missing":
            self._send(404, b"no", length=True)
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", unquote(query.removeprefix("to=")))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/loop":
            self.send_response(301)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path in server.media:
            self._stream(path, server.media[path], length=query != "chunked")
        elif path == "/stall-head":
            server.release.wait(30)
        elif path == "/stall-body":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY) * 2))
            self.end_headers()
            self.wfile.write(BODY)
            self.wfile.flush()
            server.release.wait(30)

    def _stream(self, path: str, made: "MadeUpMedia | bytes", *, length: bool) -> None:
        """In pieces, each counted once the socket took it; until the fetch hangs up."""
        pieces = made.pieces() if isinstance(made, MadeUpMedia) else [made]
        self.send_response(200)
        self.send_header("Content-Length" if length else "Connection",
                         str(made.size if isinstance(made, MadeUpMedia) else len(made)) if length else "close")
        self.end_headers()
        self.server.served[path] = 0
        try:
            for piece in pieces:
                self.wfile.write(piece)
                self.server.served[path] += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.server.streams_ended.release()

    def _send(self, status: int, body: bytes, *, length: bool) -> None:
        self.send_response(status)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def source():
    server = Source()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def allowed(tmp_path):
    """Settings that let a worker fetch from 127.0.0.1 (and only that address), timing out quickly."""
    return make_settings(tmp_path, fetch_allow=("127.0.0.1/32",), fetch_timeout_s=1.0)


def test_a_link_is_fetched_through_a_redirect_chain(source, allowed, tmp_path):
    hop2 = f"{source.base}/redirect?to=/file"
    target = fetch(allowed, f"{source.base}/redirect?to={quote(hop2, safe='')}", tmp_path / "got")
    assert target.read_bytes() == BODY
    assert source.requests == [f"/redirect?to={quote(hop2, safe='')}", "/redirect?to=/file", "/file"]


def test_without_the_allow_list_this_host_is_refused_before_connecting(source, tmp_path):
    settings = make_settings(tmp_path)
    for url in (f"{source.base}/file", f"http://localhost:{source.server_address[1]}/file"):
        with pytest.raises(FetchRefusedError, match="loopback address; a link may lead only to public addresses"):
            fetch(settings, url, tmp_path / "got")
    assert source.requests == []  # not one connection reached the server


@pytest.mark.parametrize("host,why", [
    ("127.0.0.1", "127.0.0.1 a loopback"),
    ("127.1", "127.1 is 127.0.0.1, a loopback"),  # short form
    ("2130706433", "2130706433 is 127.0.0.1, a loopback"),  # decimal
    ("0x7f.0.0.1", "0x7f.0.0.1 is 127.0.0.1, a loopback"),  # hexadecimal
    ("0.0.0.0", "unspecified"),
    ("[::1]", "loopback"),
    ("[::ffff:127.0.0.1]", "that is 127.0.0.1"),  # IPv4-mapped
    ("[::127.0.0.1]", "that is 127.0.0.1"),  # IPv4-compatible
    ("[64:ff9b::a9fe:a9fe]", "that is 169.254.169.254"),  # NAT64 of the metadata address
    ("[64:ff9b:1::a9fe:a9fe]", "reserved"),  # local-use NAT64
    ("[2002:7f00:1::]", "that is 127.0.0.1"),  # 6to4
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("[fd00:ec2::254]", "private"),  # AWS's IPv6 metadata address
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("100.64.0.1", "non-public"),  # carrier-grade NAT
    ("[fe80::1]", "link-local"),
    ("224.0.0.1", "multicast"),
])
def test_every_form_of_an_internal_address_is_refused(host, why, tmp_path):
    with pytest.raises(FetchRefusedError, match=why):
        fetch(make_settings(tmp_path), f"http://{host}/a.wav", tmp_path / "got")


@pytest.mark.parametrize("to,why", [
    ("http://127.0.0.2:{port}/file", "127.0.0.2 a loopback"),  # this host, by an address not allowed
    ("http://[::1]:{port}/file", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::ffff:a9fe:a9fe]/latest/meta-data/", "that is 169.254.169.254"),
    ("file:///etc/passwd", "only to http:// or https://"),
    ("gopher://127.0.0.1:{port}/", "only to http:// or https://"),
])
def test_a_redirect_into_a_refused_address_is_refused(source, allowed, tmp_path, to, why):
    """The first hop is allowed (127.0.0.1); where it redirects to is checked as a link of its
    own, also two hops down the chain."""
    inner = to.format(port=source.server_address[1])
    chain = f"{source.base}/redirect?to=" + quote(f"{source.base}/redirect?to={quote(inner, safe='')}", safe="")
    with pytest.raises(FetchRefusedError, match=why) as refused:
        fetch(allowed, chain, tmp_path / "got")
    assert refused.value.code == "fetch_refused"
    assert "redirect" in refused.value.message
    assert not (tmp_path / "got").exists()


def test_a_redirect_loop_ends(source, allowed, tmp_path):
    with pytest.raises(FetchFailedError, match="redirects more than 5 times"):
        fetch(allowed, f"{source.base}/loop", tmp_path / "got")
    assert len(source.requests) == 6


def test_a_missing_source_names_the_http_status(source, allowed, tmp_path):
    with pytest.raises(FetchFailedError, match="answered HTTP 404") as failed:
        fetch(allowed, f"{source.base}/missing", tmp_path / "got")
    assert failed.value.code == "fetch_failed" and failed.value.status == 502


@pytest.mark.parametrize("path,what", [("/stall-head", "did not answer within 1 s"),
                                       ("/stall-body", f"sent nothing for 1 s after {len(BODY)} bytes")])
def test_a_source_that_stalls_fails_after_the_timeout(source, allowed, tmp_path, path, what):
    with pytest.raises(FetchFailedError, match=what):
        fetch(allowed, source.base + path, tmp_path / "got")
    assert not (tmp_path / "got").exists()


@pytest.mark.parametrize("path", ["/file", "/chunked"])
def test_the_size_cap_holds_as_bytes_arrive(source, tmp_path, path):
    """With a length the source is refused before its body is read; without one, once the bytes
    received pass the cap."""
    settings = make_settings(tmp_path, fetch_allow=("127.0.0.1",), max_upload_bytes=len(BODY) - 1)
    seen: list[int] = []
    with pytest.raises(TingxieError, match="TINGXIE_MAX_UPLOAD_MB") as refused:
        fetch(settings, source.base + path, tmp_path / "got", lambda received, total: seen.append(received))
    assert refused.value.code == "too_large"
    assert all(n <= len(BODY) - 1 for n in seen)
    assert not (tmp_path / "got").exists()


HOURS_4 = 4 * 3600


@pytest.mark.parametrize("path,made,stops_by", [
    # The WAV header's data size, which the length the source declared holds: the first probe.
    ("/long.wav", long_wav(HOURS_4), FIRST_PROBE_BYTES),
    # The same without a length: what is there so far, 131 s at 4 MiB, the second probe.
    ("/long.wav?chunked", long_wav(HOURS_4), FIRST_PROBE_BYTES * PROBE_GROWTH),
    # An MP3's Xing tag: the first probe.
    ("/xing.mp3", long_mp3(HOURS_4, xing=True), FIRST_PROBE_BYTES),
    # A plain constant-rate MP3: the bit rate times what is there, 105 s at 4 MiB.
    ("/plain.mp3", long_mp3(HOURS_4, xing=False), FIRST_PROBE_BYTES * PROBE_GROWTH),
])
def test_the_duration_cap_stops_a_long_file_as_it_arrives(source, tmp_path, path, made, stops_by):
    """Four hours of audio under a one-minute cap: the part fetched so far is probed at 1 MiB and
    at 4 MiB, and the download stops there: ``too_long``, as for an over-long upload, naming the
    setting. The server hands its socket a few MiB more (what the kernels' socket buffers take
    while the probe runs: 5 to 12 MiB here) of the 440 to 550 MiB the file is."""
    settings = make_settings(tmp_path, fetch_allow=("127.0.0.1",), max_duration_s=60.0)
    source.media[path.partition("?")[0]] = made
    seen: list[int] = []
    with pytest.raises(TingxieError) as refused:
        fetch(settings, source.base + path, tmp_path / "got", lambda received, total: seen.append(received))
    assert refused.value.code == "too_long" and refused.value.status == 413
    assert refused.value.message.startswith(f"{source.base}{path.partition('?')[0]}: The file ")
    assert "longer than the 1m00s this service accepts" in refused.value.message
    assert refused.value.message.endswith("(TINGXIE_MAX_DURATION_S)")
    # The last progress reported is the chunk before the mark whose probe stopped it.
    assert stops_by - CHUNK_BYTES <= max(seen) < stops_by + PROBE_GROWTH * CHUNK_BYTES
    assert not (tmp_path / "got").exists()
    assert source.streams_ended.acquire(timeout=60)  # the server saw the fetch hang up
    served = source.served[path.partition("?")[0]]
    assert served < made.size // 8, (served, made.size)


def test_a_file_under_the_duration_cap_arrives_whole(source, tmp_path):
    """50 s of WAV (1.6 MB) under a one-minute cap: probed at 1 MiB, fetched to the end, every byte."""
    settings = make_settings(tmp_path, fetch_allow=("127.0.0.1",), max_duration_s=60.0)
    made = long_wav(50)
    source.media["/short.wav"] = made
    assert made.size > FIRST_PROBE_BYTES
    for query in ("", "?chunked"):
        target = fetch(settings, f"{source.base}/short.wav{query}", tmp_path / "got")
        assert target.read_bytes() == b"".join(made.pieces())
        assert media.probe(target, max_duration_ms=60_000).duration_ms == 50_000


def test_a_file_that_declares_nothing_up_front_is_judged_whole(source, tmp_path, make_media):
    """An MP4 whose index comes last (200 s, 1.6 MB) does not open from its first part: the fetch
    goes on to the end, and the probe of the whole file (the worker's next step) refuses it, as
    before the cap held while bytes arrive."""
    m4a = make_media("late-index.m4a", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=200",
                     "-c:a", "aac", "-b:a", "64k")
    assert m4a.read_bytes().rfind(b"moov") > FIRST_PROBE_BYTES
    source.media["/late-index.m4a"] = m4a.read_bytes()
    settings = make_settings(tmp_path, fetch_allow=("127.0.0.1",), max_duration_s=60.0)
    target = fetch(settings, f"{source.base}/late-index.m4a", tmp_path / "got")
    assert target.read_bytes() == m4a.read_bytes()
    with pytest.raises(media.MediaTooLongError):
        media.probe(target, max_duration_ms=60_000)


def test_the_peer_of_the_connected_socket_is_checked(source):
    """Rebinding: the allow list admits the name that was vetted (at a public address), and the
    socket ends up at this host's loopback: the peer check refuses it."""
    with socket.create_connection(("127.0.0.1", source.server_address[1])) as sock:
        with pytest.raises(FetchRefusedError, match="reached 127.0.0.1, not an address that was checked"):
            check_peer(sock, "media.example.com", ["93.184.216.34"], ("media.example.com",))
        with pytest.raises(FetchRefusedError, match="loopback"):
            check_peer(sock, "media.example.com", ["127.0.0.1"], ())  # vetted, but not allowed by itself
        check_peer(sock, "media.example.com", ["127.0.0.1"], ("127.0.0.1/32",))


def test_a_name_resolving_elsewhere_on_connect_is_not_followed(source, tmp_path, monkeypatch):
    """DNS rebinding: the name resolves to a public address when it is checked and to loopback
    after. The connection goes to the address that was checked, never to a second answer: the
    server on loopback is never reached."""
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.0.171", 80))]]
                   + [[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", source.server_address[1]))]] * 5)
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda host, *a, **k: next(answers) if host == "rebind.example" else real(host, *a, **k))
    settings = make_settings(tmp_path, fetch_timeout_s=1.0, fetch_allow=("192.0.0.171",))
    with pytest.raises(FetchFailedError, match=r"could not connect to rebind.example \(192.0.0.171\)|did not answer"):
        fetch(settings, f"http://rebind.example:{source.server_address[1]}/file", tmp_path / "got")
    assert source.requests == []
