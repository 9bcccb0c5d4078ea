"""What every process of the service holds once: settings, the database, the queue client.

The web tier, the gateway and the worker each build one :class:`Services` at start-up (never at
import) and hand it to the code that needs it, so "submit a job" or "enqueue a job" is the same
call whichever door or process makes it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core import jobs, storage
from core.db import make_engine, make_sessionmaker, session_scope
from core.queue import QueueClient
from core.settings import Settings
from core.storage import MediaStore, open_store

log = logging.getLogger("tingxie")


@dataclass
class Services:
    settings: Settings
    engine: Engine
    db: sessionmaker[Session]
    queue: QueueClient
    # Where uploads are kept (a directory or object storage); connects on first use.
    store: MediaStore

    @classmethod
    def start(cls, settings: Settings) -> "Services":
        storage.ensure_dirs(settings)
        engine = make_engine(settings.database_url)
        return cls(settings, engine, make_sessionmaker(engine, settings.events_url), QueueClient(settings),
                   open_store(settings))

    def close(self) -> None:
        self.engine.dispose()
        self.queue.close()

    def enqueue(self, job_id: str, *, profile: str, priority: int) -> bool:
        """Send a committed job's task, then record that it was sent. If the broker cannot be
        reached the job stays queued without a message, and a worker's sweeper sends it later:
        an accepted job is not lost. False when it could not be sent now."""
        try:
            self.queue.send_transcribe(job_id, profile=profile, priority=priority)
        except Exception:  # kombu raises several types for "cannot connect"
            log.warning("could not reach the broker for job %s; a worker's sweeper sends it later", job_id,
                        exc_info=True)
            return False
        with session_scope(self.db) as session:
            jobs.mark_enqueued(session, job_id)
        return True
