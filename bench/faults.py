"""Fault benchmark: each fault injected into a real service (web, workers, private Redis and
PostgreSQL where one is flushed or stopped), one line each: the outcome (from SQL), the time to
recovery, and the work redone as a fraction of the job.

    python -m bench.faults                      # every fault; the resume line on a 30-minute file
    python -m bench.faults --minutes 10 --only kill9 sigterm

Recovery, per fault: kill -9 / SIGTERM: from the fault until another attempt holds the job;
slow load: from the kill until the job is claimed; FLUSHALL: from the flush until every queued job
was sent again; PostgreSQL down: from the restart until the job is done; poison, hung decoder,
time limit: from submission to the job's final state; cancel: from the request until the work has
stopped (the decoder's or the pool process's pids gone); `tingxie up`: from the kill until the new
worker has loaded its models; database of an earlier main: the upgrade's time; lost message seen by
many sweepers: from their release until all have swept; clock: until the job was taken, or the
time watched (ten sweeps of the other worker) where it was kept; S3 down: from the restart until the
worker has read the media; scratch full: from submission until the job is done (on the worker with
room); multipart upload left: from the kill of the web process until the sweeper aborted the upload
(a worker started after the kill; TINGXIE_SPOOL_MAX_AGE_S=2 here). Redone, where a job ran more than once: (CPU time of every attempt -
that of an uninterrupted run of the same file) / that of the uninterrupted run, counted on the
worker's pool processes (CPU time, not wall time: the machine may be busy with other work). The
lease is 10 s here (60 s by default).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests

from bench import stop_services_on_signals
from core.migrate import upgrade
from core.queue import QueueClient
from core.settings import Settings
from media import find_ffmpeg
from tests.support.service import REPO, Service, free_port, settings_env
from tests.support.speech import SPEECH_DIR, build_speech
from tests.support.faults import Sql, gone, hanging_ffmpeg, pool_processes, started_pids, wait_for
from tests.support.servers import PrivatePostgres, PrivateRedis

LEASE_S = 10.0
JFK = SPEECH_DIR / "jfk.flac"


@dataclass
class Line:
    fault: str
    outcome: str
    recovery_s: float
    redone: float | None
    note: str = ""

    def __str__(self) -> str:
        redone = f"{self.redone:6.2f}" if self.redone is not None else "     -"
        return f"{self.fault:<44} {self.outcome:<34} {self.recovery_s:7.1f} s {redone}   {self.note}"


def epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


class Bench:
    def __init__(self, root: Path, minutes: float, rounds: int = 1):
        self.root, self.minutes, self.rounds = root, minutes, rounds
        root.mkdir(parents=True)
        self._count = 0

    def audio(self, minutes: float) -> Path:
        """English speech (tests.support.speech, cached in bench/out)."""
        return build_speech(minutes, language="en")

    def service(self, workers: int = 1, faults: tuple[str, ...] = (), **overrides) -> tuple[Service, Sql]:
        self._count += 1
        folder = self.root / f"run{self._count}"
        (folder / "logs").mkdir(parents=True)
        settings = Settings(data_dir=folder / "data", port=free_port(), gateway_port=free_port(), job_lease_s=LEASE_S)
        settings = dataclasses.replace(settings, **overrides)
        upgrade(settings)
        service = Service(settings=settings, log_dir=folder / "logs")
        service.start_web()
        for _ in range(workers):
            service.start_worker(faults=faults)
        return service, Sql(settings)


def _attempt_s(db: Sql, job_id: str) -> float:
    row = db.job(job_id)
    return epoch(row.finished_at) - epoch(row.started_at)


def _cpu_s(workers) -> float:
    """CPU seconds used so far by the pool processes of ``workers`` and the children they waited
    for (ffmpeg): the work done, whatever else the machine was running."""
    total = 0.0
    for worker in workers:
        for process in pool_processes(worker.pid):
            t = process.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _uninterrupted(service: Service, db: Sql, audio: Path) -> tuple[str, float, float]:
    """A job run without a fault: its id, wall seconds, CPU seconds."""
    before = _cpu_s(service.workers)
    job_id = service.submit(audio, language="en")["id"]
    assert service.wait(job_id, timeout_s=7200)["status"] == "done"
    return job_id, _attempt_s(db, job_id), _cpu_s(service.workers) - before


def kill9(bench: Bench) -> Line:
    """kill -9 of the worker at 80 % of a long file; a new worker resumes from the kept batches.
    Each round runs the file once uninterrupted and once killed; ratios are per round, medians shown."""
    second_of_whole, second_wall, redone, recovery, outcomes = [], [], [], [], []
    for _ in range(bench.rounds):
        service, db = bench.service()
        try:
            audio = bench.audio(bench.minutes)
            whole, whole_wall, whole_cpu = _uninterrupted(service, db, audio)
            before = _cpu_s(service.workers)
            job_id = service.submit(audio, language="en")["id"]
            wait_for(lambda: db.job(job_id).progress >= 0.8, 7200, "80 %", poll_s=0.05)
            first_cpu = _cpu_s(service.workers) - before
            killed = time.time()
            service.kill_worker(service.workers[0])
            service.start_worker()
            before = _cpu_s(service.workers[1:])
            wait_for(lambda: db.job(job_id).attempt == 2, 600, "the second attempt")
            recovery.append(epoch(db.job(job_id).started_at) - killed)
            service.wait(job_id, timeout_s=7200)
            second_cpu = _cpu_s(service.workers[1:]) - before
            row = db.job(job_id)
            same = db.transcript(job_id) == db.transcript(whole)
            outcomes.append(f"{row.status}, attempt {row.attempt}, {'same' if same else 'DIFFERENT'} transcript")
            second_of_whole.append(second_cpu / whole_cpu)
            second_wall.append(_attempt_s(db, job_id) / whole_wall)
            redone.append((first_cpu + second_cpu - whole_cpu) / whole_cpu)
        finally:
            service.stop()
            db.close()
    outcome = outcomes[0] if len(set(outcomes)) == 1 else "; ".join(outcomes)
    return Line(f"kill -9 at 80 % ({bench.minutes:g} min file)", outcome, statistics.median(recovery),
                statistics.median(redone),
                f"2nd attempt = {statistics.median(second_of_whole):.2f} of an uninterrupted run's CPU time "
                f"({statistics.median(second_wall):.2f} of its wall time); {bench.rounds} round(s), medians")


def sigterm(bench: Bench) -> Line:
    """SIGTERM (a deploy) to the worker running a job; another worker continues it at once."""
    service, db = bench.service(workers=2, job_lease_s=60.0, batch_seconds=60.0)
    try:
        audio = bench.audio(5)
        _, _, whole_cpu = _uninterrupted(service, db, audio)
        before = _cpu_s(service.workers)
        job_id = service.submit(audio, language="en")["id"]
        wait_for(lambda: db.job(job_id).progress >= 0.5, 3600, "half the job", poll_s=0.05)
        node = db.job(job_id).worker
        (worker,) = [w for w in service.workers if node.startswith(f"tingxie-{w.pid}@")]
        (other,) = [w for w in service.workers if w is not worker]
        first_cpu = _cpu_s(service.workers) - before  # the other worker was idle
        before = _cpu_s([other])
        stopped = time.time()
        worker.send_signal(signal.SIGTERM)
        wait_for(lambda: db.job(job_id).attempt == 2 and db.job(job_id).status == "running", 120, "the hand-over")
        recovery = epoch(db.job(job_id).started_at) - stopped
        worker.wait(timeout=60)
        exited_s = time.time() - stopped
        service.wait(job_id, timeout_s=3600)
        second_cpu = _cpu_s([other]) - before
        row = db.job(job_id)
        return Line("SIGTERM mid-job (lease 60 s, 2 workers)", f"{row.status}, attempt {row.attempt}",
                    recovery, (first_cpu + second_cpu - whole_cpu) / whole_cpu,
                    f"the old worker exited within {exited_s:.1f} s")
    finally:
        service.stop()
        db.close()


def slow_load(bench: Bench) -> Line:
    """A pool process killed during an 8 s model load (Celery's start-up timeout is 4 s)."""
    service, db = bench.service(workers=0)
    try:
        worker = service.start_worker(wait=False, faults=("--load-delay", "8"))
        wait_for(lambda: "the model load sleeps" in service.log("worker0"), 120, "the load")
        job_id = service.submit(JFK, language="en")["id"]
        time.sleep(2)
        killed = time.time()
        os.kill(pool_processes(worker.pid)[0].pid, signal.SIGKILL)
        service.wait(job_id, timeout_s=600)
        row = db.job(job_id)
        timeouts = service.log("worker0").count("Timed out waiting for UP message")
        return Line("pool process killed in an 8 s model load", f"{row.status}, attempt {row.attempt}",
                    epoch(row.started_at) - killed, 0.0, f"start-up timeouts: {timeouts}")
    finally:
        service.stop()
        db.close()


def poison(bench: Bench) -> Line:
    """A job that kills its worker's process every time (in ASR)."""
    service, db = bench.service(faults=("--die-in-asr",))
    try:
        submitted = time.time()
        job_id = service.submit(JFK, language="en")["id"]
        service.wait(job_id, timeout_s=600)
        row = db.job(job_id)
        return Line("poison job (kills its worker every time)", f"{row.status} ({row.error_code}), attempt {row.attempt}",
                    epoch(row.finished_at) - submitted, None, "TINGXIE_MAX_ATTEMPTS=3")
    finally:
        service.stop()
        db.close()


def flushall(bench: Bench) -> Line:
    """FLUSHALL while jobs wait in the queue behind a running one."""
    redis = PrivateRedis().start()
    service, db = bench.service(broker_url=redis.url, events_url=redis.url)
    try:
        busy = service.submit(bench.audio(1), language="en")["id"]
        wait_for(lambda: db.job(busy).status == "running", 120, "the first job")
        queued = [service.submit(JFK, language="en")["id"]
                  for _ in range(3)]
        flushed = time.time()
        redis.flushall()
        for job_id in queued:
            service.wait(job_id, timeout_s=600)
        rows = [db.job(j) for j in queued]
        outcome = f"{sum(r.status == 'done' for r in rows)}/3 done, attempts {sorted({r.attempt for r in rows})}"
        return Line(f"FLUSHALL, 3 jobs queued (bound {service.settings.resend_bound_s:g} s)", outcome,
                    max(epoch(r.enqueued_at) for r in rows) - flushed, 0.0,
                    f"all sent again; the last claimed {max(epoch(r.started_at) for r in rows) - flushed:.0f} s "
                    "after the flush (one worker)")
    finally:
        service.stop()
        db.close()
        redis.stop()


def postgres_down(bench: Bench) -> Line:
    """PostgreSQL stopped while a job runs, until its worker holds the finished transcript."""
    postgres, redis = PrivatePostgres().start(), PrivateRedis().start()
    service, db = bench.service(database_url=postgres.url, broker_url=redis.url, events_url=redis.url)
    try:
        job_id = service.submit(bench.audio(1), language="en")["id"]
        wait_for(lambda: db.job(job_id).stage == "asr", 120, "ASR")
        db.close()
        postgres.stop("fast")
        wait_for(lambda: "holding the outcome" in service.log("worker0"), 600, "the held result")
        time.sleep(LEASE_S + 5)
        restarted = time.time()
        postgres.start()
        service.wait(job_id, timeout_s=600)
        row = db.job(job_id)
        return Line(f"PostgreSQL down at the final write ({LEASE_S + 5:g}+ s)", f"{row.status}, attempt {row.attempt}",
                    epoch(row.finished_at) - restarted, 0.0, f"transcripts: {db.transcripts(job_id)}")
    finally:
        service.stop()
        db.close()
        postgres.remove()
        redis.stop()


def decoder_hang(bench: Bench) -> Line:
    """A decoder that hangs, every attempt (stall detector at 10 s)."""
    script, _, pids = hanging_ffmpeg(bench.root)
    service, db = bench.service(ffmpeg=str(script), stall_s=10.0)
    try:
        submitted = time.time()
        job_id = service.submit(JFK, language="en")["id"]
        service.wait(job_id, timeout_s=600)
        row = db.job(job_id)
        time.sleep(2)  # the last attempt's decoder is killed at its next poll, after the job failed
        left = sum(not gone(pid) for pid in started_pids(pids))
        return Line("decoder hangs (TINGXIE_STALL_S=10)", f"{row.status} ({row.error_code}), attempt {row.attempt}",
                    epoch(row.finished_at) - submitted, None, f"hung decoders left: {left}")
    finally:
        service.stop()
        db.close()
        pids.unlink(missing_ok=True)


def time_limit(bench: Bench) -> Line:
    """A job past its time limit (5 s for the test; by default 600 s + 1 s per second of audio)."""
    script, _, pids = hanging_ffmpeg(bench.root)
    service, db = bench.service(ffmpeg=str(script), job_time_base_s=5.0, job_time_factor={"offline": 0.01})
    try:
        submitted = time.time()
        job_id = service.submit(JFK, language="en")["id"]
        service.wait(job_id, timeout_s=600)
        row = db.job(job_id)
        return Line("job past its time limit (5 s)", f"{row.status} ({row.error_code}), attempt {row.attempt}",
                    epoch(row.finished_at) - submitted, None)
    finally:
        service.stop()
        db.close()
        pids.unlink(missing_ok=True)


def cancel_decode(bench: Bench) -> Line:
    script, flag, pids = hanging_ffmpeg(bench.root)
    service, db = bench.service(ffmpeg=str(script))
    try:
        stuck = service.submit(JFK, language="en")["id"]
        wait_for(lambda: started_pids(pids), 120, "the hung decoder")
        flag.unlink()
        waiting = service.submit(JFK, language="en")["id"]
        (decoder,) = started_pids(pids)
        canceled = time.time()
        requests.post(f"{service.base_url}/api/v1/jobs/{stuck}/cancel", timeout=10).raise_for_status()
        wait_for(lambda: gone(decoder), 30, "the decoder", poll_s=0.02)
        stopped = time.time() - canceled
        service.wait(waiting, timeout_s=600)
        return Line("cancel during decode", f"{db.job(stuck).status}, next job {db.job(waiting).status}", stopped, None,
                    f"next job claimed {epoch(db.job(waiting).started_at) - canceled:.1f} s after the cancel")
    finally:
        service.stop()
        db.close()
        pids.unlink(missing_ok=True)


def cancel_asr(bench: Bench) -> Line:
    service, db = bench.service()
    try:
        audio = bench.audio(4)
        job_id = service.submit(audio, language="en")["id"]
        wait_for(lambda: db.job(job_id).stage == "asr", 300, "ASR")
        (process,) = pool_processes(service.workers[0].pid)
        time.sleep(1.0)
        canceled = time.time()
        requests.post(f"{service.base_url}/api/v1/jobs/{job_id}/cancel", timeout=10).raise_for_status()
        wait_for(lambda: gone(process.pid), 60, "the pool process", poll_s=0.02)
        stopped = time.time() - canceled
        following = service.submit(JFK, language="en")["id"]
        service.wait(following, timeout_s=600)
        return Line("cancel inside an ASR batch", f"{db.job(job_id).status}, next job {db.job(following).status}",
                    stopped, None,
                    f"next job claimed {epoch(db.job(following).started_at) - canceled:.1f} s after (models reloaded)")
    finally:
        service.stop()
        db.close()


def up_worker_death(bench: Bench) -> Line:
    """kill -9 of the worker under `tingxie up`."""
    import psutil

    folder = bench.root / "up"
    folder.mkdir()
    settings = Settings(data_dir=folder / "data", port=free_port(), gateway_port=free_port(), job_lease_s=LEASE_S)
    upgrade(settings)
    log_path = folder / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "cli", "up", "--no-gateway"], cwd=REPO, env=settings_env(settings),
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://{settings.host}:{settings.port}"
    try:
        wait_for(lambda: "loaded the offline model set" in log_path.read_text(), 300, "the worker")
        (worker,) = [p for p in psutil.Process(up.pid).children() if p.cmdline()[3:4] == ["worker"]]
        killed = time.time()
        worker.kill()
        answers = []
        while log_path.read_text().count("loaded the offline model set") < 2:
            answers.append(requests.get(base + "/healthz", timeout=5).status_code == 200)
            time.sleep(0.2)
            if time.time() - killed > 300:
                raise AssertionError("no new worker")
        recovery = time.time() - killed
        return Line("tingxie up: worker killed", "worker restarted", recovery, None,
                    f"web answered {sum(answers)}/{len(answers)} health checks meanwhile")
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)


