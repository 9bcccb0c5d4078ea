"""What the fault tests and bench/faults.py share: the job as the database has it, waiting for a
condition, a worker's pool processes, an ffmpeg that hangs on demand, and a job whose message
was lost with the messages sent for it counted."""
from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import psutil
import redis
from sqlalchemy import func, select

from core.db import make_engine, make_sessionmaker, session_scope
from core.events import history
from core.models import Job, Transcript, utcnow
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
    """A prefork worker's pool processes (its Python children, not a media probe's fork server)."""
    return [p for p in psutil.Process(worker_pid).children()
            if "python" in p.name().lower() and "media._probe_zygote" not in " ".join(p.cmdline())]


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


# One sweep, as a worker's sweeper runs it, in a process of its own (settings from the environment).
SWEEP = "from core.settings import Settings; from worker.runtime import Runtime; Runtime(Settings.from_env()).sweep()"


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
