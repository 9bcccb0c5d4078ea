"""A rolling upgrade on PostgreSQL + Redis: the previous release's web tier and two workers run a
stream of jobs; while they run, this release's migration is applied and its web tier started;
then each old worker is stopped (SIGTERM: it hands its running job back) and replaced by a worker
of this release, one at a time. No job is lost, none runs to completion twice, and an old worker
finishes a job it claimed after the migration: schema changes must be expand-then-contract.

The previous release is ``PREVIOUS``, a commit of this repository, run from ``git archive`` in a
folder of its own (its code on PYTHONPATH, the same virtual environment)."""
from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import bindparam, create_engine, text

from tests.support.settings import make_settings
from tests.support.service import REPO, Service, free_port, release_env, settings_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(1800)]

# The head of main before the deployment work of issue 22; move it forward with each release.
PREVIOUS = "b1f3314"


@pytest.fixture
def previous_release(tmp_path) -> Path:
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"],
                      capture_output=True).returncode != 0:
        pytest.skip(f"the previous release {PREVIOUS} is not in this checkout's git history")
    root = tmp_path / f"release-{PREVIOUS}"
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", PREVIOUS], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def _wait_for(what: str, check, timeout_s: float = 600):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"gave up waiting for {what}")


def test_rolling_upgrade_loses_and_repeats_nothing(tmp_path, postgres_url, redis_url, previous_release,
                                                   speech_path):
    from core.migrate import upgrade

    settings = make_settings(tmp_path / "host", database_url=postgres_url, broker_url=redis_url, job_lease_s=20.0)
    engine = create_engine(postgres_url)

    def rows(sql, **params):
        with engine.connect() as conn:
            return conn.execute(text(sql) if isinstance(sql, str) else sql, params).all()

    def running_on(node: str) -> str | None:
        found = rows("select id from jobs where worker = :node and status = 'running'", node=node)
        return found[0].id if found else None

    # The previous release migrates its database and starts, as it runs in production today.
    subprocess.run([sys.executable, "-m", "cli", "db", "upgrade"], cwd=previous_release, check=True,
                   env=release_env(settings_env(settings), previous_release))
    (tmp_path / "old-logs").mkdir()
    (tmp_path / "new-logs").mkdir()
    old = Service(settings=settings, log_dir=tmp_path / "old-logs", code=previous_release)
    new = Service(settings=dataclasses.replace(settings, port=free_port()), log_dir=tmp_path / "new-logs")
    audio = speech_path("jfk.flac")
    submitted: list[str] = []
    try:
        old.start_web()
        old_workers = [old.start_worker(), old.start_worker()]
        old_nodes = [f"tingxie-{p.pid}@{socket.gethostname()}" for p in old_workers]
        submitted += [old.submit(audio, language="en")["id"] for _ in range(4)]
        _wait_for("an old worker to run a job", lambda: any(running_on(n) for n in old_nodes))

        # This release's migration, applied under the running old release; then its web tier.
        upgrade(settings)
        after_migration = rows("select coalesce(max(id), 0) as id from job_events")[0].id
        new.start_web()
        old.stop_web()
        submitted += [new.submit(audio, language="en")["id"] for _ in range(3)]

        def old_ran_after_migration():
            return rows(text("select j.id from jobs j join job_events e on e.job_id = j.id "
                             "where j.status = 'done' and j.worker in :nodes and e.type = 'running' "
                             "and e.id > :mark").bindparams(bindparam("nodes", expanding=True)),
                        nodes=old_nodes, mark=after_migration)

        # The old workers keep running jobs on the new schema: one they claimed after it finishes.
        ran_on_new_schema = _wait_for("an old worker to finish a job claimed after the migration",
                                      old_ran_after_migration)

        # Each old worker in turn: a new one joins, the old one is stopped mid-job and hands it back.
        # Which worker takes which job is the broker's choice: while the old one is idle and nothing
        # waits in the queue, one more job is submitted, so it gets one whatever the others take.
        def busy_or_fed(node: str) -> str | None:
            job_id = running_on(node)
            if job_id is None and not rows("select id from jobs where status = 'queued'"):
                submitted.append(new.submit(audio, language="en")["id"])
            return job_id

        handed_back: list[str] = []
        for proc, node in zip(old_workers, old_nodes):
            new.start_worker()
            submitted += [new.submit(audio, language="en")["id"] for _ in range(2)]
            handed_back.append(_wait_for(f"{node} to be running a job", lambda: busy_or_fed(node)))
            old.stop_worker(proc)
        submitted += [new.submit(audio, language="en")["id"] for _ in range(2)]

        finished = {job_id: new.wait(job_id, timeout_s=900)["status"] for job_id in submitted}
        assert set(finished.values()) == {"done"}, finished
    finally:
        old.stop()
        new.stop()

    events = rows("select job_id, type, data, created_at from job_events order by id")
    dones = {job_id: sum(1 for e in events if e.job_id == job_id and e.type == "done") for job_id in submitted}
    transcripts = dict(rows("select job_id, count(*) from transcripts group by job_id"))
    lost = [job_id for job_id in submitted if dones[job_id] == 0 or transcripts.get(job_id, 0) == 0]
    duplicated = [job_id for job_id in submitted if dones[job_id] > 1 or transcripts.get(job_id, 0) > 1]
    assert not lost and not duplicated, (lost, duplicated)

    # What happened to the jobs running on the old workers when they were stopped.
    recover_s = []
    for job_id in handed_back:
        mine = [e for e in events if e.job_id == job_id]
        back = [i for i, e in enumerate(mine) if e.type == "queued" and "handed back" in (e.data.get("reason") or "")]
        if back:
            claimed = next(e for e in mine[back[0]:] if e.type in ("running", "done"))
            recover_s.append((claimed.created_at - mine[back[0]].created_at).total_seconds())
    workers_of = dict(rows("select id, worker from jobs"))
    engine.dispose()
    print(f"rolling upgrade {PREVIOUS} -> this checkout: {len(submitted)} jobs, lost {len(lost)}, duplicated "
          f"{len(duplicated)}; old workers ran {sum(workers_of[j] in old_nodes for j in submitted)} "
          f"({len(ran_on_new_schema)} claimed after the migration); {len(recover_s)} job(s) handed back, "
          f"taken again after {', '.join(f'{s:.1f}' for s in recover_s) or '-'} s")
    assert ran_on_new_schema
    # A job handed back went on elsewhere, or the old worker's own result stood (still the latest attempt).
    assert all(dones[job_id] == 1 for job_id in handed_back)