def _clock(bench: Bench, holder_s: float, sweeper_s: float) -> Line:
    """Two workers on PostgreSQL, one with its wall clock stepped (tests/support/clockshift.c): the
    first holds a job whose decoder hangs (so it runs, healthy, beating); the second sweeps."""
    from tests.support.clock import build_shim, canary, stepped, wait_sweeps

    library = build_shim(bench.root)
    postgres, redis = PrivatePostgres().start(), PrivateRedis().start()
    script, _, _ = hanging_ffmpeg(bench.root)
    service, db = bench.service(workers=0, database_url=postgres.url, broker_url=redis.url, events_url=redis.url,
                                ffmpeg=str(script), stall_s=3600.0, job_time_base_s=3600.0)
    try:
        service.start_worker(env=stepped(library, holder_s) if holder_s else None)
        job_id = service.submit(JFK, language="en")["id"]
        wait_for(lambda: db.job(job_id).status == "running", 120, "the job to start")
        began = time.time()
        service.start_worker(env=stepped(library, sweeper_s) if sweeper_s else None)
        canary(db, "c" * 32)
        taken = None
        for sweeps in range(1, 11):  # ten sweeps of the second worker, or until the job is taken
            wait_sweeps(service, "worker1", db, "c" * 32, sweeps)
            if db.job(job_id).attempt > 1 or db.job(job_id).lost_attempts:
                taken = time.time() - began
                break
        row = db.job(job_id)
        who = "its holder behind" if holder_s else "the sweeper ahead"
        step = f"{abs(holder_s or sweeper_s) / 60:g} min"
        if taken is not None:
            return Line(f"clock: {who} by {step}", f"job TAKEN (attempt {row.attempt})", taken, None,
                        f"lost attempts {row.lost_attempts}, within {sweeps} sweeps")
        return Line(f"clock: {who} by {step}", f"kept: {row.status}, attempt {row.attempt}", time.time() - began,
                    None, "10 sweeps of the other worker watched; the recovery column is the time watched")
    finally:
        service.stop()
        db.close()
        postgres.remove()
        redis.stop()


