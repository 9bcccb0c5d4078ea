"""Upload spool files (work/uploads/*.part) and job scratch folders are not left behind: removed
when the web tier starts and by the sweeper once nobody holds them, and by age (a failed upload
removes its own: tests/web/test_api.py)."""
from __future__ import annotations

import dataclasses
import fcntl
import os
import time

from core import storage
from core.migrate import upgrade
from web import create_app
from worker.runtime import Runtime


def _spool_file(settings, name: str, age_s: float):
    path = storage.upload_spool_dir(settings) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 100)
    os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def test_the_web_tier_removes_spool_files_nobody_holds_when_it_starts(settings):
    upgrade(settings)
    orphan = _spool_file(settings, "upload-orphan.part", age_s=120)  # its web process died mid-upload
    recent = _spool_file(settings, "upload-recent.part", age_s=1)  # may be on its way into storage
    held = _spool_file(settings, "upload-held.part", age_s=120)  # another web process is receiving it
    with open(held, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        app = create_app(settings, {"TESTING": True})
        app.extensions["tingxie"].close()
        assert not orphan.exists() and recent.exists() and held.exists()


def test_the_sweeper_removes_stale_spool_files_and_scratch_folders_of_ended_jobs(settings):
    old = dataclasses.replace(settings, spool_max_age_s=60)
    upgrade(old)
    held = _spool_file(old, "upload-stuck.part", age_s=300)  # held, but not written for 5 minutes
    scratch = storage.job_work_dir(old, "f" * 32) / "attempt-1"
    scratch.mkdir(parents=True)
    (scratch / "decoded.s16le").write_bytes(b"\0" * 100)
    with open(held, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        Runtime(old).tidy()
    assert not held.exists()
    assert not scratch.parent.exists()  # no such job: its worker was killed and the job deleted

