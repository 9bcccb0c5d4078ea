"""The deployment as an operator runs it: the real docker-compose.yml (with test doubles for the
third-party images, docker-compose.doubles.yml) started by Debian's docker-compose through podman's
Docker API, then used: a file uploaded to the published port is transcribed, FunASR's client is
answered on the published gateway port, a second worker takes over a job whose worker container was
killed, and jobs and transcripts survive `down` and `up`.

Run with `make test-containers` (building the images takes minutes; not part of `make test`)."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.images import REPO, build_all, podman
from tests.support.service import free_port

pytestmark = [pytest.mark.containers, pytest.mark.timeout(3600)]

HERE = Path(__file__).resolve().parent
FILES = ["-f", str(REPO / "docker-compose.yml"), "-f", str(HERE / "docker-compose.doubles.yml")]
JFK_TEXT = "ask not what your country can do for you"


class Stack:
    """One compose project on a private podman API socket."""

    def __init__(self, work: Path):
        self.work = work
        self.project = f"tx{uuid.uuid4().hex[:8]}"
        self.web_port, self.gateway_port = free_port(), free_port()
        self.socket = work / "podman.sock"
        self.env_file = work / "stack.env"
        self.service: subprocess.Popen | None = None
        self._healthchecks: threading.Thread | None = None
        self._stop = threading.Event()

    def start_engine(self) -> None:
        # A session of its own: a Ctrl-C of the test run must not stop the API before the teardown.
        self.service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
                                        stdout=subprocess.DEVNULL, stderr=open(self.work / "podman.log", "wb"),
                                        start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            assert time.monotonic() < deadline, (self.work / "podman.log").read_text()
            time.sleep(0.2)
        secrets = {line.split("=", 1)[0]: "x" + uuid.uuid4().hex for line in (REPO / ".env.example").read_text().splitlines()
                   if "CHANGE-ME" in line and "=" in line}
        lines = []
        for line in (REPO / ".env.example").read_text().splitlines():
            key = line.split("=", 1)[0]
            if key in secrets:
                line = f"{key}={secrets[key]}"
            elif key == "TINGXIE_WEB_PORT":
                line = f"{key}={self.web_port}"
            elif key == "TINGXIE_GATEWAY_PUBLISH":
                line = f"{key}={self.gateway_port}"
            lines.append(line)
        self.env_file.write_text("\n".join(lines) + "\n")

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ["PATH"], "DOCKER_HOST": f"unix://{self.socket}", "HOME": str(self.work),
               "COMPOSE_HTTP_TIMEOUT": "600"}
        done = subprocess.run(["docker-compose", "-p", self.project, "--env-file", str(self.env_file), *FILES, *args],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, (f"docker-compose {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n"
                                      + self.container_logs())
        return done

    def container_logs(self) -> str:
        """Each of the project's containers: its state and the end of its log (what a failed step said)."""
        out = []
        for name in self.containers(running=False):
            state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name, check=False).stdout.strip()
            log = podman("logs", "--tail", "25", name, check=False)
            out.append(f"--- {name} ({state})\n{(log.stdout + log.stderr)[-2500:]}")
        return "\n".join(out)

    def containers(self, service: str | None = None, running: bool = True) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        args = ["ps", "--format", "{{.Names}}", "--filter", label]
        if not running:
            args.insert(1, "-a")
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        return [n for n in podman(*args).stdout.split() if n]

    def _run_healthchecks(self) -> None:
        # No systemd here: podman runs a container's healthcheck only when asked, and compose's
        # service_healthy waits until someone does, as a timer would.
        while not self._stop.is_set():
            for name in self.containers():
                podman("healthcheck", "run", name, check=False, timeout=60)
            self._stop.wait(2)

    def keep_checking_health(self) -> None:
        self._healthchecks = threading.Thread(target=self._run_healthchecks, daemon=True)
        self._healthchecks.start()

    def healthy(self, service: str) -> bool:
        names = self.containers(service)
        return bool(names) and all(podman("healthcheck", "run", n, check=False, timeout=60).returncode == 0 for n in names)

    def wait_healthy(self, *services: str, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(self.healthy(s) for s in services):
            assert time.monotonic() < deadline, self.logs()
            time.sleep(2)

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60").stdout[-8000:]

    def close(self) -> None:
        self._stop.set()
        try:
            self.compose("down", "-v", "--remove-orphans", timeout=300)
        finally:
            # Whatever compose could not remove goes too: containers, volumes, the network.
            label = f"label=com.docker.compose.project={self.project}"
            for kind in ("container", "volume", "network"):
                names = podman(kind, "ls", "-a" if kind == "container" else "-q", "--filter", label, "-q",
                               check=False).stdout.split() if kind == "container" else \
                    podman(kind, "ls", "-q", "--filter", label, check=False).stdout.split()
                if names:
                    podman(kind, "rm", "-f", *names, check=False)
            if self.service is not None:
                self.service.terminate()
                self.service.wait(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    if shutil.which("docker-compose") is None or shutil.which("debootstrap") is None:
        pytest.fail("make test-containers needs podman, docker-compose and debootstrap (apt-get install them)")
    return build_all(tmp_path_factory.mktemp("images"))


@pytest.fixture
def stack(images, tmp_path):
    stack = Stack(tmp_path)
    stack.start_engine()
    yield stack
    stack.close()


def test_the_compose_stack_runs_and_is_used(stack, images, speech_path, tmp_path):
    from funasr_client import async_file_asr_stream

    print("image sizes (MiB):", json.dumps({k: round(v) for k, v in images.items()}))
    stack.keep_checking_health()
    stack.compose("up", "-d")  # migrate runs to completion first; web, gateway and worker after it
    stack.wait_healthy("web", "gateway", "worker")
    assert podman("inspect", "--format", "{{.State.ExitCode}}", stack.containers("migrate", running=False)[0]).stdout.strip() == "0"

    # A file uploaded to the published port is transcribed. The page's host is not loopback from
    # the container's side: the stack's first caller needs a token, as the README's compose section says.
    token = stack.compose("exec", "-T", "web", "tingxie", "tokens", "create", "--tenant", "ops").stdout.strip()
    requests_headers = {"Authorization": f"Bearer {token}"}
    with open(speech_path("jfk.flac"), "rb") as fh:
        answer = requests.post(stack.url + "/api/v1/jobs", files={"file": ("jfk.flac", fh)}, headers=requests_headers, timeout=120)
    assert answer.status_code == 202, answer.text
    first = answer.json()["id"]
    job = _wait(stack, first, requests_headers)
    assert job["status"] == "done", (job["error"], stack.container_logs())
    text = requests.get(f"{stack.url}/api/v1/jobs/{first}/transcript", headers=requests_headers, timeout=30).json()["text"]
    assert JFK_TEXT in text.lower().replace(",", "")

    # FunASR's client (funasr-client from PyPI, unchanged) on the published gateway port, over wss.
    async def offline() -> list[dict]:
        url = f"wss://127.0.0.1:{stack.gateway_port}/?token={token}"
        return [m async for m in async_file_asr_stream(speech_path("asr_example.wav"), url, mode="offline",
                                                       hotwords={"达摩院": 20})]
    messages = asyncio.run(offline())
    assert len(messages) == 1 and "达摩院" in messages[0]["text"], messages

    # Two workers; the one running a long job is killed: the job finishes on the other.
    stack.compose("up", "-d", "--no-recreate", "--scale", "worker=2")
    stack.wait_healthy("worker")
    assert len(stack.containers("worker")) == 2
    long_file = tmp_path / "long.wav"
    _concatenate(speech_path("jfk.flac"), long_file, times=12)
    with open(long_file, "rb") as fh:
        answer = requests.post(stack.url + "/api/v1/jobs", files={"file": ("long.wav", fh)}, headers=requests_headers, timeout=120)
    long_id = answer.json()["id"]
    _wait(stack, long_id, requests_headers, statuses=("running",), timeout_s=300)
    node = stack.compose("exec", "-T", "postgres", "psql", "-U", "tingxie", "-d", "tingxie", "-tAc",
                         f"SELECT worker FROM jobs WHERE id = '{long_id}'").stdout.strip()
    victim = [n for n in stack.containers("worker") if _hostname(n) and node.endswith("@" + _hostname(n))]
    assert len(victim) == 1, (node, stack.containers("worker"))
    podman("kill", "--signal", "KILL", victim[0])
    done = _wait(stack, long_id, requests_headers, timeout_s=900)
    assert done["status"] == "done" and done["attempt"] >= 2, (done, stack.container_logs())

    # down and up again: the jobs and their transcripts are still there.
    stack.compose("down")
    stack.compose("up", "-d")
    stack.wait_healthy("web", "gateway", "worker")
    listed = requests.get(f"{stack.url}/api/v1/jobs", headers=requests_headers, timeout=30).json()
    assert {first, long_id} <= {j["id"] for j in listed["items"]}
    again = requests.get(f"{stack.url}/api/v1/jobs/{first}/transcript", headers=requests_headers, timeout=30).json()["text"]
    assert again == text


def _wait(stack: Stack, job_id: str, headers: dict, timeout_s: float = 600,
          statuses=("done", "failed", "canceled")) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = requests.get(f"{stack.url}/api/v1/jobs/{job_id}", headers=headers, timeout=30).json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, (job, stack.logs())
        time.sleep(0.5)


def _hostname(container: str) -> str:
    """A worker's Celery node is "tingxie-<pid>@<hostname>" (jobs.worker): its container's hostname."""
    return podman("inspect", "--format", "{{.Config.Hostname}}", container).stdout.strip()


def _concatenate(src: Path, dst: Path, times: int) -> None:
    from media import find_ffmpeg

    inputs = []
    for _ in range(times):
        inputs += ["-i", str(src)]
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", *inputs, "-filter_complex",
                    "".join(f"[{i}:a]" for i in range(times)) + f"concat=n={times}:v=0:a=1", "-ar", "16000", "-ac", "1",
                    str(dst)], check=True)
