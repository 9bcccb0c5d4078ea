"""The repository alone: a clone with nothing beside it runs the fast tier, and a bench that is
interrupted stops what it started."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.support.settings import REPO


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


@pytest.mark.timeout(3600)
def test_a_clone_with_nothing_beside_it_runs_the_fast_tier(tmp_path):
    """`git clone` into an empty directory, then the fast tier (unit + component) from that clone
    alone: no path outside it (such as ../shared) may be read. The installed venv is reused (the
    install itself is what `make test` does on a fresh machine, and .ci/run runs that from nothing)."""
    alone = tmp_path / "alone"
    alone.mkdir()
    clone = alone / "tingxie"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=300)
    assert [p.name for p in alone.iterdir()] == ["tingxie"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINGXIE_", "PYTEST_"))}
    env["PYTHONPATH"] = str(clone)
    done = subprocess.run([sys.executable, "-m", "pytest", "-m", "unit or component", "-q", "-p", "no:cacheprovider",
                           "-n", "2", "--dist", "loadscope"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=3300)
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0 and " passed" in done.stdout.splitlines()[-1], tail