def clock_behind(bench: Bench) -> Line:
    return _clock(bench, -300, 0)


def clock_ahead(bench: Bench) -> Line:
    return _clock(bench, 0, 300)


def resend(bench: Bench, sweepers: int = 8) -> Line:
    """A job whose message was lost (FLUSHALL), seen by ``sweepers`` workers' sweeps at once (held
    at its row until all have read it, then let go): how many times is it sent?"""
    import psycopg

    from tests.support.faults import SWEEP, lost_job, messages

    postgres, redis = PrivatePostgres().start(), PrivateRedis().start()
    folder = bench.root / "resend"
    folder.mkdir(parents=True)
    settings = Settings(data_dir=folder / "data", database_url=postgres.url, broker_url=redis.url,
                        events_url=redis.url, job_lease_s=LEASE_S, resend_after_s=3600.0)
    upgrade(settings)
    db = Sql(settings)
    try:
        job_id = "e" * 32
        lost_job(db, job_id)
        url = postgres.url.replace("+psycopg", "")
        with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher:
            holder.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
            procs = [subprocess.Popen([sys.executable, "-c", SWEEP], cwd=REPO, env=settings_env(settings),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(sweepers)]
            wait_for(lambda: watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()[0] >= sweepers, 300, "every sweeper at the job")
            released = time.time()
            holder.commit()
            for proc in procs:
                proc.wait(timeout=300)
        sent = messages(redis.url)
        return Line(f"lost message seen by {sweepers} sweepers at once", f"sent {sent} time(s)",
                    time.time() - released, None, "re-sends counted in the broker's queue")
    finally:
        db.close()
        postgres.remove()
        redis.stop()


def old_database(bench: Bench, commit: str = "c455805") -> Line:
    """A database made by main at ``commit`` (0005 after 0002), with its jobs, upgraded with this
    tree: is it at head, and does the API answer?"""
    from tests.support.releases import build, fill
    from web import create_app

    postgres = PrivatePostgres().start()
    settings = Settings(data_dir=bench.root / "data", database_url=postgres.url, rate_limit="off")
    try:
        build(commit, postgres.url, bench.root / "trees")
        made = fill(postgres.url)
        began = time.time()
        try:
            upgrade(settings)
            upgraded = "upgraded"
        except Exception as exc:  # the refusal is the outcome
            upgraded = f"refused ({type(exc).__name__})"
        took = time.time() - began
        app = create_app(settings, {"TESTING": True})
        try:
            client = app.test_client()
            listed = client.get("/api/v1/jobs").status_code
            transcript = client.get(f"/api/v1/jobs/{made['local']['done']}/transcript?format=txt").status_code
        finally:
            app.extensions["tingxie"].engine.dispose()
        return Line(f"database of main {commit} (0005 after 0002)", upgraded, took, None,
                    f"GET /api/v1/jobs {listed}, transcript {transcript}")
    finally:
        postgres.remove()


def store_down(bench: Bench) -> Line:
    """The S3 server (moto's, private) stopped for 20 s when the worker claims the job, then
    started again on the same port with the same object."""
    from tests.support.s3 import S3Server

    s3 = S3Server.start(bench.root / "moto.log")
    try:
        bucket = s3.new_bucket()
        service, db = bench.service(workers=0, **s3.storage_settings(bucket))
    except BaseException:
        s3.stop()
        raise
    try:
        job_id = service.submit(JFK, language="en")["id"]
        (name,) = s3.objects(bucket)
        stored = s3.client().get_object(Bucket=bucket, Key=name)["Body"].read()
        s3.stop()
        service.start_worker()
        wait_for(lambda: service.job(job_id)["waiting_reason"] == "media store unavailable", 120, "the wait")
        readyz = requests.get(service.base_url + "/readyz", timeout=30).status_code
        time.sleep(20)
        s3 = S3Server.start(bench.root / "moto-again.log", port=s3.port)
        s3.client().create_bucket(Bucket=bucket)
        s3.client().put_object(Bucket=bucket, Key=name, Body=stored)
        restarted = time.time()
        service.wait(job_id, timeout_s=600)
        row = db.job(job_id)
        (went_on,) = [e["at"] for e in db.events(job_id) if e["type"] == "waiting" and not e["data"]["waiting_reason"]]
        return Line("S3 down for 20 s when the job is claimed", f"{row.status}, attempt {row.attempt}",
                    epoch(datetime.fromisoformat(went_on)) - restarted, 0.0,
                    f"media read {epoch(datetime.fromisoformat(went_on)) - restarted:.1f} s after the restart, done "
                    f"{epoch(row.finished_at) - restarted:.1f} s after; waiting_reason 'media store unavailable' "
                    f"meanwhile, lost attempts {row.lost_attempts}; /readyz {readyz} while down")
    finally:
        service.stop()
        db.close()
        s3.stop()


def scratch_full(bench: Bench) -> Line:
    """A decode that fills its worker's scratch (a 128 KB tmpfs; the job's stored length says 1 s,
    its audio is 11 s); a second worker has room."""
    import pytest
    from sqlalchemy import text

    from tests.support.filesystems import small_tmpfs

    service, db = bench.service(workers=0, resend_after_s=3.0)
    try:
        with small_tmpfs(bench.root / "small-scratch", "128k") as scratch:
            submitted = time.time()
            job_id = service.submit(JFK, language="en")["id"]
            with db.engine.begin() as connection:
                connection.execute(text("UPDATE jobs SET duration_ms = 1000 WHERE id = :id"), {"id": job_id})
            service.start_worker(settings=dataclasses.replace(service.settings, scratch_dir=scratch,
                                                              scratch_margin_bytes=1024))
            service.start_worker()
            service.wait(job_id, timeout_s=600)
            row = db.job(job_id)
            codes = [e["data"].get("reason", "").split(":")[0] for e in db.events(job_id) if e["type"] == "queued"]
            service.stop()
    except pytest.skip.Exception as exc:  # no tmpfs here (not root): a line saying so, not the end of the run
        return Line("decode fills a 128 KB scratch (2 workers)", "not run", 0.0, None, str(exc))
    else:
        return Line("decode fills a 128 KB scratch (2 workers)", f"{row.status}, attempt {row.attempt}",
                    epoch(row.finished_at) - submitted, None,
                    f"requeued: {[c for c in codes if c] or 'never'}; lost attempts {row.lost_attempts}")
    finally:
        service.stop()
        db.close()


def multipart_left(bench: Bench) -> Line:
    """The web process SIGKILLed during a 200 MB upload to S3."""
    import threading

    from tests.support.s3 import S3Server

    s3 = S3Server.start(bench.root / "moto.log")
    try:
        bucket = s3.new_bucket()
        service, db = bench.service(workers=0, spool_max_age_s=2.0, **s3.storage_settings(bucket))
    except BaseException:
        s3.stop()
        raise
    try:
        audio = bench.root / "large.wav"
        subprocess.run([find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "anoisesrc=d=1140:r=44100:a=0.1",
                        "-ac", "2", "-c:a", "pcm_s16le", str(audio)], check=True)

        def upload() -> None:
            with open(audio, "rb") as fh, contextlib.suppress(requests.RequestException):
                requests.post(service.base_url + "/api/v1/jobs", files={"file": ("large.wav", fh)}, timeout=600)

        def uploads() -> list:
            return s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])

        def parts() -> int:
            return sum(len(s3.client().list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", []))
                       for u in uploads())

        threading.Thread(target=upload, daemon=True).start()
        wait_for(lambda: parts() >= 2, 300, "the multipart upload", poll_s=0.05)
        os.killpg(service.web.pid, signal.SIGKILL)
        killed = time.time()
        left = parts()
        service.start_worker()
        wait_for(lambda: not uploads(), 300, "the sweeper")
        return Line("web SIGKILLed mid S3 upload (200 MB)", "multipart upload aborted", time.time() - killed, None,
                    f"{left} part(s) of 16 MiB left at the kill, none after; objects: {len(s3.objects(bucket))}; "
                    "recovery includes starting a worker")
    finally:
        service.stop()
        db.close()
        s3.stop()



def _held_socket(service: Service, job_id: str, hold_s: float) -> tuple[bool, int, str]:
    """An events socket on a quiet job held for ``hold_s``, answering the server's pings: (still open,
    pings seen, how it ended if it did)."""
    import websocket

    ws = websocket.create_connection(f"ws://127.0.0.1:{service.settings.port}/api/v1/jobs/{job_id}/events", timeout=30)
    pings, ended = 0, ""
    try:
        ws.recv()  # the snapshot
        until = time.monotonic() + hold_s
        while time.monotonic() < until:
            ws.settimeout(max(0.1, until - time.monotonic()))
            try:
                frame = ws.recv_frame()
            except websocket.WebSocketTimeoutException:
                break
            except websocket.WebSocketException as exc:
                ended = f"{type(exc).__name__}: {exc}"[:60]
                break
            if frame.opcode == websocket.ABNF.OPCODE_PING:
                pings += 1
                ws.pong(frame.data)
            elif frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                ended = f"closed {int.from_bytes(frame.data[:2], 'big')}"
                break
        return ws.connected and not ended, pings, ended
    finally:
        ws.close()


def event_socket_idle(bench: Bench) -> Line:
    """A job-events socket on a queued job (no worker) held for five request idle timeouts (2 s)."""
    service, db = bench.service(workers=0, request_idle_timeout_s=2.0, ws_ping_s=4.0)
    try:
        job_id = service.submit(JFK, language="en")["id"]
        began = time.time()
        open_, pings, ended = _held_socket(service, job_id, 10.0)
        outcome = "still open" if open_ else f"broken ({ended})"
        return Line("events socket held 5 x the idle timeout", outcome, time.time() - began, None,
                    f"{pings} server pings answered; before: an HTTP 408 written into the socket at the "
                    "idle timeout (1002 in the client)")
    finally:
        service.stop()
        db.close()


def spool_full(bench: Bench) -> Line:
    """A 60 MB upload into a web tier whose scratch is a 30 MB tmpfs."""
    import pytest

    from tests.support.filesystems import small_tmpfs

    try:
        with small_tmpfs(bench.root / "web-scratch", "30m") as scratch:
            service, db = bench.service(workers=0, scratch_dir=scratch)
            try:
                began = time.time()
                answer = requests.post(service.base_url + "/api/v1/jobs", timeout=120,
                                       files={"file": ("big.wav", b"RIFF" + b"\0" * (60 * 2**20))})
                took = time.time() - began
                left = list((scratch / "uploads").glob("*.part"))
                healthy = requests.get(service.base_url + "/healthz", timeout=10).status_code == 200
                alive = service.web.poll() is None
            finally:
                service.stop()
                db.close()
    except pytest.skip.Exception as exc:
        return Line("upload into a full web scratch", "not run", 0.0, None, str(exc))
    code = answer.json().get("error", {}).get("code") if answer.headers.get("content-type", "").startswith("application/json") else ""
    return Line("upload into a full web scratch (30 MB tmpfs)", f"{answer.status_code} {code}", took, None,
                f"spool files left {len(left)}; /healthz {'200' if healthy else 'failing'}; web process "
                f"{'alive' if alive else 'DIED'}; before: a reset with no status, the spool left, web processes "
                "restarted 15 times in 64 s")


def web_sigterm(bench: Bench) -> Line:
    """SIGTERM to the web tier while an upload is being received."""
    import socket

    service, db = bench.service(workers=0)
    spool = service.settings.scratch_dir / "uploads"
    try:
        with socket.create_connection(("127.0.0.1", service.settings.port), timeout=60) as sock:
            sock.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10485760\r\n\r\n"
                         b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                         b"Content-Type: audio/wav\r\n\r\nRIFF")
            deadline = time.monotonic() + 30
            while not list(spool.glob("*.part")) and time.monotonic() < deadline:
                sock.sendall(b"\0" * 1024)
                time.sleep(0.1)
            began = time.time()
            service.web.send_signal(signal.SIGTERM)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                head += chunk
        took = time.time() - began
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1") if head else "no answer"
        retry = [line for line in head.decode("latin-1").split("\r\n") if line.lower().startswith("retry-after")]
        left = list(spool.glob("*.part"))
        return Line("SIGTERM to the web tier, upload in flight", status_line.split(" ", 1)[-1][:34], took, None,
                    f"{retry[0] if retry else 'no Retry-After'}; spool files left {len(left)}; before: 500 and "
                    "the spool left for a sweeper")
    finally:
        service.stop()
        db.close()

