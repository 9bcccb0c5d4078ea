"""``GET /metrics``: Prometheus's text format with the web tier's requests and upload bytes, jobs by
status and profile, queue depths, live workers, and the workers' own metrics (audio seconds,
realtime factor, job durations, ASR batch sizes) as they announce them."""
from __future__ import annotations

import dataclasses
import io
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from core import workers
from core.db import session_scope
from tests.support.settings import embedded_only


def _samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def _value(samples: dict, name: str, **labels) -> float:
    found = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, f"no {name} with {labels}; have {sorted(samples)}"
    return sum(found)


def test_metrics_in_prometheus_format(client, app, speech_path, any_settings):
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from core.metrics import to_wire

    data = speech_path("jfk.flac").read_bytes()
    r = client.post("/api/v1/jobs", data={"file": (io.BytesIO(data), "jfk.flac"), "language": "en"},
                    content_type="multipart/form-data")
    assert r.status_code == 202
    client.get("/healthz")
    client.get("/api/v1/jobs/" + "0" * 32)
    # A worker's announcement, with samples as a worker's registry makes them.
    registry = CollectorRegistry()
    Counter("tingxie_audio_seconds", "audio", ["profile"], registry=registry).labels("offline").inc(11.0)
    Histogram("tingxie_asr_batch_spans", "spans", ["profile"], registry=registry, buckets=(1, 8)).labels("offline").observe(3)
    with session_scope(app.extensions["tingxie"].db) as session:
        workers.announce(session, "tingxie-1@gpu-host-1", hostname="gpu-host-1", profiles=("offline", "funasr"),
                         device="cuda:0", metrics=to_wire(registry.collect()))

    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain; version=")
    samples = _samples(response.get_data(as_text=True))
    assert _value(samples, "tingxie_http_requests_total", method="GET", route="/healthz", status="200") >= 1
    assert _value(samples, "tingxie_http_requests_total", route="/api/v1/jobs/<job_id>", status="404") >= 1
    assert _value(samples, "tingxie_http_request_duration_seconds_count", route="/api/v1/jobs") >= 1
    assert _value(samples, "tingxie_upload_bytes_total", route="/api/v1/jobs") >= len(data)
    assert _value(samples, "tingxie_jobs", status="queued", profile="offline") == 1
    assert _value(samples, "tingxie_queue_depth", queue="tingxie.offline") == 1
    assert _value(samples, "tingxie_queue_depth", queue="tingxie.funasr") == 0
    assert _value(samples, "tingxie_workers", profile="funasr") == 1 and _value(samples, "tingxie_workers_live") == 1
    assert _value(samples, "tingxie_audio_seconds_total", profile="offline", worker="tingxie-1@gpu-host-1") == 11.0
    assert _value(samples, "tingxie_asr_batch_spans_bucket", le="8.0", worker="tingxie-1@gpu-host-1") == 1


@pytest.mark.slow
def test_a_workers_metrics_reach_the_web_tier(live_service, any_settings, speech_path):
    service = live_service(any_settings)
    job = service.wait(service.submit(speech_path("jfk.flac"), language="en")["id"])
    assert job["status"] == "done"
    deadline = time.monotonic() + 120  # the worker announces every few seconds (a hang guard)
    while True:
        samples = _samples(requests.get(service.base_url + "/metrics", timeout=10).text)
        if samples.get("tingxie_audio_seconds_total") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert _value(samples, "tingxie_audio_seconds_total", profile="offline") == 11.0
    processing = _value(samples, "tingxie_processing_seconds_total", profile="offline")
    assert processing > 0
    assert _value(samples, "tingxie_job_realtime_factor_count", profile="offline") == 1
    assert _value(samples, "tingxie_job_realtime_factor_sum", profile="offline") == pytest.approx(processing / 11.0)
    assert _value(samples, "tingxie_job_duration_seconds_count", profile="offline", outcome="done") == 1
    assert _value(samples, "tingxie_jobs_finished_total", profile="offline", outcome="done") == 1
    assert _value(samples, "tingxie_asr_batch_spans_count", profile="offline") >= 1
    assert _value(samples, "tingxie_asr_batch_audio_seconds_sum", profile="offline") > 5
    assert _value(samples, "tingxie_jobs", status="done", profile="offline") == 1
    assert _value(samples, "tingxie_workers", profile="offline") == 1
    worker_ids = {s.labels["worker"] for s in samples["tingxie_audio_seconds_total"]}
    assert len(worker_ids) == 1 and worker_ids.pop().startswith("tingxie-")
    assert _value(samples, "tingxie_http_requests_total", route="/api/v1/jobs", method="POST", status="202") == 1


@embedded_only
def test_a_made_up_method_adds_no_label_value(client):
    """The ``method`` label is bounded: any method outside the known set is counted as ``other``,
    so an unauthenticated client cannot grow the series without limit."""
    for method in ("BREW", "X-MADE-UP-1", "X-MADE-UP-2"):
        assert client.open("/healthz", method=method).status_code == 405
    samples = _samples(client.get("/metrics").get_data(as_text=True))
    methods = {s.labels["method"] for s in samples["tingxie_http_requests_total"]}
    assert not methods & {"BREW", "X-MADE-UP-1", "X-MADE-UP-2"}
    assert _value(samples, "tingxie_http_requests_total", method="other", status="405") >= 3


@pytest.mark.slow
@pytest.mark.live
def test_the_first_concurrent_uploads_to_a_fresh_web_process_are_all_accepted(any_settings, speech_path, tmp_path):
    """The metrics are made before the process serves: made on first use by several request
    threads at once, some of the first uploads were answered 500 though their jobs were committed."""
    import socket
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from core.migrate import upgrade
    from tests.support.service import Service

    settings = dataclasses.replace(any_settings, tenant_max_jobs=100)
    upgrade(settings)
    (tmp_path / "logs").mkdir()
    service = Service(settings=settings, log_dir=tmp_path / "logs")
    service.web = service._spawn("web", "web", "--dev")  # no request before the uploads: not even /readyz
    data = speech_path("jfk.flac").read_bytes()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert service.web.poll() is None and time.monotonic() < deadline, service.log("web")
            try:
                socket.create_connection((settings.host, settings.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        start = threading.Barrier(20)

        def upload(_n: int) -> tuple[int, str]:
            start.wait(timeout=30)
            r = requests.post(service.base_url + "/api/v1/jobs", files={"file": ("jfk.flac", data)}, timeout=120)
            return r.status_code, r.text

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(upload, range(20)))
        assert [status for status, _ in answers] == [202] * 20, [a for a in answers if a[0] != 202][:2]
        assert service.jobs()["total"] == 20
    finally:
        service.discard()
