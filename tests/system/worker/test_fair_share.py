"""Fair share with real web and worker processes: one tenant's backlog, submitted first, does not
stand in front of another tenant's first job (issue 12)."""
from __future__ import annotations

import subprocess
import time

import pytest
import requests

from core import tokens
from core.db import make_engine, make_sessionmaker, session_scope
from media import find_ffmpeg

pytestmark = pytest.mark.slow


def test_a_backlog_of_one_tenant_does_not_starve_another_tenants_first_job(live_service, any_settings, speech_path,
                                                                          tmp_path):
    settings = any_settings.with_(tenant_inflight=2, auth="required")
    service = live_service(settings, workers=0)  # everything is queued before a worker starts
    engine = make_engine(settings.database_url)
    with session_scope(make_sessionmaker(engine)) as s:
        a = {"Authorization": f"Bearer {tokens.create(s, tenant='tenant-a').secret}"}
        b = {"Authorization": f"Bearer {tokens.create(s, tenant='tenant-b').secret}"}
    engine.dispose()
    quiet = tmp_path / "quiet.wav"  # tenant A's backlog: short clips (a real, silent recording)
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3",
                    str(quiet)], check=True)

    def submit(path, headers) -> str:
        with open(path, "rb") as fh:
            r = requests.post(f"{service.base_url}/api/v1/jobs", headers=headers, files={"file": (path.name, fh)},
                              timeout=60)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    backlog = [submit(quiet, a) for _ in range(12)]
    first = submit(speech_path("jfk.flac"), b)

    job = service.job

    service.start_worker()
    deadline = time.monotonic() + 300
    in_flight_seen = []
    while time.monotonic() < deadline:
        states = [job(j, a)["status"] for j in backlog]
        in_flight_seen.append(sum(state == "running" for state in states))
        if job(first, b)["status"] in ("done", "failed"):
            break
        time.sleep(0.3)
    theirs = job(first, b)
    assert theirs["status"] == "done" and "country" in requests.get(
        f"{service.base_url}/api/v1/jobs/{first}/transcript?format=txt", headers=b, timeout=10).text
    started_a = [job(j, a)["started_at"] for j in backlog]
    before = [s for s in started_a if s is not None and s < theirs["started_at"]]
    # Tenant A had two jobs in flight (in the broker or running) when B's came: B's ran third.
    assert len(before) <= 2, (len(before), started_a, theirs["started_at"])
    assert max(in_flight_seen) <= 1  # one worker: never more than one running
    # Tenant A's backlog is not lost either: it all runs, in order.
    for j in backlog:
        assert service.wait(j, timeout_s=300, headers=a)["status"] == "done"
    order = sorted(backlog, key=lambda j: job(j, a)["started_at"])
    assert order == backlog