FAULTS = {
    "slow_load": slow_load, "poison": poison, "flushall": flushall, "decoder_hang": decoder_hang,
    "time_limit": time_limit, "cancel_decode": cancel_decode, "cancel_asr": cancel_asr,
    "postgres_down": postgres_down, "sigterm": sigterm, "kill9": kill9, "up": up_worker_death,
    "old_database": old_database, "resend": resend, "clock_behind": clock_behind, "clock_ahead": clock_ahead,
    "store_down": store_down, "scratch_full": scratch_full, "multipart_left": multipart_left,
    "event_socket_idle": event_socket_idle, "spool_full": spool_full, "web_sigterm": web_sigterm,
}


def main() -> None:
    stop_services_on_signals()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the kill -9 file (default 30)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the kill -9 line (median shown)")
    parser.add_argument("--only", nargs="+", choices=sorted(FAULTS), help="these faults only")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tingxie-faults-"))
    print(f"{'fault':<44} {'outcome':<34} {'recovery':>9} {'redone':>6}   note", flush=True)
    try:
        for name in args.only or FAULTS:
            try:
                print(FAULTS[name](Bench(root / name, args.minutes, args.rounds)), flush=True)
            except Exception as exc:  # one fault's failure is a line too
                print(f"{name:<44} FAILED: {type(exc).__name__}: {exc}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
