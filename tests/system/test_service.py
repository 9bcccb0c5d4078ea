"""The whole path over HTTP with real web and worker processes, on the embedded default and on
PostgreSQL + Redis: submit, poll to done, fetch every format; crashes and bad files."""
from __future__ import annotations

import dataclasses
from pathlib import Path
import re
import subprocess
import time

import pytest
import requests
from sqlalchemy import func, select

from core.db import make_engine, make_sessionmaker, session_scope
from media import find_ffmpeg
from core.models import Job, Transcript

pytestmark = pytest.mark.slow


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_submit_poll_and_fetch_every_format(live_service, any_settings, speech_path):
    service = live_service(any_settings)
    jfk = service.submit(speech_path("jfk.flac"), language="en")
    zh = service.submit(speech_path("asr_example.mp3"), hotwords="达摩院 20")
    job = service.wait(jfk["id"], timeout_s=300)
    assert job["status"] == "done", job
    assert job["progress"] == 1.0 and job["duration_ms"] == 11000 and job["timings"]["running_s"] > 0
    base = f"{service.base_url}/api/v1/jobs/{jfk['id']}/transcript"
    data = requests.get(base).json()
    assert "ask not what your country can do for you" in " ".join(_words(data["text"]))
    assert data["language"] == "en" and data["duration_ms"] == 11000
    for segment in data["segments"]:
        assert 0 <= segment["start_ms"] <= segment["end_ms"] <= 11000
        starts = [w["start_ms"] for w in segment["words"]]
        assert starts == sorted(starts)
    txt = requests.get(base + "?format=txt").text
    srt = requests.get(base + "?format=srt").text
    vtt = requests.get(base + "?format=vtt").text
    assert "ask not" in txt.lower()
    assert re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n\S", srt)
    assert vtt.startswith("WEBVTT\n\n") and " --> " in vtt
    zh_job = service.wait(zh["id"], timeout_s=300)
    assert zh_job["status"] == "done", zh_job
    zh_text = requests.get(f"{service.base_url}/api/v1/jobs/{zh['id']}/transcript?format=txt").text
    assert "达摩院" in zh_text


def _make_long_speech(tmp_path, speech_path, repeats: int):
    out = tmp_path / "long.flac"
    subprocess.run(
        [find_ffmpeg(), "-v", "error", "-stream_loop", str(repeats - 1), "-i", str(speech_path("jfk.flac")),
         "-ac", "1", "-ar", "16000", str(out)],
        check=True,
    )
    return out


def test_kill_9_mid_job_is_delivered_again_and_completes_once(live_service, any_settings, speech_path, tmp_path):
    service = live_service(any_settings)
    long_file = _make_long_speech(tmp_path, speech_path, repeats=6)  # 66 s of speech: three 30-second windows
    job_id = service.submit(long_file, language="en")["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = service.job(job_id)
        if job["status"] == "running" and job["stage"] == "asr" and job["progress"] > 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"job never got going: {service.job(job_id)}")
    service.kill_worker(service.workers[0])
    service.start_worker()
    job = service.wait(job_id, timeout_s=400)
    assert job["status"] == "done", job
    assert job["attempt"] == 2
    engine = make_engine(any_settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            assert s.execute(select(func.count()).select_from(Transcript)).scalar_one() == 1
    finally:
        engine.dispose()
    data = requests.get(f"{service.base_url}/api/v1/jobs/{job_id}/transcript").json()
    assert data["segments"][-1]["end_ms"] > 60_000  # the second attempt covered the whole file
    assert data["text"].lower().count("fellow americans") >= 5


def test_bad_files_fail_their_job_and_the_worker_goes_on(live_service, settings, speech_path, tmp_path):
    service = live_service(settings)
    # A FLAC whose header promises 11 s but whose audio frames are garbage: passes the probe,
    # fails in the worker.
    good = speech_path("jfk.flac").read_bytes()
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(good[:8192] + bytes(range(256)) * 2000)
    bad_job = service.submit(corrupt)
    good_job = service.submit(speech_path("jfk.flac"))
    failed = service.wait(bad_job["id"])
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] in ("bad_media", "truncated_media") and len(failed["error"]["message"]) > 10
    done = service.wait(good_job["id"])
    assert done["status"] == "done"
    assert service.workers[0].poll() is None  # the same worker, still alive


def test_queued_jobs_survive_a_restart_of_the_embedded_service(live_service, settings, speech_path):
    first = live_service(settings, workers=0)
    job_id = first.submit(speech_path("jfk.flac"))["id"]
    first.stop()  # nothing consumed it: the message waits in the filesystem queue
    second = live_service(settings, workers=1)
    job = second.wait(job_id)
    assert job["status"] == "done" and job["attempt"] == 1


def test_a_threaded_worker_runs_jobs_side_by_side_on_one_model_set(live_service, any_settings, speech_path):
    """TINGXIE_WORKER_THREADS=3: one process, one model set, three jobs running at once."""
    settings = dataclasses.replace(any_settings, worker_threads=3)
    service = live_service(settings)
    ids = [service.submit(speech_path("jfk.flac"), language="en")["id"] for _ in range(3)]
    for job_id in ids:
        job = service.wait(job_id, timeout_s=300)
        assert job["status"] == "done", job
        text = requests.get(f"{service.base_url}/api/v1/jobs/{job_id}/transcript?format=txt").text
        assert "ask not what your country can do for you" in " ".join(_words(text))
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            spans = s.execute(select(Job.started_at, Job.finished_at).where(Job.id.in_(ids))).all()
    finally:
        engine.dispose()
    # Every job started before every other one finished: they ran side by side.
    assert max(start for start, _ in spans) < min(end for _, end in spans)
    log = service.log("worker0")
    assert "concurrency: 3 (thread)" in log
    assert log.count("loading the offline model set") == 1


def test_threads_and_several_processes_are_refused(settings):
    from worker.celery_app import run_worker

    with pytest.raises(ValueError, match="start more workers"):
        run_worker(dataclasses.replace(settings, worker_threads=4), concurrency=2)


def _process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a Celery worker's pool children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").iterdir():
            todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def test_an_offline_worker_without_speaker_jobs_never_loads_torch(live_service, settings, speech_path):
    """torch is installed here (the diarize extra), yet a worker that ran a job without speakers
    has no libtorch mapped in any of its processes: CTranslate2's converters imported it before."""
    service = live_service(settings)
    job = service.wait(service.submit(speech_path("jfk.flac"), language="en")["id"], timeout_s=300)
    assert job["status"] == "done", job
    pids = _process_tree(service.workers[0].pid)
    mapped = {pid: [line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                    if "libtorch" in line] for pid in pids}
    assert len(pids) >= 1 and not any(mapped.values()), mapped
