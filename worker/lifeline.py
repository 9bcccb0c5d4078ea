"""A prefork pool process lives as long as the worker's main process, whichever thread forked it.

Celery's pool process initializer asks the kernel to SIGKILL the process when its parent dies
(``PR_SET_PDEATHSIG``). The kernel counts the parent as the *thread* that forked, not its process.
On a broker without an event loop (the embedded filesystem broker) Celery uses billiard's threaded
pool, whose supervisor thread forks every replacement process (after a pool process died: a job
stopped mid model call, a crash). That thread ends when a warm shutdown closes the pool, before the
pool is joined, so each replacement was SIGKILLed there, wherever it was: in a job the warm
shutdown should let finish, or reading the pool's shared task queue under its lock, which the main
process then waited for at exit, for ever.

So a pool process forked by another thread than the main one clears that signal and watches its
parent process instead, through a pidfd (Linux 5.3+), from a thread of its own; a process forked by
the main thread keeps the kernel's signal, which needs no Python to run.
"""
from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading

from billiard.util import set_pdeathsig

log = logging.getLogger("tingxie.worker")

_fork = threading.local()
_installed = False


def _before_fork() -> None:
    # Kept in the forking thread's locals, which the child inherits as its only thread's.
    _fork.from_main_thread = threading.current_thread() is threading.main_thread()


def install() -> None:
    """In the worker's main process, before its pool forks: note which thread forks each child."""
    global _installed
    if not _installed:
        os.register_at_fork(before=_before_fork)
        _installed = True


def forked_from_main_thread() -> bool:
    """In a child: whether the main thread of its parent forked it (True where unknown)."""
    return getattr(_fork, "from_main_thread", True)


def outlive_forking_thread() -> bool:
    """In a pool process, after Celery's initializer: if another thread than the main one forked
    this process, end it when the parent *process* ends instead of when that thread ends. Returns
    whether it did (False: forked by the main thread, or not Linux)."""
    if forked_from_main_thread() or not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return False
    parent = os.getppid()
    try:
        pidfd = os.pidfd_open(parent)
    except OSError:  # a kernel before 5.3, or a sandbox without the call: the thread-bound signal stays
        log.warning("cannot watch the worker's main process (pidfd_open); this pool process ends with "
                    "the thread that started it", exc_info=True)
        return False
    set_pdeathsig(0)
    if os.getppid() != parent:  # the parent died before the watch began
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_end_with, args=(pidfd,), name="tingxie-lifeline", daemon=True).start()
    return True


def _end_with(pidfd: int) -> None:
    select.select([pidfd], [], [])  # readable once the process has ended
    os.kill(os.getpid(), signal.SIGKILL)
