"""Real tingxie processes for tests: web and worker started as the CLI starts them, on a given
Settings (passed through the environment, as in production)."""
from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from core.settings import Settings
from tests.support.settings import REPO



# The tier of the test being set up or run (tests/conftest.py sets it; None outside pytest, as in
# bench/): live processes are the system tier's.
running_tier: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's environment without its ``TINGXIE_*`` variables, plus ``settings`` as
    variables (``Settings.to_env``): what a process started on ``settings`` reads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    env.update(settings.to_env(), PYTHONUNBUFFERED="1")
    return env


def release_env(env: dict[str, str], code: Path) -> dict[str, str]:
    """``env`` for a process of the release whose source tree is ``code``: its code on the path,
    and only the ``TINGXIE_*`` settings that release knows (it refuses any other, as an operator's
    old workers would refuse a setting added by the next release)."""
    known = subprocess.run(
        [sys.executable, "-c", "from core.settings import _VARIABLES, CLIENT_VARIABLES;"
         "print(' '.join([v.name for v in _VARIABLES] + list(CLIENT_VARIABLES)))"],
        cwd=code, env={**env, "PYTHONPATH": str(code)}, capture_output=True, text=True, check=True,
    ).stdout.split()
    kept = {k: v for k, v in env.items()
            if not k.startswith("TINGXIE_") or k.startswith("TINGXIE_MODEL_") or k[len("TINGXIE_"):] in known}
    return {**kept, "PYTHONPATH": str(code)}


# Services with processes started: stopped when the Python process exits (a bench ended by Ctrl-C
# or SIGTERM while starting one, before its ``finally`` could know it), so none is left running.
_running: list["Service"] = []


def _stop_at_exit(service: "Service") -> None:
    if not _running:
        atexit.unregister(_stop_all)
        atexit.register(_stop_all)
    if not any(s is service for s in _running):
        _running.append(service)


def _stop_all() -> None:
    for service in list(_running):
        service.stop()


@dataclass
class Service:
    """A running web tier and worker. ``base_url`` for HTTP; ``kill_worker`` for crash tests."""

    settings: Settings
    log_dir: Path
    web: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    extra: list[subprocess.Popen] = field(default_factory=list)
    # Another release's source tree to run (a rolling upgrade's previous release); default this one.
    code: Path | None = None
    # Runs each process inside, e.g. ``ip netns exec HOST``: another host's network.
    web_prefix: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def _spawn(self, name: str, *args: str, settings: Settings | None = None,
               faults: tuple[str, ...] = (), env: dict[str, str] | None = None,
               prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        """``env``: more environment (a clock offset); ``prefix`` runs the command inside it (``ip
        netns exec HOST``; it must exec, so that the process started is the tingxie process)."""
        if running_tier not in (None, "system"):
            raise AssertionError(f"a {running_tier}-tier test started a live {name} process: live processes are "
                                 "the system tier (put the test under tests/system/, take live_service or "
                                 "shared_service, or mark it @pytest.mark.live)")
        _stop_at_exit(self)
        # faults: flags of tests.support.faulty_worker, which runs the command with them injected.
        command = ["tests.support.faulty_worker", *faults, "--"] if faults else ["cli"]
        environ = settings_env(settings or self.settings)
        if self.code is not None:
            environ = release_env(environ, self.code)
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child writes to its own copy
            return subprocess.Popen(
                [*prefix, sys.executable, "-m", *command, *args],
                cwd=self.code or REPO,
                env={**environ, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_web(self) -> None:
        self.web = self._spawn("web", "web", "--dev", prefix=self.web_prefix)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise RuntimeError(f"web exited: {self.log('web')}")
            try:
                if requests.get(self.base_url + "/readyz", timeout=10).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy starting
                pass
            time.sleep(0.2)
        raise RuntimeError(f"web did not become ready: {self.log('web')}")

    def start_worker(self, wait: bool = True, *args: str, settings: Settings | None = None,
                     faults: tuple[str, ...] = (), env: dict[str, str] | None = None,
                     prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        """A worker on the service's settings, or on ``settings`` (another host: its own data
        directory, profile...), with extra ``args`` (``--profiles funasr``), with ``faults``
        injected (tests.support.faulty_worker), with more environment (``env``: a clock offset), or
        run inside ``prefix`` (another host's network)."""
        name = f"worker{len(self.workers)}"
        proc = self._spawn(name, "worker", "--concurrency", "1", *args, settings=settings, faults=faults, env=env,
                           prefix=prefix)
        self.workers.append(proc)
        if wait:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited: {self.log(name)}")
                # Pool processes report ready first and load their models after ("loaded the ...").
                log = self.log(name)
                if " ready." in log and ("loaded the " in log or not self.settings.preload_models):
                    return proc
                time.sleep(0.2)
            raise RuntimeError(f"worker did not become ready: {self.log(name)}")
        return proc

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        """Another CLI process (e.g. the gateway) stopped with the service."""
        proc = self._spawn(name, *args)
        self.extra.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_worker(self, proc: subprocess.Popen) -> None:
        """SIGTERM, as an orchestrator stops a worker: Celery's warm shutdown."""
        proc.terminate()
        proc.wait(timeout=30)

    def stop_web(self) -> None:
        """SIGTERM the web tier, as an orchestrator replaces it."""
        self.web.terminate()
        self.web.wait(timeout=30)

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker's whole process group (parent and pool children), as a crash would."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def discard(self) -> None:
        """SIGKILL every process group, for a test that is over: what a warm shutdown would do is
        tested where it matters (stop_worker, the shutdown faults), and an idle worker on the
        embedded broker takes seconds to notice SIGTERM (Celery's blocking loop polls for 2 s)."""
        if any(s is self for s in _running):
            _running.remove(self)
        procs = [p for p in [self.web, *self.workers, *self.extra] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:  # exited since poll()
                    pass
        for proc in procs:
            proc.wait(timeout=30)

    def stop(self) -> None:
        if any(s is self for s in _running):
            _running.remove(self)
        procs = [p for p in [self.web, *self.workers, *self.extra] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()  # the parent alone: Celery's warm shutdown stops its own pool
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    # --- HTTP helpers -------------------------------------------------------------------
    def submit(self, path: Path, headers: dict | None = None, **form) -> dict:
        with open(path, "rb") as fh:
            response = requests.post(self.base_url + "/api/v1/jobs", files={"file": (Path(path).name, fh)},
                                     data=form, headers=headers, timeout=60)
        assert response.status_code == 202, response.text
        return response.json()

    def jobs(self, headers: dict | None = None) -> dict:
        return requests.get(f"{self.base_url}/api/v1/jobs?per_page=100", headers=headers, timeout=10).json()

    def job(self, job_id: str, headers: dict | None = None) -> dict:
        return requests.get(f"{self.base_url}/api/v1/jobs/{job_id}", headers=headers, timeout=10).json()

    def wait(self, job_id: str, timeout_s: float = 300, statuses=("done", "failed", "canceled"),
             headers: dict | None = None) -> dict:
        """``headers``: the caller's credentials (Authorization) where the service needs a token."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.job(job_id, headers)
            if job["status"] in statuses:
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s}s; worker log:\n"
                             + "\n".join(self.log(f"worker{i}")[-3000:] for i in range(len(self.workers))))
