"""cli.client from Python and at the edges: uploads streamed from disk, the events socket refused
or cut on the way (a proxy in between), the token header."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli.client import ApiError, Client, JobUpdate
from media import find_ffmpeg
from tests.support.client import client_cli, client_env
from tests.support.forward import pump
from tests.support.settings import REPO

STAGES = ("decode", "vad", "asr", "punc", "itn")


@pytest.mark.slow
def test_a_large_upload_is_streamed_from_disk(live_service, speech_path, tmp_path):
    """The client's peak memory does not grow with the file: 275 MB sent, not held."""
    service = live_service(workers=0)  # the jobs stay queued; only the upload matters here
    big = tmp_path / "silence.wav"
    subprocess.run([find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "1430",
                    "-c:a", "pcm_s16le", str(big)], check=True)
    assert big.stat().st_size > 270_000_000
    measure = ("import resource, sys, cli; code = cli.main(sys.argv[1:]); "
               "print('peak_rss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
               "sys.exit(code)")

    def submit(path) -> tuple[int, list[dict]]:
        done = subprocess.run([sys.executable, "-c", measure, "submit", str(path), "--progress", "json"],
                              capture_output=True, text=True, env=client_env(service.base_url), cwd=REPO, timeout=300)
        assert done.returncode == 0, done.stderr
        peak = int(done.stderr.rsplit("peak_rss_kib ", 1)[1])
        return peak, [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]

    small_peak, _ = submit(speech_path("jfk.flac"))
    big_peak, events = submit(big)
    assert big_peak - small_peak < 48 * 1024, (small_peak, big_peak)  # KiB; a body in memory would add 275 MB
    sent = [e["sent_bytes"] for e in events if e["event"] == "upload"]
    assert len(sent) >= 100 and sent == sorted(sent) and sent[-1] > big.stat().st_size  # a line per percent


class _Proxy:
    """A TCP proxy in front of the server, as a load balancer would be: HTTP goes through; the
    events WebSocket is refused (``refuse``) or cut after the server's first message (``cut``)."""

    def __init__(self, upstream_port: int, mode: str):
        self.upstream_port, self.mode = upstream_port, mode
        self.sockets_dropped = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                client.close()
                return
            head += chunk
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        if b"upgrade: websocket" not in head.lower():
            upstream.sendall(head)
            back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            back.start()
            pump(client, upstream)
            back.join()  # the server closes once the client has
            upstream.close()
            client.close()
            return
        self.sockets_dropped += 1
        if self.mode == "refuse":
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            upstream.sendall(head)
            answer = b""
            while b"\r\n\r\n" not in answer or answer.endswith(b"\r\n\r\n"):  # the 101, then a first frame
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                answer += chunk
            client.sendall(answer)
        upstream.close()
        client.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["refuse", "cut"])
def test_without_the_events_socket_the_job_is_polled_to_its_end(shared_service, speech_path, mode):
    proxy = _Proxy(shared_service.settings.port, mode)
    try:
        with Client(proxy.url, poll_interval_s=0.2) as client:
            sent: list[tuple[int, int]] = []
            job = client.submit(speech_path("jfk.flac"), language="en", on_upload=lambda *p: sent.append(p))
            updates: list[JobUpdate] = []
            final = client.wait(job["id"], on_update=updates.append)
            text = client.transcript(job["id"], "txt")
    finally:
        proxy.close()
    assert proxy.sockets_dropped == 1
    assert sent[-1][0] == sent[-1][1] and len(sent) > 1
    assert not updates[0].finished  # the socket went before the job ended: polling saw it end
    assert updates[-1] == JobUpdate(job["id"], "done", None, 1.0, None)
    assert final["status"] == "done" and "ask not what your country can do for you" in text.lower()
    fractions = [u.progress for u in updates]
    assert fractions == sorted(fractions)
    stages = [u.stage for u in updates if u.status == "running"]
    assert stages == sorted(stages, key=STAGES.index)


@pytest.mark.slow
def test_from_python_the_stages_go_by_in_order(shared_service, speech_path):
    with Client(shared_service.base_url) as client:
        job = client.submit(speech_path("asr_example.wav"), hotwords="达摩院 20", itn=False)
        updates: list[JobUpdate] = []
        final = client.wait(job["id"], on_update=updates.append)
        assert final["options"]["itn"] is False and final["warnings"] == []
        assert "达摩院" in client.transcript(job["id"], "txt")
        with pytest.raises(ApiError) as refused:
            list(client.events("0" * 32))
    assert refused.value.code == "not_found"
    assert updates[0].status in ("queued", "running") and updates[-1].status == "done"
    stages = [u.stage for u in updates if u.status == "running"]
    assert "asr" in stages and stages == sorted(stages, key=STAGES.index)
    assert [u.progress for u in updates] == sorted(u.progress for u in updates)


class _Recorder(BaseHTTPRequestHandler):
    """Answers every GET with an empty job list and keeps the Authorization header it got."""

    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        type(self).seen.append(self.headers.get("Authorization"))
        body = json.dumps({"items": [], "page": 1, "per_page": 20, "total": 0, "links": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_token_goes_as_a_bearer_header():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        by_flag = client_cli("jobs", "list", "--token", "tx_flag", server=url, timeout_s=60)
        by_env = client_cli("jobs", "list", server=url, env={"TINGXIE_TOKEN": "tx_env"}, timeout_s=60)
        none = client_cli("jobs", "list", server=url, timeout_s=60)
    finally:
        server.shutdown()
        server.server_close()
    assert by_flag.returncode == by_env.returncode == none.returncode == 0, by_flag.stderr
    assert by_flag.stdout == "ID  STATE  LENGTH  CREATED  FILE\npage 1 of 1, 0 jobs\n"
    assert _Recorder.seen == ["Bearer tx_flag", "Bearer tx_env", None]


def test_an_answer_that_is_not_tingxie_is_a_server_error(tmp_path):
    """Something else on the port (here a static file server) is exit 3, named as such."""
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = int(server.stdout.readline().split(" port ")[1].split()[0])
        (tmp_path / "api").mkdir()
        (tmp_path / "api" / "v1").mkdir()
        (tmp_path / "api" / "v1" / "jobs").write_text("<html>not an API</html>")
        done = client_cli("jobs", "list", server=f"http://127.0.0.1:{port}", timeout_s=60)
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()
    assert done.returncode == 3
    assert "is it a tingxie server?" in done.stderr


def test_speaker_options_reach_the_job(shared_service, speech_path):
    client = Client(shared_service.base_url)
    job = client.submit(speech_path("asr_example.wav"), num_speakers=2)
    options = client.get(job["id"])["options"]
    assert options["diarize"] is True and options["num_speakers"] == 2
    client.cancel(job["id"])
