"""The event channel's listening side on both backends: ``AsyncJobWatcher`` sees jobs end through
the database sweep alone and through Redis (the web tier's hub: tests/web/test_waits.py)."""
from __future__ import annotations

import asyncio
import time

from core import events, jobs
from core.db import session_scope
from core.options import JobOptions


def _new_job(db) -> str:
    job_id = jobs.new_job_id()
    with session_scope(db) as session:
        jobs.create_job(session, job_id=job_id, media_key=f"{job_id}/source.wav", filename="a.wav", size_bytes=1,
                        duration_ms=None, options=JobOptions(profile="offline"))
    return job_id


def _run_job(db, job_id: str, delay_s: float) -> None:
    time.sleep(delay_s)
    with session_scope(db) as session:
        attempt = jobs.claim(session, job_id)
    for fraction in (0.25, 0.5, 0.75):
        with session_scope(db) as session:
            jobs.report_progress(session, job_id, attempt, "asr", fraction)
    with session_scope(db) as session:
        jobs.complete(session, job_id, attempt, {"text": "", "language": "en", "duration_ms": 0, "segments": []})


def test_async_watcher_sees_many_jobs_end(db, any_settings):
    ids = [_new_job(db) for _ in range(5)]

    async def main() -> list[str]:
        watcher = events.AsyncJobWatcher(db, any_settings.events_url, sweep_s=0.2)
        await watcher.start()
        try:
            waits = [asyncio.create_task(watcher.wait_finished(job_id)) for job_id in ids]
            await asyncio.sleep(0.3)
            assert watcher.watched == 5
            for job_id in ids[:4]:
                await asyncio.to_thread(_run_job, db, job_id, 0.0)
            with session_scope(db) as session:
                jobs.cancel(session, ids[4])
            statuses = await asyncio.wait_for(asyncio.gather(*waits), 10)
            assert watcher.watched == 0  # nothing kept for jobs no one waits on
            return statuses
        finally:
            await watcher.close()

    assert asyncio.run(main()) == ["done"] * 4 + ["canceled"]
