"""What the fault tests and bench/faults.py share: the job as the database has it, waiting for a
condition, a worker's pool processes, and an ffmpeg that hangs on demand."""
from __future__ import annotations

import time
from pathlib import Path

import psutil
from sqlalchemy import func, select

from core.db import make_engine, make_sessionmaker, session_scope
from core.events import history
from core.models import Job, Transcript
from core.settings import Settings
from media import find_ffmpeg


class Sql:
    """The job as the database has it: what every fault test asserts on."""

    def __init__(self, settings: Settings):
        self.engine = make_engine(settings.database_url)
        self.factory = make_sessionmaker(self.engine)

    def job(self, job_id: str) -> Job:
        with session_scope(self.factory) as session:
            job = session.get(Job, job_id)
            session.expunge(job)
            return job

    def transcripts(self, job_id: str) -> int:
        with session_scope(self.factory) as session:
            return session.execute(
                select(func.count()).select_from(Transcript).where(Transcript.job_id == job_id)).scalar_one()

    def transcript(self, job_id: str) -> dict:
        with session_scope(self.factory) as session:
            return session.get(Transcript, job_id).data

    def events(self, job_id: str) -> list[dict]:
        with session_scope(self.factory) as session:
            return history(session, job_id)

    def close(self) -> None:
        self.engine.dispose()


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.1):
    """condition()'s first true value within ``timeout_s``; AssertionError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def pool_processes(worker_pid: int) -> list[psutil.Process]:
    """A prefork worker's pool processes (its Python children)."""
    return [p for p in psutil.Process(worker_pid).children() if "python" in p.name().lower()]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def hanging_ffmpeg(folder: Path) -> tuple[Path, Path, Path]:
    """``(script, flag, pids)``: an ffmpeg that hangs (with a child of its own, in its process
    group) when started while ``flag`` exists, else runs the real one; the pids of the children
    it started are appended to ``pids``. The flag exists at first."""
    flag, pids, script = folder / "hang", folder / "pids", folder / "ffmpeg"
    script.write_text(f"""#!/bin/bash
if [ -e {flag} ]; then sleep 3600 & echo $! >> {pids}; wait; exit 1; fi
exec {find_ffmpeg()} "$@"
""")
    script.chmod(0o755)
    flag.touch()
    return script, flag, pids


def started_pids(pids: Path) -> list[int]:
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []
