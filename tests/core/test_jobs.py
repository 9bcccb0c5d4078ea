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


def _stale(db):
    with session_scope(db) as s:
        s.execute(update(Job).values(heartbeat_at=utcnow() - timedelta(seconds=120)))


def test_lost_attempts_are_capped_and_then_every_delivery_is_a_no_op(db):
    job_id = _new(db)
    for attempt in (1, 2):
        with session_scope(db) as s:
            assert jobs.claim(s, job_id) == attempt
        _stale(db)
        with session_scope(db) as s:
            assert jobs.release_stale(s, lease_s=60, max_attempts=3) == [job_id]
    with session_scope(db) as s:
        assert jobs.claim(s, job_id) == 3
    _stale(db)
    with session_scope(db) as s:
        assert jobs.release_stale(s, lease_s=60, max_attempts=3) == []  # failed, not re-sent
    with session_scope(db) as s:
        job = s.get(Job, job_id)
        assert (job.status, job.attempt, job.lost_attempts, job.error_code) == ("failed", 3, 3, "worker_lost")
        assert "3 attempts" in job.error_message and "TINGXIE_MAX_ATTEMPTS" in job.error_message
        assert jobs.claim(s, job_id) is None
        reasons = [e["data"].get("reason") for e in events.history(s, job_id) if e["type"] == "queued"]
        assert reasons == [None, "worker lost; retrying", "worker lost; retrying"]


def test_a_stalled_attempt_counts_as_lost_and_fails_with_timeout_at_the_cap(db):
    job_id = _new(db)
    with session_scope(db) as s:
        attempt = jobs.claim(s, job_id)
        assert jobs.end_stalled(s, job_id, attempt, stall_s=30, max_attempts=2) == "queued"
    with session_scope(db) as s:
        assert not jobs.end_stalled(s, job_id, attempt, stall_s=30, max_attempts=2)  # not running any more
        attempt = jobs.claim(s, job_id)
        assert jobs.end_stalled(s, job_id, attempt, stall_s=30, max_attempts=2) == "failed"
    with session_scope(db) as s:
        job = s.get(Job, job_id)
        assert (job.status, job.error_code, job.lost_attempts) == ("failed", "timeout", 2)
        assert "30 s" in job.error_message


def test_hand_back_returns_a_workers_running_jobs_without_counting_them(db):
    mine, other, queued = _new(db, "a" * 32), _new(db, "b" * 32), _new(db, "c" * 32)
    with session_scope(db) as s:
        first = jobs.claim(s, mine, worker="w1@host")
        jobs.claim(s, other, worker="w2@host")
    with session_scope(db) as s:
        assert jobs.hand_back(s, "w1@host") == [mine]
    with session_scope(db) as s:
        job = s.get(Job, mine)
        assert (job.status, job.lost_attempts, job.enqueued_at) == ("queued", 0, None)
        assert s.get(Job, other).status == "running" and s.get(Job, queued).status == "queued"
        # The old attempt can no longer report, but a result it finishes before anyone claims the job counts.
        assert not jobs.report_progress(s, mine, first, "asr", 0.5)
        assert jobs.complete(s, mine, first, TRANSCRIPT)
    with session_scope(db) as s:
        assert s.get(Job, mine).status == "done"


def test_a_result_from_a_fenced_out_attempt_is_refused(db):
    job_id = _new(db)
    with session_scope(db) as s:
        first = jobs.claim(s, job_id, worker="w1@host")
        jobs.hand_back(s, "w1@host")
    with session_scope(db) as s:
        assert jobs.claim(s, job_id) == first + 1
        assert not jobs.complete(s, job_id, first, TRANSCRIPT)


def test_lost_messages_are_queued_jobs_sent_long_ago(db):
    sent, fresh, never = _new(db, "a" * 32), _new(db, "b" * 32), _new(db, "c" * 32)
    with session_scope(db) as s:
        jobs.mark_enqueued(s, sent)
        jobs.mark_enqueued(s, fresh)
        s.execute(update(Job).where(Job.id == sent).values(enqueued_at=utcnow() - timedelta(seconds=600)))
    with session_scope(db) as s:
        assert jobs.lost_messages(s, older_than_s=300) == [sent]  # never-sent jobs are the unsent path's
        jobs.mark_enqueued(s, sent)
    with session_scope(db) as s:
        assert jobs.lost_messages(s, older_than_s=300) == []


def test_batches_are_kept_only_by_the_owning_attempt_and_go_when_the_job_ends(db):
    job_id = _new(db)
    with session_scope(db) as s:
        attempt = jobs.claim(s, job_id)
        assert jobs.save_batch(s, job_id, attempt, "k1", {"v": 1, "spans": []})
        assert jobs.save_batch(s, job_id, attempt, "k1", {"v": 1, "spans": []})  # the same batch twice: kept once
        assert not jobs.save_batch(s, job_id, attempt + 1, "k2", {"v": 1, "spans": []})
    with session_scope(db) as s:
        assert list(jobs.finished_batches(s, job_id)) == ["k1"]
        assert jobs.complete(s, job_id, attempt, TRANSCRIPT)
    with session_scope(db) as s:
        assert jobs.finished_batches(s, job_id) == {}


def test_queued_jobs_of_a_profile_no_worker_served_fail_no_worker(db):
    """A queued offline job older than the window, with no offline worker seen in it, fails
    no_worker; a funasr job whose worker announced is left alone, as is a fresh job and a job a
    worker claimed."""
    from core import workers
    from core.models import WorkerRecord

    old, served, fresh, claimed = ("%s" % c * 32 for c in "abcd")
    for job_id, profile in ((old, "offline"), (served, "funasr"), (fresh, "offline"), (claimed, "offline")):
        with session_scope(db) as session:
            jobs.create_job(session, job_id=job_id, media_key=f"{job_id}/a.wav", filename="a.wav", size_bytes=1,
                            duration_ms=None, options=JobOptions(profile=profile))
    with session_scope(db) as session:
        session.execute(update(Job).where(Job.id.in_([old, served, claimed]))
                        .values(created_at=utcnow() - timedelta(seconds=120)))
        workers.announce(session, "w-funasr", hostname="h", profiles=("funasr",), device="cpu")
        # An offline worker that was last seen long ago does not count.
        session.add(WorkerRecord(id="w-old", hostname="h", profiles=["offline"], device="cpu",
                                 started_at=utcnow() - timedelta(hours=1), seen_at=utcnow() - timedelta(seconds=300)))
    with session_scope(db) as session:
        jobs.claim(session, claimed)
    with session_scope(db) as session:
        assert workers.fail_unserved(session, 60.0, ("offline", "funasr")) == [old]
    with session_scope(db) as session:
        job = session.get(Job, old)
        assert job.status == "failed" and job.error_code == "no_worker"
        assert "tingxie worker --profiles offline" in job.error_message
        assert {session.get(Job, j).status for j in (served, fresh)} == {"queued"}
        assert session.get(Job, claimed).status == "running"
        assert workers.served_within(session, 60.0) == {"funasr"}
