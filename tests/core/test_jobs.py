"""The state machine on both backends: guarded transitions, attempts, stale-worker recovery."""
from datetime import timedelta

from sqlalchemy import select, update

from core import events, jobs
from core.db import session_scope
from core.models import Job, JobEvent, Transcript, utcnow
from core.options import JobOptions

TRANSCRIPT = {"text": "hi", "language": "en", "duration_ms": 1000, "segments": []}


def _new(db, job_id="a" * 32):
    with session_scope(db) as s:
        jobs.create_job(s, job_id=job_id, media_key=f"{job_id}/source.wav", filename="x.wav", size_bytes=1, duration_ms=None,
                        options=JobOptions(profile="offline"))
    return job_id


def test_claim_once_then_redelivery_is_a_no_op(db):
    job_id = _new(db)
    with session_scope(db) as s:
        assert jobs.claim(s, job_id) == 1
    with session_scope(db) as s:
        assert jobs.claim(s, job_id) is None  # running elsewhere
        assert jobs.complete(s, job_id, 1, TRANSCRIPT)
    with session_scope(db) as s:
        assert jobs.claim(s, job_id) is None  # done: left alone
        assert s.get(Job, job_id).status == "done"
        assert s.execute(select(Transcript)).scalars().one().text == "hi"


def test_stale_attempt_cannot_write(db):
    job_id = _new(db)
    with session_scope(db) as s:
        first = jobs.claim(s, job_id)
    # The first worker stops reporting; the sweeper hands the job out again.
    with session_scope(db) as s:
        s.execute(update(Job).values(heartbeat_at=utcnow() - timedelta(seconds=120)))
    with session_scope(db) as s:
        assert jobs.release_stale(s, lease_s=60) == [job_id]
    with session_scope(db) as s:
        second = jobs.claim(s, job_id)
    assert second == first + 1
    with session_scope(db) as s:
        assert not jobs.report_progress(s, job_id, first, "asr", 0.5)
        assert not jobs.complete(s, job_id, first, TRANSCRIPT)
        assert not jobs.fail(s, job_id, first, "x", "y")
        assert jobs.report_progress(s, job_id, second, "asr", 0.5)
        assert jobs.complete(s, job_id, second, TRANSCRIPT)
    with session_scope(db) as s:
        assert s.get(Job, job_id).attempt == 2
        assert len(s.execute(select(Transcript)).scalars().all()) == 1


def test_cancel_stops_a_running_worker_and_delete_needs_terminal(db):
    job_id = _new(db)
    with session_scope(db) as s:
        attempt = jobs.claim(s, job_id)
        assert not jobs.delete_job(s, job_id)
    with session_scope(db) as s:
        assert jobs.cancel(s, job_id)
    with session_scope(db) as s:
        assert not jobs.report_progress(s, job_id, attempt, "asr", 0.9)  # the worker learns it lost the job
        assert not jobs.cancel(s, job_id)
        assert jobs.delete_job(s, job_id)
    with session_scope(db) as s:
        assert s.get(Job, job_id) is None


def test_events_are_recorded_in_order(db):
    job_id = _new(db)
    with session_scope(db) as s:
        attempt = jobs.claim(s, job_id)
        jobs.report_progress(s, job_id, attempt, "asr", 0.5)
        jobs.fail(s, job_id, attempt, "bad_media", "not audio")
    with session_scope(db) as s:
        kinds = [e["type"] for e in events.history(s, job_id)]
        assert kinds == ["queued", "running", "progress", "failed"]
        assert s.execute(select(JobEvent).where(JobEvent.type == "failed")).scalar_one().data["error"]["code"] == "bad_media"


def test_stages_are_the_pipelines():
    """core names the stages a running job reports; the pipeline reports the same ones."""
    from pipeline.types import Stage

    assert [s.value for s in jobs.JobStage] == [s.value for s in Stage]
