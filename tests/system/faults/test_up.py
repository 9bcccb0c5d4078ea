"""``tingxie up`` supervises its processes: a worker or gateway that dies is restarted (with
backoff, logged) while the web tier stays up."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from core.migrate import upgrade
from tests.support.faults import wait_for
from tests.support.service import REPO, settings_env
from tests.support.settings import make_settings

pytestmark = pytest.mark.slow


def _child(up: subprocess.Popen, command: str) -> psutil.Process | None:
    for proc in psutil.Process(up.pid).children():
        try:
            if proc.cmdline()[3:4] == [command]:
                return proc
        except psutil.NoSuchProcess:
            continue
    return None


def test_up_restarts_a_dead_worker_and_gateway_and_the_web_tier_stays_up(settings, sql, speech_path, tmp_path):
    upgrade(settings)
    log_path = tmp_path / "up.log"
    env = settings_env(settings) | {"TINGXIE_GATEWAY_CERTFILE": "0"}
    with open(log_path, "wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "cli", "up"], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://{settings.host}:{settings.port}"
    try:
        wait_for(lambda: _child(up, "worker") and _child(up, "gateway"), 60, "the children to start")
        wait_for(lambda: "loaded the offline model set" in log_path.read_text(), 120, "the worker's models")
        worker, gateway = _child(up, "worker"), _child(up, "gateway")
        worker.kill()  # the worker's pool process dies with it (parent-death signal)
        gateway.kill()
        web_answers = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            web_answers.append(requests.get(base + "/healthz", timeout=5).status_code)
            new = _child(up, "worker")
            if new is not None and new.pid != worker.pid:
                break
            time.sleep(0.2)
        assert set(web_answers) == {200}  # the web tier never went away
        wait_for(lambda: (_child(up, "gateway") or gateway).pid != gateway.pid, 10, "a new gateway")
        text = log_path.read_text()
        assert f"worker (pid {worker.pid}) died (signal SIGKILL)" in text and "restarting it in 1 s" in text
        assert f"gateway (pid {gateway.pid}) died (signal SIGKILL)" in text
        assert up.poll() is None
        with open(speech_path("jfk.flac"), "rb") as fh:
            job_id = requests.post(base + "/api/v1/jobs", files={"file": fh}, data={"language": "en"},
                                   timeout=60).json()["id"]
        wait_for(lambda: sql(settings).job(job_id).status == "done", 180, "a job on the restarted worker")
        assert sql(settings).transcripts(job_id) == 1
    finally:
        up.send_signal(signal.SIGINT)
        try:
            assert up.wait(timeout=40) == 0
        finally:
            if up.poll() is None:
                os.killpg(up.pid, signal.SIGKILL)


def test_ctrl_c_to_up_alone_the_moment_it_has_started_its_children_stops_them_all(tmp_path):
    """A Ctrl-C (SIGINT to `tingxie up` alone, as a process manager sends it) however early still
    stops every child. It is sent as soon as the last child is logged started; on another address
    `up` then still writes a sign-in link to the database for its banner, and before `up` caught
    Ctrl-C ahead of its children the signal fell in that time in every run."""
    settings = make_settings(tmp_path, preload_models=False)
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "cli", "up", "--host", "0.0.0.0", "--port", str(settings.port)],
                              cwd=REPO, env=settings_env(settings), stdout=subprocess.DEVNULL, stderr=log,
                              start_new_session=True)
    children: list[psutil.Process] = []
    try:
        with open(log_path, encoding="utf-8") as log:
            deadline = time.monotonic() + 60
            while len(children) < 3 and up.poll() is None and time.monotonic() < deadline:
                where = log.tell()
                line = log.readline()
                if not line.endswith("\n"):  # not written whole yet
                    log.seek(where)
                    time.sleep(0.005)
                    continue
                started = re.search(r"started (\w+) \(pid (\d+)\)", line)
                if started:
                    children.append(psutil.Process(int(started[2])))
        assert len(children) == 3, log_path.read_text()
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, log_path.read_text()
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left running: {[' '.join(child.cmdline()) for child in alive]}"
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
