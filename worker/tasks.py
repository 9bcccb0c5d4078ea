"""Celery tasks: thin, idempotent, ids in. Only transient infrastructure failures are retried."""
from __future__ import annotations

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import OperationalError as DatabaseError

from core.queue import TRANSCRIBE
from worker import runtime


@shared_task(
    bind=True,
    name=TRANSCRIBE,
    autoretry_for=(DatabaseError, BrokerError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=20,
)
def transcribe(self, job_id: str) -> str:
    # The node's name: a worker that shuts down hands back the jobs it claimed under it.
    return runtime.current().run_job(job_id, worker=self.request.hostname)
