"""Ending a worker process whose attempt is stuck kills what it started too."""
from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from tests.support.settings import REPO

pytestmark = pytest.mark.subprocess


# A process that starts a child in a session of its own (as ffmpeg is started), which starts a
# grandchild; kill_child_groups must take both.
SCRIPT = """
import subprocess, sys, time
from worker.attempt import kill_child_groups
leader = subprocess.Popen(["bash", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE, text=True,
                          start_new_session=True)
grandchild = int(leader.stdout.readline())
print(leader.pid, grandchild, flush=True)
kill_child_groups()
leader.wait()
"""


def test_kill_child_groups_takes_the_whole_group():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    leader, grandchild = (int(x) for x in proc.stdout.split())
    deadline = time.monotonic() + 10
    while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the grandchild outlived its group"
        time.sleep(0.1)
