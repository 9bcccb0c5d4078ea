"""No shared disk: the web tier and a worker with different data directories, sharing only
PostgreSQL, Redis and an S3 server (a real one, over HTTP). A job completes, its media plays
through /media, and deleting it leaves no object behind."""
from __future__ import annotations

import pytest
import requests

from tests.support.settings import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _files(root) -> list[str]:
    """Files under ``root``, but the web tier's metrics (process state, not media)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.relative_to(root).parts[0] != "metrics")


def test_web_and_worker_on_different_data_directories(live_service, tmp_path, postgres_url, redis_url,
                                                      s3_server, s3_bucket, speech_path):
    shared = dict(database_url=postgres_url, broker_url=redis_url, **s3_server.storage_settings(s3_bucket))
    web_host = make_settings(tmp_path / "web-host", **shared)
    worker_host = make_settings(tmp_path / "worker-host", **shared)
    assert web_host.data_dir != worker_host.data_dir and web_host.scratch_dir != worker_host.scratch_dir

    service = live_service(web_host, workers=0)
    service.start_worker(True, settings=worker_host)
    audio = speech_path("jfk.flac")
    job = service.wait(service.submit(audio, language="en")["id"])
    assert job["status"] == "done", job
    text = requests.get(f"{service.base_url}{job['links']['transcript']}?format=txt", timeout=10).text
    assert "country" in text.lower()
    assert s3_server.objects(s3_bucket) == [f"media/{job['id']}/source.flac"]

    # The media plays from object storage through the web tier: whole, and by byte range.
    media_url = service.base_url + job["links"]["media"]
    whole = requests.get(media_url, timeout=30)
    assert whole.status_code == 200 and whole.content == audio.read_bytes()
    assert whole.headers["Content-Type"] == "audio/flac" and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert whole.headers["Content-Security-Policy"].startswith("sandbox")
    part = requests.get(media_url, headers={"Range": "bytes=1000-1999"}, timeout=30)
    assert part.status_code == 206 and part.content == audio.read_bytes()[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{audio.stat().st_size}"

    # Neither host kept the media: the web spooled and uploaded it, the worker copied, decoded and
    # removed its copy. Nothing decoded went to shared storage.
    for host in (web_host, worker_host):
        assert not host.media_dir.exists()
        assert _files(host.scratch_dir) == [], _files(host.scratch_dir)

    assert requests.delete(f"{service.base_url}/api/v1/jobs/{job['id']}", timeout=10).status_code == 204
    assert s3_server.objects(s3_bucket) == []
    assert requests.get(media_url, timeout=10).status_code == 404


def test_a_large_upload_reaches_object_storage_without_being_held_in_memory(live_service, tmp_path, s3_server,
                                                                            s3_bucket):
    """A 300 MB upload is spooled to the web host's scratch and sent as a multipart upload read from
    that file part by part: the web tier's memory stays flat, and the object is whole in the bucket."""
    import hashlib
    import subprocess
    import threading

    import psutil
    from requests_toolbelt import MultipartEncoder

    from media import find_ffmpeg

    big = tmp_path / "long.wav"  # 48 kHz stereo silence, 27 minutes: about 310 MB
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "anullsrc=r=48000:cl=stereo", "-t", "1620", "-c:a", "pcm_s16le", str(big)], check=True)
    settings = make_settings(tmp_path / "web-host", **s3_server.storage_settings(s3_bucket))
    service = live_service(settings, workers=0)
    web = psutil.Process(service.web.pid)
    before = peak = web.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, web.memory_info().rss)
            done.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with open(big, "rb") as fh:
            body = MultipartEncoder({"file": ("long.wav", fh, "audio/wav")})
            r = requests.post(service.base_url + "/api/v1/jobs", data=body, timeout=600,
                              headers={"Content-Type": body.content_type})
    finally:
        done.set()
        sampler.join()
    assert r.status_code == 202, r.text
    grown_mb = (peak - before) / 2**20
    print(f"{big.stat().st_size / 1e6:.0f} MB upload to S3: web grew {grown_mb:.0f} MiB")
    assert grown_mb < 100, grown_mb
    key = f"media/{r.json()['id']}/source.wav"
    assert s3_server.objects(s3_bucket) == [key]
    stored = s3_server.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(big.read_bytes()).digest()
    assert list((settings.scratch_dir / "uploads").iterdir()) == []
