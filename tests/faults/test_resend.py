"""One re-sender: a job whose message was lost is sent again once per resend interval, whichever
of the sweepers (one per worker) sees it first; every other sweeper's guarded UPDATE matches
nothing. Several sweeper processes run at once on PostgreSQL and Redis; the messages that reach
the broker are counted."""
from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import psycopg
import pytest
import redis

from core.db import session_scope
from core.migrate import upgrade
from core.models import Job, utcnow
from tests.conftest import make_settings
from tests.service import REPO, settings_env
from tests.support.faults import Sql, wait_for

pytestmark = pytest.mark.slow

SWEEP = "from core.settings import Settings; from worker.runtime import Runtime; Runtime(Settings.from_env()).sweep()"
SWEEPERS = 4


def lost_job(db, job_id: str) -> None:
    """A queued job sent two days ago and never claimed: its message is gone (FLUSHALL). Its profile
    is one no process here consumes, so every message sent for it stays in the broker, counted."""
    with session_scope(db.factory) as session:
        session.add(Job(id=job_id, status="queued", profile="funasr", options={"language": "auto", "itn": True,
                        "hotwords": []}, filename="lost.wav", media_key=f"{job_id}/source.wav", size_bytes=1,
                        source="api", priority=0, progress=0.0, attempt=0, warnings=[], tenant="lost",
                        lost_attempts=0, created_at=utcnow() - timedelta(days=2),
                        enqueued_at=utcnow() - timedelta(days=2)))


def messages(broker_url: str) -> int:
    """Task messages waiting in the broker's funasr queues (kombu keeps a Redis list per queue and priority)."""
    r = redis.Redis.from_url(broker_url)
    return sum(r.llen(key) for key in r.keys("tingxie.funasr*") if r.type(key) == b"list")


def test_a_lost_job_is_resent_once_by_many_sweepers(postgres_url, redis_url, tmp_path):
    settings = make_settings(tmp_path, database_url=postgres_url, broker_url=redis_url, events_url=redis_url,
                             resend_after_s=3600.0)
    upgrade(settings)
    db = Sql(settings)
    job_id = "e" * 32
    lost_job(db, job_id)
    before = db.job(job_id).enqueued_at
    # Every sweeper is held at the job's row until all of them have seen the job as lost: the
    # race of many workers' sweeps after a FLUSHALL, made certain instead of likely.
    url = postgres_url.replace("+psycopg", "")
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher:
        holder.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
        sweepers = [subprocess.Popen([sys.executable, "-c", SWEEP], cwd=REPO, env=settings_env(settings),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(SWEEPERS)]
        try:
            wait_for(lambda: watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()[0] >= SWEEPERS or any(p.poll() is not None for p in sweepers), 120,
                "every sweeper to reach the lost job")
        finally:
            holder.commit()
            for proc in sweepers:
                out, _ = proc.communicate(timeout=120)
                assert proc.returncode == 0, out.decode(errors="replace")
    assert messages(redis_url) == 1
    assert db.job(job_id).enqueued_at > before
    # The next interval has not passed: sweeping again sends nothing.
    subprocess.run([sys.executable, "-c", SWEEP], cwd=REPO, env=settings_env(settings), check=True, timeout=120)
    assert messages(redis_url) == 1
    db.close()
