"""``tingxie submit`` and ``tingxie jobs`` as a user runs them: real client processes against real
web and worker processes (the embedded default), real speech."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from media import find_ffmpeg
from tests.support.client import client_cli as tingxie
from tests.support.client import client_env
from tests.support.settings import REPO
from tests.support.service import free_port

JFK = "ask not what your country can do for you"
STAGES = ("decode", "vad", "asr", "punc", "itn")


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


def _progress(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_wait_writes_the_transcripts_and_reports_upload_then_every_stage(shared_service, speech_path, tmp_path):
    out = tmp_path / "out"
    done = tingxie("submit", str(speech_path("jfk.flac")), str(speech_path("asr_example.wav")), "--wait",
                   "--format", "srt", "-o", str(out), "--progress", "json", "--hotwords", "达摩院 20",
                   server=shared_service.base_url)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["asr_example.srt", "jfk.srt"]
    jfk = (out / "jfk.srt").read_text(encoding="utf-8")
    assert re.match(r"1\n00:00:00,\d{3} --> 00:00:\d\d,\d{3}\n\S", jfk) and JFK in _words(jfk)
    srt = (out / "asr_example.srt").read_text(encoding="utf-8")
    assert "欢迎大家来体验达摩院推出的语音识别模型" in srt.replace("\n", "")  # cues wrap long lines

    events = _progress(done.stderr)
    for name in ("jfk.flac", "asr_example.wav"):
        mine = [e for e in events if e["file"].endswith(name)]
        uploads = [e for e in mine if e["event"] == "upload"]
        sent = [e["sent_bytes"] for e in uploads]
        assert len(sent) >= 2 and sent == sorted(sent) and sent[-1] == uploads[-1]["total_bytes"]
        assert uploads[-1]["total_bytes"] > speech_path(name).stat().st_size  # the file and the form around it
        jobs = [e for e in mine if e["event"] == "job"]
        assert jobs and jobs[-1]["status"] == "done" and jobs[-1]["progress"] == 1.0
        assert mine.index(uploads[-1]) < mine.index(jobs[0])  # uploaded, then followed
        fractions = [e["progress"] for e in jobs]
        assert fractions == sorted(fractions)
        stages = [e["stage"] for e in jobs if e["status"] == "running"]
        # The stages a job passes through, in pipeline order; ASR is always seen (a stage that
        # lasts less than a heartbeat may be skipped).
        assert "asr" in stages and stages == sorted(stages, key=STAGES.index)
        assert [e["event"] for e in mine][-1] == "output"


@pytest.mark.slow
def test_one_file_goes_to_stdout_in_the_format_asked(shared_service, speech_path):
    as_json = tingxie("submit", str(speech_path("jfk.flac")), "--wait", "--format", "json", "--language", "en",
                      "--progress", "none", server=shared_service.base_url)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["language"] == "en" and data["duration_ms"] == 11000 and JFK in _words(data["text"])
    assert all(0 <= w["start_ms"] <= w["end_ms"] <= 11000 for s in data["segments"] for w in s["words"])
    txt = tingxie("submit", str(speech_path("asr_example.wav")), "--wait", "--no-itn", "--language", "zh",
                  server=shared_service.base_url)
    assert txt.returncode == 0, txt.stderr
    assert txt.stdout.strip().startswith("欢迎大家来体验")
    assert txt.stderr == ""  # no bar: stderr is not a terminal


@pytest.mark.slow
def test_without_wait_ids_are_printed_and_jobs_shows_them(shared_service, speech_path):
    submitted = tingxie("submit", str(speech_path("jfk.flac")), str(speech_path("asr_example.wav")),
                        server=shared_service.base_url)
    assert submitted.returncode == 0, submitted.stderr
    ids = submitted.stdout.split()
    assert len(ids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)

    as_json = tingxie("submit", str(speech_path("jfk.flac")), "--json", "--no-itn", "--profile", "offline",
                      server=shared_service.base_url)
    assert as_json.returncode == 0, as_json.stderr
    [item] = json.loads(as_json.stdout)
    assert item["file"].endswith("jfk.flac") and item["status"] == "queued" and item["error"] is None

    job = json.loads(tingxie("jobs", "get", item["id"], "--json", server=shared_service.base_url).stdout)
    assert job["id"] == item["id"] and job["filename"] == "jfk.flac" and job["options"]["itn"] is False
    shown = tingxie("jobs", "get", ids[1], server=shared_service.base_url)
    assert shown.returncode == 0 and re.search(r"^file: +asr_example\.wav \(\d+\.\d KiB, 0:06\)$", shown.stdout, re.M)

    listed = json.loads(tingxie("jobs", "list", "--json", "--per-page", "100", server=shared_service.base_url).stdout)
    assert {*ids, item["id"]} <= {j["id"] for j in listed["items"]}
    table = tingxie("jobs", "list", server=shared_service.base_url)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "LENGTH", "CREATED", "FILE"]
    assert any(line.startswith(ids[0]) and line.endswith("jfk.flac") for line in lines)
    assert re.fullmatch(r"page 1 of \d+, \d+ jobs", lines[-1])

    for job_id in (*ids, item["id"]):
        service_job = _wait_done(shared_service, job_id)
        assert service_job["status"] == "done"
    done = tingxie("jobs", "list", "--status", "done", "--per-page", "1", "--page", "2", "--json",
                   server=shared_service.base_url)
    page = json.loads(done.stdout)
    assert page["page"] == 2 and len(page["items"]) == 1 and page["items"][0]["status"] == "done"


def _wait_done(service, job_id: str, timeout_s: float = 300) -> dict:
    from cli.client import Client

    with Client(service.base_url) as client:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = client.get(job_id)
            if job["status"] in ("done", "failed", "canceled"):
                return job
            time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not end")


@pytest.mark.slow
def test_bad_files_exit_1_with_their_codes_and_the_good_one_is_written(shared_service, speech_path, tmp_path):
    not_media = tmp_path / "notes.mp3"
    not_media.write_text("not audio")
    # A FLAC whose header promises 11 s but whose frames are garbage: accepted, then the job fails.
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(speech_path("jfk.flac").read_bytes()[:8192] + bytes(range(256)) * 2000)
    out = tmp_path / "out"
    done = tingxie("submit", str(not_media), str(tmp_path / "missing.wav"), str(corrupt), str(speech_path("jfk.flac")),
                   "--wait", "-o", str(out), server=shared_service.base_url)
    assert done.returncode == 1, done.stderr
    assert re.search(r"notes\.mp3: .*not an audio or video file.* \[bad_media\]$", done.stderr, re.M)
    assert re.search(r"missing\.wav: no such file \[no_file\]$", done.stderr, re.M)
    assert re.search(r"corrupt\.flac: job [0-9a-f]{32} failed: .{10,} \[(bad_media|truncated_media)\]$", done.stderr, re.M)
    assert [p.name for p in out.iterdir()] == ["jfk.txt"]
    assert JFK in _words((out / "jfk.txt").read_text())


def _long_speech(tmp_path, speech_path, repeats: int = 12):
    out = tmp_path / "long.flac"
    subprocess.run([find_ffmpeg(), "-v", "error", "-stream_loop", str(repeats - 1), "-i",
                    str(speech_path("jfk.flac")), "-ac", "1", "-ar", "16000", str(out)], check=True)
    return out


@pytest.mark.slow
def test_cancel_a_job_a_waiting_submit_follows(shared_service, speech_path, tmp_path):
    long_file = _long_speech(tmp_path, speech_path)  # 132 s of speech
    # A funasr job on a service with an offline worker only: it waits, so it cannot end before the
    # cancel however slowly this test runs.
    waiting = subprocess.Popen(
        [sys.executable, "-m", "cli", "submit", str(long_file), "--profile", "funasr", "--wait", "--json",
         "-o", str(tmp_path / "out"), "--progress", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env=client_env(shared_service.base_url),
    )
    try:
        # The job id, from the first progress line once the upload is done.
        job_id = None
        for line in waiting.stderr:
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if event["event"] == "job" and event["status"] == "queued":
                job_id = event["job_id"]
                break
        assert job_id, "no job was made"
        canceled = tingxie("jobs", "cancel", job_id, server=shared_service.base_url)
        assert canceled.returncode == 0, canceled.stderr
        assert canceled.stdout == f"{job_id} canceled\n"
        stdout, stderr = waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()  # reaped and its pipes closed: a failure here leaks nothing into later tests
    assert waiting.returncode == 1
    [item] = json.loads(stdout)
    assert item["id"] == job_id and item["status"] == "canceled" and item["output"] is None
    assert any(e.get("code") == "canceled" for e in _progress(stderr))

    again = tingxie("jobs", "cancel", job_id, server=shared_service.base_url)
    assert again.returncode == 1 and f"job {job_id} is already canceled" in again.stderr
    assert again.stderr.rstrip().endswith("[not_cancelable]")
    assert tingxie("jobs", "get", job_id, "--json", server=shared_service.base_url).returncode == 0  # not deleted
    unknown = tingxie("jobs", "cancel", "0" * 32, server=shared_service.base_url)
    assert unknown.returncode == 1 and unknown.stderr.rstrip().endswith("[not_found]")


@pytest.mark.parametrize("command", [("submit", "x.wav"), ("jobs", "list"), ("jobs", "get", "abc"),
                                     ("jobs", "cancel", "abc")])
def test_an_unreachable_server_exits_3(command, tmp_path):
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    url = f"http://127.0.0.1:{free_port()}"
    args = [tmp_path / "x.wav" if a == "x.wav" else a for a in command]
    done = tingxie(*map(str, args), server=url, timeout_s=60)
    assert done.returncode == 3, done.stderr
    assert f"could not reach the tingxie server at {url}" in done.stderr


def test_usage_errors_exit_2(tmp_path, speech_path):
    jfk = str(speech_path("jfk.flac"))
    several = tingxie("submit", jfk, jfk, "--wait")
    assert several.returncode == 2 and "-o DIR" in several.stderr
    missing = tingxie("submit", jfk, "--hotwords", f"@{tmp_path / 'none.txt'}")
    assert missing.returncode == 2 and "bad --hotwords" in missing.stderr
    bad_url = tingxie("submit", jfk, "--server", "127.0.0.1:8000")
    assert bad_url.returncode == 2 and "http://" in bad_url.stderr
    unknown = tingxie("jobs", "list", "--status", "finished")
    assert unknown.returncode == 2


@pytest.mark.slow
def test_ctrl_c_leaves_the_job_going_and_names_it(shared_service, speech_path, tmp_path):
    import signal

    from cli.client import Client

    # A funasr job, and the shared service runs an offline worker only: the job cannot end before
    # the Ctrl-C, however slowly this test reads (a 132 s offline job once did, on a busy machine).
    waiting = subprocess.Popen(
        [sys.executable, "-m", "cli", "submit", str(_long_speech(tmp_path, speech_path)), "--profile", "funasr",
         "--wait", "--progress", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=client_env(shared_service.base_url),
    )
    try:
        job_id = next(e["job_id"] for e in map(json.loads, filter(lambda line: line.startswith("{"), waiting.stderr))
                      if e["event"] == "job" and e["status"] == "queued")
        waiting.send_signal(signal.SIGINT)
        _, stderr = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()  # reaped and its pipes closed: a failure here leaks nothing into later tests
    assert waiting.returncode == 130
    assert "interrupted; the jobs submitted go on on the server" in stderr
    assert re.search(rf"long\.flac: job {job_id} is queued$", stderr, re.M)
    with Client(shared_service.base_url) as client:
        assert client.get(job_id)["status"] == "queued"
        client.cancel(job_id)
