"""Celery task delivering a finished job's webhook: one attempt per run, retried with backoff.

The job row is the record (attempts, last status, delivered time), so a redelivered message
for an already delivered job sends nothing.
"""
from __future__ import annotations

import logging

from celery import shared_task

from core import batches, webhooks
from core.queue import DELIVER_BATCH_WEBHOOK, DELIVER_WEBHOOK
from worker import runtime

log = logging.getLogger("tingxie.worker")


@shared_task(bind=True, name=DELIVER_WEBHOOK, max_retries=len(webhooks.BACKOFF_S))
def deliver_webhook(self, job_id: str) -> str:
    rt = runtime.current()
    result = webhooks.deliver_for_job(rt.settings, rt.factory, job_id)
    if result is None:
        return "nothing to deliver"
    if result.ok:
        log.info("webhook for job %s delivered (%s)", job_id, result.status)
        return result.status
    if result.retry:
        countdown = webhooks.backoff_s(self.request.retries)
        log.info("webhook for job %s failed (%s); retrying in %d s", job_id, result.status, countdown)
        raise self.retry(countdown=countdown)
    log.warning("webhook for job %s given up: %s", job_id, result.status)
    return result.status


@shared_task(bind=True, name=DELIVER_BATCH_WEBHOOK, max_retries=len(webhooks.BACKOFF_S))
def deliver_batch_webhook(self, batch_id: str) -> str:
    """A batch's one webhook when it ends (core.batches.deliver), retried as a job's is."""
    rt = runtime.current()
    result = batches.deliver(rt.settings, rt.factory, batch_id)
    if result is None:
        return "nothing to deliver"
    if result.ok:
        log.info("webhook for batch %s delivered (%s)", batch_id, result.status)
        return result.status
    if result.retry:
        countdown = webhooks.backoff_s(self.request.retries)
        log.info("webhook for batch %s failed (%s); retrying in %d s", batch_id, result.status, countdown)
        raise self.retry(countdown=countdown)
    log.warning("webhook for batch %s given up: %s", batch_id, result.status)
    return result.status
