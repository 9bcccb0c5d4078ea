"""The worker's announcement: a thread that keeps this process's row in ``workers`` fresh
(core.workers), so the web tier knows which profiles are served, and removes it on a clean stop."""
from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Callable

from core import workers
from core.db import session_scope
from worker.runtime import Runtime

log = logging.getLogger("tingxie.worker")


def node_name() -> str:
    """Celery's node name for this process, which is also its ``workers`` row id."""
    return f"tingxie-{os.getpid()}@{socket.gethostname()}"


class Announcer(threading.Thread):
    """Announces every :data:`core.workers.ANNOUNCE_S` from the worker's main process, whatever its
    pool is doing. ``collect`` returns the worker's metric samples to publish with each beat."""

    def __init__(self, runtime: Runtime, worker_id: str, collect: Callable[[], list | None] = lambda: None):
        super().__init__(name="tingxie-announcer", daemon=True)
        self.runtime, self.worker_id, self.collect = runtime, worker_id, collect
        self.stopped = threading.Event()

    def beat(self) -> None:
        settings = self.runtime.settings
        with session_scope(self.runtime.factory) as session:
            workers.announce(session, self.worker_id, hostname=socket.gethostname(),
                             profiles=settings.served_profiles, device=settings.device, metrics=self.collect())

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.beat()
            except Exception:  # the database may blip; the row only goes stale after several misses
                log.warning("could not announce this worker; will try again", exc_info=True)
            self.stopped.wait(workers.ANNOUNCE_S)

    def stop(self) -> None:
        """Stop announcing and remove the row: the web tier sees at once that this worker is gone."""
        self.stopped.set()
        self.join(timeout=5)
        try:
            with session_scope(self.runtime.factory) as session:
                workers.retire(session, self.worker_id)
        except Exception:
            log.warning("could not remove this worker's row; it goes stale in %.0f s", workers.ALIVE_S,
                        exc_info=True)
