"""Jobs by link and delivery, end to end: real web and worker processes, a real HTTP server on
this host serving real speech (and five hours of made-up WAV), the real S3 server (moto's) holding
a key and receiving the transcripts; through REST, the OpenAI door and ``tingxie submit --url``."""
from __future__ import annotations

import http.server
import re
import threading
from functools import partial
from urllib.parse import quote

import pytest
import requests

from tests.support.media_files import long_wav
from tests.support.settings import make_settings
from tests.support.client import client_cli as tingxie

JFK = "ask not what your country can do for you"

pytestmark = pytest.mark.slow


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


# Longer than the default cap (TINGXIE_MAX_DURATION_S, 4 h): 576 MB, made as it is served.
FIVE_HOURS = long_wav(5 * 3600)


class _Files(http.server.SimpleHTTPRequestHandler):
    """The speech folder, plus /redirect?to=URL (302) and /five-hours.wav (``FIVE_HOURS``, the
    bytes its socket took counted in ``served``, ``stream_ended`` set when it stops)."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", requests.utils.unquote(self.path.split("=", 1)[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/five-hours.wav":
            self.send_response(200)
            self.send_header("Content-Length", str(FIVE_HOURS.size))
            self.end_headers()
            try:
                for piece in FIVE_HOURS.pieces():
                    self.wfile.write(piece)
                    self.server.served += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                self.server.stream_ended.set()
            return
        super().do_GET()


@pytest.fixture
def media_server(speech_dir):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Files, directory=str(speech_dir)))
    server.daemon_threads = True
    server.seen = []
    server.served = 0
    server.stream_ended = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _post(service, body: dict) -> dict:
    r = requests.post(service.base_url + "/api/v1/jobs", json=body, timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def test_links_and_keys_are_fetched_by_the_worker_and_delivered(live_service, tmp_path, media_server, s3_server,
                                                                 s3_bucket, speech_path):
    s3 = s3_server.storage_settings(s3_bucket)
    settings = make_settings(
        tmp_path, fetch_allow=("127.0.0.1/32",), fetch_timeout_s=5.0,
        s3_endpoint_url=s3["s3_endpoint_url"], s3_region="us-east-1", s3_access_key_id=s3["s3_access_key_id"],
        s3_secret_access_key=s3["s3_secret_access_key"], s3_addressing_style="path",
        tenant_sources={"local": (f"s3://{s3_bucket}/in/",)}, tenant_outputs={"local": (f"s3://{s3_bucket}/out/",)})
    service = live_service(settings)
    base = f"http://127.0.0.1:{media_server.server_address[1]}"
    s3_server.client().put_object(Bucket=s3_bucket, Key="in/jfk.flac", Body=speech_path("jfk.flac").read_bytes())

    by_link = _post(service, {"source_url": f"{base}/redirect?to={quote(base + '/jfk.flac', safe='')}",
                              "language": "en", "output_url": f"s3://{s3_bucket}/out/run-1/",
                              "output_formats": "srt,txt"})
    by_key = _post(service, {"source_url": f"s3://{s3_bucket}/in/jfk.flac", "language": "en"})
    refused_hop = _post(service, {"source_url": f"{base}/redirect?to="
                                                + quote(f"http://127.0.0.2:{media_server.server_address[1]}/jfk.flac", safe="")})
    metadata = _post(service, {"source_url": f"{base}/redirect?to=" + quote("http://169.254.169.254/latest/", safe="")})
    missing = _post(service, {"source_url": f"{base}/nothing-here.wav"})
    gone_key = _post(service, {"source_url": f"s3://{s3_bucket}/in/gone.wav"})
    too_long = _post(service, {"source_url": f"{base}/five-hours.wav"})

    job = service.wait(by_link["id"])
    assert job["status"] == "done", job
    assert job["filename"] == "redirect"  # the last segment of the link it was given
    assert job["size_bytes"] == speech_path("jfk.flac").stat().st_size and job["duration_ms"] == 11000
    assert JFK in _words(requests.get(service.base_url + job["links"]["transcript"] + "?format=txt", timeout=10).text)
    media = requests.get(service.base_url + job["links"]["media"], timeout=10)
    assert media.content == speech_path("jfk.flac").read_bytes()  # stored as an upload would be

    job = service.wait(by_key["id"])
    assert job["status"] == "done" and job["filename"] == "jfk.flac", job

    for job_id, code, says in [(refused_hop["id"], "fetch_refused", "127.0.0.2 a loopback address"),
                               (metadata["id"], "fetch_refused", "169.254.169.254 a link-local address"),
                               (missing["id"], "fetch_failed", "answered HTTP 404"),
                               (gone_key["id"], "not_found", f"no source s3://{s3_bucket}/in/gone.wav")]:
        job = service.wait(job_id)
        assert job["status"] == "failed" and job["error"]["code"] == code and says in job["error"]["message"], job
    # Over the duration cap: its header says so in the first MiB, and the fetch stops there, as an
    # over-long upload fails; the server's socket took a few MiB of its 576 MB (kernel buffers).
    job = service.wait(too_long["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "too_long", job
    assert job["error"]["message"] == (f"{base}/five-hours.wav: The file lasts at least 5h00m00s, longer than the "
                                       "4h00m00s this service accepts; split it or ask the operator to raise the "
                                       "limit. (TINGXIE_MAX_DURATION_S)")
    assert media_server.stream_ended.wait(60)  # the worker hung up
    assert 0 < media_server.served < FIVE_HOURS.size // 8, media_server.served

    # Delivered once the job was done: each format, under the job's id.
    deadline_job = by_link["id"]
    for _ in range(100):
        job = service.job(deadline_job)
        if job["output"]["delivered_at"]:
            break
        threading.Event().wait(0.2)
    assert job["output"]["last_status"].startswith("delivered: "), job["output"]
    keys = sorted(k for k in s3_server.objects(s3_bucket) if k.startswith("out/"))
    assert keys == [f"out/run-1/{deadline_job}.srt", f"out/run-1/{deadline_job}.txt"]
    txt = s3_server.client().get_object(Bucket=s3_bucket, Key=f"out/run-1/{deadline_job}.txt")["Body"].read()
    assert JFK in _words(txt.decode())
    # The web tier never connected to the links: only the worker's requests reached the server.
    assert "/jfk.flac" in media_server.seen

    # The OpenAI door takes the link as tingxie's own field, and answers with the transcript.
    r = requests.post(service.base_url + "/v1/audio/transcriptions", timeout=300,
                      data={"model": "whisper-1", "source_url": f"{base}/jfk.flac", "response_format": "text"})
    assert r.status_code == 200, r.text
    assert JFK in _words(r.text)

    # tingxie submit --url follows the job and writes its transcript.
    done = tingxie("submit", "--url", f"{base}/jfk.flac", "--wait", "--format", "txt", "--language", "en",
                   server=service.base_url)
    assert done.returncode == 0, done.stderr
    assert JFK in _words(done.stdout)
