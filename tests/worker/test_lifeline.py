"""A pool process forked by a thread of the worker's main process ends with that process, not with
the thread (worker.lifeline): billiard's threaded pool forks replacements from its supervisor
thread, which ends when a warm shutdown closes the pool."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.faults import gone, wait_for
from tests.support.settings import REPO

pytestmark = [pytest.mark.subprocess,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")]

# The worker's main process, in small: a thread forks a child that sets Celery's parent-death signal
# (and, with "lifeline", calls worker.lifeline as the pool process does); the thread ends; the child
# is asked whether it is alive; then this process is SIGKILLed.
MAIN = r"""
import os, select, signal, sys, threading
from billiard.util import set_pdeathsig
from worker import lifeline

mode = sys.argv[1]
lifeline.install()
ping_r, ping_w = os.pipe()
pong_r, pong_w = os.pipe()
forked = {}

def fork():
    pid = os.fork()
    if pid == 0:
        set_pdeathsig(signal.SIGKILL)  # as Celery's pool process initializer does
        watched = lifeline.outlive_forking_thread() if mode != "celery" else False
        os.write(pong_w, b"w" if watched else b"k")
        while os.read(ping_r, 1):
            os.write(pong_w, b"!")
        os._exit(0)
    forked["pid"] = pid
    forked["watched"] = os.read(pong_r, 1) == b"w"  # the child is set up before this thread ends
    forked["tid"] = threading.get_native_id()
    os.close(ping_r)
    os.close(pong_w)  # the child's end only: its death reads as the end of the pipe

if mode == "main":
    fork()
else:
    thread = threading.Thread(target=fork)
    thread.start()
    thread.join()
while os.path.exists(f"/proc/self/task/{forked['tid']}") and forked["tid"] != os.getpid():
    select.select([], [], [], 0.01)  # the OS thread is gone, so the kernel has sent its signal
try:
    os.write(ping_w, b"?")
except BrokenPipeError:  # the child is dead
    pass
ready, _, _ = select.select([pong_r], [], [], 60)  # a bound for a broken child, not a timing
alive = os.read(pong_r, 1) == b"!" if ready else None
print(forked["pid"], forked["watched"], alive, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def run_main(mode: str) -> tuple[int, bool, bool | None]:
    """(child's pid, whether it watches its parent, alive: True answered, False its pipe closed
    (dead), None no answer within the bound)."""
    done = subprocess.run([sys.executable, "-c", MAIN, mode], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    pid, watched, alive = done.stdout.split()
    return int(pid), watched == "True", {"True": True, "False": False, "None": None}[alive]


def test_the_kernel_ends_a_child_with_the_thread_that_forked_it():
    """Why worker.lifeline exists: Celery's signal alone, and a thread that ends."""
    pid, watched, alive = run_main("celery")
    assert (watched, alive) == (False, False)  # False, not None: its pipe closed, it did not just stay silent
    wait_for(lambda: gone(pid), 60, "the killed child to finish dying")  # its pipe closes before it is a zombie


def test_a_child_forked_by_a_thread_outlives_the_thread_and_ends_with_the_process():
    pid, watched, alive = run_main("lifeline")
    assert (watched, alive) == (True, True)
    wait_for(lambda: gone(pid), 60, "the child to end with its parent process")


def test_a_child_forked_by_the_main_thread_keeps_the_kernels_signal():
    pid, watched, alive = run_main("main")
    assert (watched, alive) == (False, True)
    wait_for(lambda: gone(pid), 60, "the child to end with its parent process")
