"""The repository alone: a clone with nothing beside it runs the fast tier, and a bench that is
interrupted stops what it started."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import REPO


def _tingxie_processes(root: psutil.Process) -> list[psutil.Process]:
    found = []
    for proc in root.children(recursive=True):
        try:
            if "cli" in proc.cmdline() or proc.parent().pid != root.pid:
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_bench_stops_the_services_it_started(tmp_path, sig):
    log = open(tmp_path / "bench.log", "wb")
    bench = subprocess.Popen([sys.executable, "-m", "bench.service", "overhead", "--minutes", "0.2", "--rounds", "1"],
                             cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    root = psutil.Process(bench.pid)
    started: list[psutil.Process] = []
    deadline = time.monotonic() + 300
    # Wait until the web tier, the worker and the worker's pool process are all running.
    while time.monotonic() < deadline and bench.poll() is None:
        started = _tingxie_processes(root)
        commands = [" ".join(p.cmdline()) for p in started if p.is_running()]
        if any(" web" in c for c in commands) and sum(" worker" in c for c in commands) >= 1 and len(started) >= 3:
            break
        time.sleep(0.2)
    assert bench.poll() is None and len(started) >= 3, (tmp_path / "bench.log").read_text()
    bench.send_signal(sig)
    assert bench.wait(timeout=90) != 0
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, f"left running after {sig.name}: {[' '.join(p.cmdline()) for p in alive]}"
