"""The model-load guard shared by a prefork pool's processes, with real forked processes."""
from __future__ import annotations

import os

from worker.startup import MAX_BACKOFF_S, LoadGuard, backoff_s


def test_backoff_doubles_and_is_capped():
    assert [backoff_s(n) for n in range(8)] == [0, 1, 2, 4, 8, 16, 32, MAX_BACKOFF_S]
    assert backoff_s(100) == MAX_BACKOFF_S


def _fork(body) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_a_loader_that_died_makes_the_next_one_wait_and_a_finished_load_resets_it():
    guard = LoadGuard(slots=4)
    _fork(guard.before_load)  # began loading, then died without after_load
    assert guard.before_load() == 1.0 and guard.deaths == 1
    guard.after_load()  # this one finished
    assert guard.deaths == 0
    _fork(guard.before_load)
    _fork(guard.before_load)
    assert guard.before_load() == 2.0  # two in a row
    guard.after_load()


def test_a_loader_still_loading_is_not_counted():
    guard = LoadGuard(slots=4)
    # One pipe each way: a child reading the pipe it writes could take back its own byte.
    started_r, started_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        guard.before_load()
        os.write(started_w, b"x")
        os.read(release_r, 1)  # loading until the test lets it go
        guard.after_load()
        os._exit(0)
    os.read(started_r, 1)
    try:
        assert guard.before_load() == 0.0
    finally:
        os.write(release_w, b"x")
        os.waitpid(pid, 0)
        for fd in (started_r, started_w, release_r, release_w):
            os.close(fd)
