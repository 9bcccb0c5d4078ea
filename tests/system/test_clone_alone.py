"""The repository alone: a clone with nothing beside it collects every test and runs the ones that
read the repository, and a bench that is interrupted stops what it started."""
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
    with open(tmp_path / "bench.log", "wb") as log:  # the child writes to its own copy
        bench = subprocess.Popen([sys.executable, "-m", "bench.service", "overhead", "--minutes", "0.2",
                                  "--rounds", "1"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
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


# The tests that read repository files by path (compose files, manifests, the README, the source
# tree, the real speech): what a path outside the clone would break.
READ_THE_REPOSITORY = ("tests/test_boundaries.py", "tests/test_compose.py", "tests/test_kubernetes.py",
                       "tests/pipeline/test_options.py", "tests/worker/test_attempt.py",
                       "tests/media/test_probe.py::test_real_speech")  # the real speech, by path


def _this_run_checks_it(session: pytest.Session) -> bool:
    """This run is itself the check: it runs in a clone with nothing beside it (what `.ci/run`
    makes) and runs every test that reads the repository, so a path outside the clone fails it."""
    alone = [p.name for p in REPO.parent.iterdir()] == [REPO.name] and (REPO / ".git").exists()
    ids = [item.nodeid for item in session.items]
    return alone and all(any(i.startswith(r) for i in ids) for r in READ_THE_REPOSITORY)


@pytest.mark.timeout(1800)  # two pytest runs; minutes on a busy machine
def test_a_clone_with_nothing_beside_it_collects_every_test_and_runs_those_that_read_the_repository(request, tmp_path):
    """`git clone` into an empty directory, then from that clone alone: every test module is
    collected (each import and module-level path resolved in the clone), and the tests that read
    repository files by path run. No path outside the clone (such as ../shared)
    may be read. The whole suite from a clone with nothing beside it is what `.ci/run` does (it
    clones HEAD into an empty directory first), so this check, in every `make test`, stays narrow.
    The installed venv is reused. Skipped where this run already is that check (`.ci/run`): a
    module that does not collect, or a test that reads outside the clone, fails this run itself."""
    if _this_run_checks_it(request.session):
        pytest.skip("this run is itself in a clone with nothing beside it, and runs the tests that read the repository")
    alone = tmp_path / "alone"
    alone.mkdir()
    clone = alone / "tingxie"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=300)
    assert [p.name for p in alone.iterdir()] == ["tingxie"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINGXIE_", "PYTEST_"))}
    env["PYTHONPATH"] = str(clone)
    pytest_ = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    # Every module is collected, then the tests that read the repository run.
    for args, said in ((["--collect-only"], " collected"), (["-m", "unit or component", *READ_THE_REPOSITORY], " passed")):
        done = subprocess.run([*pytest_, *args], cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
        tail = done.stdout[-3000:] + done.stderr[-2000:]
        assert done.returncode == 0 and said in done.stdout.splitlines()[-1], tail
        assert " error" not in done.stdout.splitlines()[-1], tail
