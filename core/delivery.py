"""Delivery: a done job's transcript written to its ``output_url`` (``s3://bucket/prefix/``) in
each requested format, as ``<prefix><job id>.<format>``, with the deployment's S3 credentials.

Written once: the job row records when every format was written (``output_delivered_at``), and
a delivery that finds it set writes nothing. A retry after a partial delivery writes the same
bytes to the same keys (the transcript and the export are deterministic), so retries are
harmless. The tenant's TINGXIE_TENANT_OUTPUTS is checked again before writing: a location taken
away after submission receives nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core import export, jobs, sources
from core.db import session_scope
from core.errors import TingxieError
from core.models import Job, Transcript, utcnow
from core.s3 import S3Store
from core.settings import Settings

log = logging.getLogger("tingxie.delivery")

# Seconds before each retry of a delivery the store refused or could not take.
BACKOFF_S = (5, 30, 120, 600, 1800)
CONTENT_TYPES = {fmt: f"{mime}; charset=utf-8" if mime.startswith("text/") or "json" in mime else mime
                 for fmt, mime in export.FORMATS.items()}


@dataclass(frozen=True)
class Delivered:
    ok: bool
    status: str  # "delivered: s3://.../id.json, ...", "refused: ...", "error: ..."
    retry: bool


def object_keys(folder: sources.BucketKey, job_id: str, formats: tuple[str, ...]) -> dict[str, str]:
    """Format -> the key it is written under."""
    return {fmt: f"{folder.key}{job_id}.{fmt}" for fmt in formats}


def deliver(settings: Settings, factory: sessionmaker[Session], job_id: str) -> Delivered | None:
    """Write a done job's transcript to its output location, recorded on the job. None: nothing to
    do (no output_url, not done, already delivered, gone)."""
    # boto3 only where S3 is used (see core.s3)
    from botocore.exceptions import BotoCoreError, ClientError

    with session_scope(factory) as session:
        job = session.get(Job, job_id)
        if job is None or job.status != jobs.DONE or job.output_delivered_at is not None:
            return None
        options = jobs.options_of(job)
        transcript = session.get(Transcript, job_id)
        if not options.output_url or transcript is None:
            return None
        content, tenant = transcript.read(), job.tenant
    try:
        folder = sources.check_output(options.output_url, tenant, settings.tenant_outputs)
    except TingxieError as exc:
        return _record(factory, job_id, Delivered(False, f"refused: {exc.message}", retry=False))
    client = S3Store.for_bucket(settings, folder.bucket).client
    keys = object_keys(folder, job_id, options.delivered_formats)
    try:
        for fmt, key in keys.items():
            body = export.render(content, fmt).encode("utf-8")
            client.put_object(Bucket=folder.bucket, Key=key, Body=body, ContentType=CONTENT_TYPES[fmt])
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        # A bucket that is not there, or that the credentials may not write, will not heal by itself soon.
        retry = code not in ("NoSuchBucket", "AccessDenied", "403", "404")
        return _record(factory, job_id, Delivered(False, f"error: {code} writing {folder.url}", retry=retry))
    except BotoCoreError as exc:
        return _record(factory, job_id, Delivered(False, f"error: {type(exc).__name__}: {exc}", retry=True))
    written = ", ".join(f"s3://{folder.bucket}/{key}" for key in keys.values())
    log.info("job %s: transcript delivered to %s", job_id, written)
    return _record(factory, job_id, Delivered(True, f"delivered: {written}", retry=False))


def _record(factory: sessionmaker[Session], job_id: str, result: Delivered) -> Delivered:
    values: dict = {"output_last_status": result.status[:128]}
    with session_scope(factory) as session:
        if result.ok:
            values["output_delivered_at"] = utcnow()
            session.execute(update(Job).where(Job.id == job_id, Job.output_delivered_at.is_(None)).values(**values))
        else:
            session.execute(update(Job).where(Job.id == job_id).values(**values))
    return result


def backoff_s(retries_done: int) -> int:
    return BACKOFF_S[min(retries_done, len(BACKOFF_S) - 1)]
