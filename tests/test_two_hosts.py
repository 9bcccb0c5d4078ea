"""No shared disk: the web tier and a worker with different data directories, sharing only
PostgreSQL, Redis and an S3 server (a real one, over HTTP). A job completes, its media plays
through /media, and deleting it leaves no object behind."""
from __future__ import annotations

import pytest
import requests

from tests.conftest import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


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
