"""One re-sender: a job whose message was lost is sent again once per resend interval, whichever
of the sweepers (one per worker) sees it first; every other sweeper's guarded UPDATE matches
nothing. Several sweeper processes run at once on PostgreSQL and Redis; the messages that reach
the broker are counted."""
from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from core.migrate import upgrade
from tests.support.settings import make_settings
from tests.support.service import REPO, settings_env
from tests.support.faults import SWEEP, Sql, lost_job, messages, wait_for

pytestmark = pytest.mark.slow

SWEEPERS = 4


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
