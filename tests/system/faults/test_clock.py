"""One clock: a worker whose wall clock is five minutes off neither loses its healthy job to another
worker's sweeper (its clock behind) nor takes the others' running jobs (its clock ahead). Leases,
heartbeats and resend ages are written and compared on the database's clock. The offset is real:
the worker process runs with tests/support/clockshift.c preloaded, which shifts every wall-clock
read of the process and its pool (libc's clock_gettime, gettimeofday, time); PostgreSQL, another
process, keeps the true time."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from tests.support.clock import build_shim, canary, stepped, wait_sweeps
from tests.support.faults import gone, started_pids, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clock_stepped(tmp_path_factory):
    """clock_stepped(seconds) -> the environment of a process whose wall clock is that far off."""
    try:
        library = build_shim(tmp_path_factory.mktemp("clockshift"))
    except RuntimeError as exc:
        pytest.fail(f"{exc} (.ci/run installs it)")
    return lambda seconds: stepped(library, seconds)


def test_a_stepped_clock_reaches_the_worker(clock_stepped):
    """The premise: the offset reaches a Python process's wall clock, and its sleeps still work."""
    script = "import threading, time; threading.Event().wait(0.05); time.sleep(0.05); print(time.time())"
    out = subprocess.run([sys.executable, "-c", script], env=clock_stepped(-300), capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert abs(float(out) - (time.time() - 300)) < 60


@pytest.mark.parametrize("holder, sweeper", [(-300, None), (None, 300)], ids=["holder-behind", "sweeper-ahead"])
def test_a_worker_whose_clock_is_off_neither_loses_nor_takes_a_job(
        holder, sweeper, clock_stepped, live_service, tmp_path, postgres_url, redis_url, sql, speech_path,
        hanging_ffmpeg):
    from tests.support.settings import make_settings

    script, _, pids = hanging_ffmpeg
    # The job's decoder hangs, so it stays running for as long as the test looks; its worker keeps
    # beating (no stall or time limit within the test). A lease of 6 s: the sweepers run every 2 s.
    settings = make_settings(tmp_path, database_url=postgres_url, broker_url=redis_url, events_url=redis_url,
                             ffmpeg=str(script), stall_s=3600.0, job_time_base_s=3600.0)
    service = live_service(settings, workers=0)
    service.start_worker(env=clock_stepped(holder) if holder else None)
    db = sql(settings)
    job_id = service.submit(speech_path("jfk.flac"), language="en")["id"]
    wait_for(lambda: db.job(job_id).status == "running", 120, "worker0 to start the job")
    service.start_worker(env=clock_stepped(sweeper) if sweeper else None)
    canary(db, "c" * 32)
    wait_sweeps(service, "worker1", db, "c" * 32, 3)
    row = db.job(job_id)
    assert (row.status, row.attempt, row.lost_attempts) == ("running", 1, 0), service.log("worker1")[-3000:]
    assert "lost its worker" not in service.log("worker0") + service.log("worker1")
    requests.post(f"{service.base_url}/api/v1/jobs/{job_id}/cancel", timeout=10).raise_for_status()
    wait_for(lambda: all(gone(pid) for pid in started_pids(pids)), 30, "the hung decoder to be gone")

