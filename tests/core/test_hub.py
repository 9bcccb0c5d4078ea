"""The process's one event hub (core.hub) on both backends: the database sweep alone (the embedded
default) and Redis. ``events`` yields a job's history then its live events, in order, up to its end;
``wait_for_end`` answers with the terminal event. The web tier's use of it: tests/web/test_waits.py;
one subscription for 200 waiting calls: the same file, against a running web tier."""
from __future__ import annotations

import asyncio
import contextlib
import time

from core import jobs
from core.db import session_scope
from core.hub import EventHub
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


def test_the_hub_sees_many_jobs_end(db, any_settings):
    """Waits with no time limit (the gateway's): each gets its job's terminal event, and nothing
    stays watched once they are answered."""
    ids = [_new_job(db) for _ in range(5)]

    async def main() -> list[str]:
        hub = EventHub(db, any_settings.events_url, sweep_s=0.2)
        await hub.start()
        try:
            waits = [asyncio.create_task(hub.wait_for_end(job_id)) for job_id in ids]
            while hub.watched_jobs < 5:
                await asyncio.sleep(0.05)
            for job_id in ids[:4]:
                await asyncio.to_thread(_run_job, db, job_id, 0.0)
            with session_scope(db) as session:
                jobs.cancel(session, ids[4])
            ends = await asyncio.wait_for(asyncio.gather(*waits), 60)
            assert hub.watchers == 0 and hub.watched_jobs == 0  # nothing kept for jobs no one waits on
            return [end["type"] for end in ends]
        finally:
            await hub.close()

    assert asyncio.run(main()) == ["done"] * 4 + ["canceled"]


def test_a_jobs_events_in_order_up_to_its_end(db, any_settings):
    """``async for event in hub.events(job_id)``: the history first, then each event as it is
    committed, the terminal one last; a consumer that stops early leaves no watch behind."""
    job_id, other = _new_job(db), _new_job(db)

    async def main() -> list[str]:
        hub = EventHub(db, any_settings.events_url)
        await hub.start()
        try:
            async def follow() -> list[str]:
                return [event["type"] async for event in hub.events(job_id)]

            following = asyncio.create_task(follow())
            while hub.watchers == 0:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(_run_job, db, job_id, 0.0)
            seen = await asyncio.wait_for(following, 60)

            async with contextlib.aclosing(hub.events(other)) as stream:
                async for event in stream:
                    assert event["type"] == "queued"
                    break
            assert hub.watchers == 0
            return seen
        finally:
            await hub.close()

    assert asyncio.run(main()) == ["queued", "running", "progress", "progress", "progress", "done"]
