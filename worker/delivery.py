"""Celery task writing a done job's transcript to its output_url (core.delivery): retried with
backoff while the store refuses or cannot be reached; the job row records the outcome, so a
redelivered message for a delivered job writes nothing."""
from __future__ import annotations

import logging

from celery import shared_task

from core import delivery
from core.queue import DELIVER_OUTPUT
from worker import runtime

log = logging.getLogger("tingxie.worker")


@shared_task(bind=True, name=DELIVER_OUTPUT, max_retries=len(delivery.BACKOFF_S))
def deliver_output(self, job_id: str) -> str:
    rt = runtime.current()
    result = delivery.deliver(rt.settings, rt.factory, job_id)
    if result is None:
        return "nothing to deliver"
    if result.ok or not result.retry:
        if not result.ok:
            log.warning("delivery of job %s given up: %s", job_id, result.status)
        return result.status
    countdown = delivery.backoff_s(self.request.retries)
    log.info("delivery of job %s failed (%s); retrying in %d s", job_id, result.status, countdown)
    raise self.retry(countdown=countdown)
