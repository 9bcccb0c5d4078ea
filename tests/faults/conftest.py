"""Fault injection against real processes: private Redis and PostgreSQL where a test stops,
restarts or flushes them, real workers killed, outcomes read from SQL."""
from __future__ import annotations

import time

import psutil
import pytest
from sqlalchemy import func, select

from core.db import make_engine, make_sessionmaker, session_scope
from core.events import history
from core.models import Job, Transcript
from core.settings import Settings
from tests.support.servers import PrivatePostgres, PrivateRedis


@pytest.fixture
def private_redis():
    server = PrivateRedis().start()
    yield server
    server.stop()


@pytest.fixture
def private_postgres():
    server = PrivatePostgres().start()
    yield server
    server.remove()


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
            return session.execute(select(func.count()).select_from(Transcript).where(Transcript.job_id == job_id)).scalar_one()

    def transcript(self, job_id: str) -> dict:
        with session_scope(self.factory) as session:
            return session.get(Transcript, job_id).data

    def events(self, job_id: str) -> list[dict]:
        with session_scope(self.factory) as session:
            return history(session, job_id)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def sql():
    opened: list[Sql] = []

    def open_(settings: Settings) -> Sql:
        opened.append(Sql(settings))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.1):
    """condition()'s first true value within ``timeout_s``; fails naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


def pool_processes(worker_pid: int) -> list[psutil.Process]:
    """A prefork worker's pool processes (its Python children)."""
    return [p for p in psutil.Process(worker_pid).children() if "python" in p.name().lower()]


@pytest.fixture(scope="session")
def long_speech(tmp_path_factory):
    """long_speech(minutes, language=None) -> a FLAC of real speech with pauses (bench.speech), built once."""
    from bench.speech import build_speech

    folder = tmp_path_factory.mktemp("long-speech")
    return lambda minutes, language=None: build_speech(minutes, out_dir=folder, language=language)


@pytest.fixture
def hanging_ffmpeg(tmp_path):
    """An ffmpeg that hangs (with a child of its own) when started while ``flag`` exists, else the
    real one; the pids of the children it started are appended to ``pids``."""
    from media import find_ffmpeg

    flag, pids, script = tmp_path / "hang", tmp_path / "pids", tmp_path / "ffmpeg"
    script.write_text(f"""#!/bin/bash
if [ -e {flag} ]; then sleep 3600 & echo $! >> {pids}; wait; exit 1; fi
exec {find_ffmpeg()} "$@"
""")
    script.chmod(0o755)
    flag.touch()
    return script, flag, pids


def started_pids(pids) -> list[int]:
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
