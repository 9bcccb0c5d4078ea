"""Loading a worker's models without racing Celery's start-up timeout, and without a tight loop
when loading kills the process.

Celery kills a prefork pool process that has not reported ready within
``worker_proc_alive_timeout`` (4 s by default), and a pool process reports ready only after its
``worker_process_init`` handlers return. Models that load in such a handler lose that race on a
loaded machine, and every replacement process loses it again. So a pool process reports ready at
once and loads its models in a thread (:func:`load_in_background`); a job that arrives meanwhile
waits for the load before it claims its job, so a slow load costs the job nothing.

A load that kills its process (out of memory, a crashing native library) would make the pool fork
a replacement that dies the same way, again and again. :class:`LoadGuard`, made in the worker's
main process before the pool forks, is shared by the pool's processes: each records that it is
loading, and a process that finds a recorded loader dead waits before loading, 1, 2, 4 ... up to
:data:`MAX_BACKOFF_S` seconds as such deaths repeat.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time

log = logging.getLogger("tingxie.worker")

MAX_BACKOFF_S = 60.0


class LoadGuard:
    """Shared memory for the pool's processes: who is loading, and how many loads in a row died."""

    def __init__(self, slots: int):
        ctx = multiprocessing.get_context("fork")
        self._lock = ctx.Lock()
        self._pids = ctx.RawArray("i", max(1, slots))
        self._deaths = ctx.RawValue("i", 0)

    def before_load(self) -> float:
        """Record this process as loading; return how long it should wait first."""
        with self._lock:
            for i, pid in enumerate(self._pids):
                if pid and not _alive(pid):
                    self._deaths.value += 1
                    self._pids[i] = 0
            for i, pid in enumerate(self._pids):
                if pid == 0:
                    self._pids[i] = os.getpid()
                    break
            deaths = self._deaths.value
        return backoff_s(deaths)

    def after_load(self) -> None:
        """The load ended without killing the process (a load that raised counts as ended)."""
        with self._lock:
            for i, pid in enumerate(self._pids):
                if pid == os.getpid():
                    self._pids[i] = 0
            self._deaths.value = 0

    @property
    def deaths(self) -> int:
        return self._deaths.value


def backoff_s(deaths: int) -> float:
    """The wait before a load after ``deaths`` loads in a row died: 0, 1, 2, 4 ... MAX_BACKOFF_S."""
    return 0.0 if deaths <= 0 else min(MAX_BACKOFF_S, 2.0 ** (deaths - 1))


def guarded(guard: LoadGuard | None, load):
    """``load()``, waiting first if earlier loads died (see :class:`LoadGuard`)."""
    if guard is None:
        return load()
    delay = guard.before_load()
    if delay:
        log.warning("%d model load(s) in a row ended with their process dying; waiting %.0f s before loading again",
                    guard.deaths, delay)
        time.sleep(delay)
    try:
        return load()
    finally:
        guard.after_load()


def load_in_background(load) -> threading.Thread:
    """Run ``load()`` in a thread, logging a failure (a job that needs the models then fails with
    the load's error, naming what to do)."""

    def run() -> None:
        try:
            load()
        except Exception:
            log.exception("loading the models failed; jobs that need them will fail until it is fixed")

    thread = threading.Thread(target=run, name="tingxie-model-load", daemon=True)
    thread.start()
    return thread


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a dead child its parent has not reaped yet
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
