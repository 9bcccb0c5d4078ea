"""Celery tasks: thin, idempotent, ids in. Only transient infrastructure failures are retried."""
from __future__ import annotations

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import OperationalError as DatabaseError

from core.queue import TRANSCRIBE
from worker import runtime


@shared_task(
    name=TRANSCRIBE,
    autoretry_for=(DatabaseError, BrokerError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=20,
)
def transcribe(job_id: str) -> str:
    return runtime.current().run_job(job_id)
