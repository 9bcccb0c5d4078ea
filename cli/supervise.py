"""What ``tingxie up`` does with its child processes: start them, and restart one that dies, after
a wait that doubles while it keeps dying soon after starting (1, 2, 4 ... 60 s). Every death and
restart is logged. One child dying never takes the others down: the web tier stays up while its
worker is restarted."""
from __future__ import annotations

import logging
import signal
import subprocess
import time
from dataclasses import dataclass, field

log = logging.getLogger("tingxie.up")

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
# A child that ran this long before dying is restarted after the first wait again.
STABLE_S = 60.0
STOP_TIMEOUT_S = 20.0


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff_s: float = FIRST_BACKOFF_S
    restart_at: float | None = None
    restarts: int = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv)
        self.started = time.monotonic()
        self.restart_at = None
        log.info("started %s (pid %d)", self.name, self.proc.pid)


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    poll_s: float = 0.5

    def add(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv)
        self.children.append(child)
        return child

    def start(self) -> None:
        for child in self.children:
            child.start()

    def check(self) -> None:
        """Notice deaths and make due restarts; call it every ``poll_s``."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    child.start()
                continue
            code = child.proc.poll() if child.proc is not None else None
            if code is None:
                continue
            ran_s = now - child.started
            if ran_s >= STABLE_S:
                child.backoff_s = FIRST_BACKOFF_S
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            log.warning("%s (pid %d) died (%s) after %.0f s; restarting it in %.0f s",
                        child.name, child.proc.pid, how, ran_s, child.backoff_s)
            child.restart_at = now + child.backoff_s
            child.backoff_s = min(MAX_BACKOFF_S, child.backoff_s * 2)

    def run(self, stopping) -> None:
        """Supervise until ``stopping()`` is true."""
        while not stopping():
            self.check()
            time.sleep(self.poll_s)

    def stop(self) -> None:
        """SIGTERM to every running child (a worker hands its jobs back), then wait; SIGKILL past
        STOP_TIMEOUT_S."""
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
