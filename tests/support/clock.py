"""What the clock tests and bench/faults.py share: a process whose wall clock is off (the
LD_PRELOAD library built from tests/support/clockshift.c), and a way to know that a worker's
sweeper has run (a "lost" job that each of its sweeps re-sends and logs)."""
from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from core.db import session_scope
from core.models import Job, utcnow
from tests.support.faults import wait_for

SHIM = Path(__file__).resolve().parent / "clockshift.c"


def build_shim(folder: Path) -> Path:
    """The clock-shift library, compiled with the system C compiler into ``folder``."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler to build tests/support/clockshift.c: apt-get install gcc")
    library = folder / "clockshift.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(SHIM), "-ldl"], check=True,
                   capture_output=True, timeout=120)
    return library


def stepped(library: Path, seconds: float) -> dict[str, str]:
    """The environment of a process whose wall clock reads ``seconds`` from the truth (its
    monotonic clock, and so its sleeps and timeouts, stay true)."""
    return {"LD_PRELOAD": str(library), "CLOCKSHIFT_S": str(int(seconds))}


def canary(db, job_id: str) -> None:
    """A queued job whose message is "lost" (sent two days ago), of a profile no worker here
    consumes: each sweep that re-sends it logs so, which tells that a worker's sweeper has run."""
    with session_scope(db.factory) as session:
        session.add(Job(id=job_id, status="queued", profile="funasr", options={"language": "auto", "itn": True,
                        "hotwords": []}, filename="canary.wav", media_key=f"{job_id}/source.wav", size_bytes=1,
                        source="api", priority=0, progress=0.0, attempt=0, warnings=[], tenant="canary",
                        lost_attempts=0, created_at=utcnow(), enqueued_at=utcnow() - timedelta(days=2)))


def wait_sweeps(service, worker: str, db, job_id: str, count: int, timeout_s: float = 180) -> None:
    """Wait until ``worker``'s sweeper has re-sent the canary ``count`` times (it is made lost
    again after every re-send, whichever sweeper made it)."""
    def enough() -> bool:
        if service.log(worker).count(f"job {job_id} queued over") >= count:
            return True
        with session_scope(db.factory) as session:
            session.execute(update(Job).where(Job.id == job_id, Job.enqueued_at > utcnow() - timedelta(days=1))
                            .values(enqueued_at=utcnow() - timedelta(days=2)))
        return False

    wait_for(enough, timeout_s, f"{count} sweeps by {worker}", poll_s=0.5)
