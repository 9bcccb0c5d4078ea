"""The one way a job is created, whichever door it came through (REST, OpenAI, FunASR gateway,
a batch).

A door spools the client's file to local disk (an :class:`Upload`), or names a link a worker
fetches (a :class:`Link`: http(s) or ``s3://bucket/key``, core.sources), and parses what the
client sent into a :class:`~core.options.JobOptions`; :func:`submit_job` does the rest, in this
order: apply the deployment's policy to the options (default profile, server-wide hotwords, caps,
callback target, delivery target), check and probe the file and put it in the media store
(core.storage) -- a link is only checked: its worker fetches it (core.fetch) -- commit the job,
and only then send its task. Whatever goes wrong before the commit, the spooled file and anything placed are removed;
an error is a :class:`~core.errors.TingxieError` with a code and a message a person can act on.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence

from core import batches, dispatch, jobs, retention, sources, storage, usage, webhooks
from core.db import session_scope
from core.errors import BadOptionError, TingxieError
from core.hotwords import check_caps, load_hotword_file, merge
from core.models import Job, utcnow
from core.languages import check_language
from core.options import JobOptions
from core.services import Services
from core.settings import Settings
from media import MediaError, MediaInfo, probe

log = logging.getLogger("tingxie.submit")


@dataclass(frozen=True)
class Upload:
    """A client's file, already spooled to local disk by the door. ``submit_job`` consumes it:
    the file is moved into storage or removed, never left behind."""

    path: Path
    filename: str  # what the client called it (cleaned here before it is stored)


@dataclass(frozen=True)
class BatchEntry:
    """The batch a job joins (core.batches; it must be the tenant's and open) and the job's key
    there (the client's name for the item, unique within the batch), if any."""

    batch_id: str
    key: str | None = None


@dataclass(frozen=True)
class Link:
    """Media the job's worker fetches before it transcribes (core.fetch): an ``http://`` or
    ``https://`` URL, or ``s3://bucket/key`` within the tenant's TINGXIE_TENANT_SOURCES. Nothing is
    read at submission; the caps (size, duration) are checked as the worker receives it."""

    url: str
    filename: str | None = None  # a display name; default: the last segment of the URL's path


@dataclass(frozen=True)
class Submitted:
    """What a door answers with: the new job's id and its state when it was accepted."""

    id: str
    status: str
    profile: str
    enqueued: bool


def resolve_options(settings: Settings, options: JobOptions, *, tenant: str = "local") -> JobOptions:
    """The deployment's policy, applied once: the default profile, the server-wide hotwords
    merged in (the job's own win), the caps, a language the profile serves, a callback target
    that may be called, an output location the tenant was given (404 otherwise)."""
    profile = options.profile or settings.profile
    language = check_language(profile, options.language)
    hotwords = options.hotwords
    if settings.hotword_file is not None:
        hotwords = merge(load_hotword_file(settings.hotword_file), hotwords)
    check_caps(hotwords, settings.max_hotwords)
    if options.callback_url:
        try:
            webhooks.check_target(options.callback_url, settings)
        except webhooks.WebhookTargetError as exc:
            raise BadOptionError(str(exc), code="bad_callback_url") from None
    if options.output_url:
        sources.check_output(options.output_url, tenant, settings.tenant_outputs)
    return dataclasses.replace(options, profile=profile, language=language, hotwords=hotwords)


def check_media(settings: Settings, path: Path, filename: str) -> tuple[int, MediaInfo]:
    size = path.stat().st_size
    if size == 0:
        raise TingxieError(f"{filename} is empty (0 bytes)", code="empty_file")
    if size > settings.max_upload_bytes:
        raise TingxieError(
            f"{filename} is {size / 2**20:.0f} MiB; the limit is {settings.max_upload_bytes / 2**20:.0f} MiB "
            "(TINGXIE_MAX_UPLOAD_MB)",
            code="too_large",
        )
    try:
        info = probe(path, max_duration_ms=int(settings.max_duration_s * 1000))
    except MediaError as exc:
        hint = " (TINGXIE_MAX_DURATION_S)" if exc.code == "too_long" else ""
        raise TingxieError(f"{filename}: {exc.message}{hint}", code=exc.code) from None
    return size, info


def submit_job(services: Services, media: Upload | Link, options: JobOptions, *, tenant: str,
               batch: BatchEntry | None = None) -> Submitted:
    """Create a job of ``tenant`` (the caller's, from its credentials: core.access) from a spooled
    file or a link: check the tenant's cap and quota, probe and store the file (a link: check it
    may be fetched), commit, then send it if the tenant has room (core.dispatch; else it is sent as
    the tenant's earlier jobs end). With ``batch``, the job joins that open batch of the tenant's
    in the same transaction."""
    if isinstance(media, Link):
        return _submit_link(services, media, options, tenant=tenant, batch=batch)
    settings = services.settings
    upload = media
    filename = storage.clean_filename(upload.filename)
    job_id = jobs.new_job_id()
    key = storage.media_key(job_id, filename)
    try:
        options = resolve_options(settings, options, tenant=tenant)
        with session_scope(services.db) as session:
            dispatch.check_cap(session, settings, tenant)
        size, info = check_media(settings, upload.path, filename)
        accepted_at = utcnow()
        media_expires_at = retention.media_expiry(settings, options, accepted_at)
        with session_scope(services.db) as session:
            usage.check_quota(session, settings, tenant, info.duration_ms, accepted_at)
        services.store.put(upload.path, key, content_type=info.mime_type or "application/octet-stream")
    except BaseException:
        upload.path.unlink(missing_ok=True)
        raise
    return _commit(services, job_id, options, tenant, media_key=key, filename=filename, size_bytes=size,
                   duration_ms=info.duration_ms, media_info=info.to_dict(), accepted_at=accepted_at,
                   media_expires_at=media_expires_at, batch=batch)


def _submit_link(services: Services, link: Link, options: JobOptions, *, tenant: str,
                 batch: BatchEntry | None) -> Submitted:
    """A job whose worker fetches its media: nothing is read here (the web tier never connects to
    the link), so the job carries no size, duration or probe until its worker has fetched it."""
    return submit_links(services, [link], options, tenant=tenant, batch=batch)[0]


def submit_links(services: Services, links: Sequence[Link], options: JobOptions, *, tenant: str,
                 batch: BatchEntry | None = None) -> list[Submitted]:
    """Jobs by link, all at once (a batch's thousands of sources): each link checked, then every
    job created in one transaction (all or none) and the tenant's slots filled once."""
    settings = services.settings
    options = resolve_options(settings, options, tenant=tenant)
    for link in links:
        sources.check_source(link.url, tenant, settings.tenant_sources)
    accepted_at = utcnow()
    media_expires_at = retention.media_expiry(settings, options, accepted_at)
    with session_scope(services.db) as session:
        dispatch.check_cap(session, settings, tenant, adding=len(links))
        usage.check_quota(session, settings, tenant, None, accepted_at)  # their length is known once fetched
    made: list[Job] = []
    for link in links:
        job_id = jobs.new_job_id()
        filename = storage.clean_filename(link.filename or sources.display_name(link.url))
        made.append(jobs.new_job(job_id=job_id, options=options, media_key=storage.media_key(job_id, filename),
                                 filename=filename, size_bytes=0, duration_ms=None, media_info=None, tenant=tenant,
                                 media_expires_at=media_expires_at, created_at=accepted_at,
                                 batch_id=batch.batch_id if batch is not None else None, source_url=link.url))
    made_ids = [(job.id, job.status) for job in made]
    with session_scope(services.db) as session:
        dispatch.lock_tenant(session, tenant)
        if batch is not None:
            batches.lock_open(session, batch.batch_id, tenant)
        jobs.add_jobs(session, made)  # one multi-row INSERT of the jobs, one of their events
        dispatch.hold_cap(session, settings, tenant)
    sent = set(dispatch.pump(services, [tenant]))
    log.info("%d jobs by link of tenant %s accepted from %s", len(made_ids), tenant, options.source)
    return [Submitted(id=job_id, status=status, profile=options.profile, enqueued=job_id in sent)
            for job_id, status in made_ids]


def _commit(services: Services, job_id: str, options: JobOptions, tenant: str, *, media_key: str, filename: str,
            size_bytes: int, duration_ms: int | None, media_info: dict | None, accepted_at: datetime,
            media_expires_at: datetime | None, batch: BatchEntry | None, source_url: str | None = None) -> Submitted:
    settings = services.settings
    try:
        with session_scope(services.db) as session:
            dispatch.lock_tenant(session, tenant)
            if batch is not None:
                batches.lock_open(session, batch.batch_id, tenant)
            job: Job = jobs.create_job(
                session,
                job_id=job_id,
                options=options,
                media_key=media_key,
                filename=filename,
                size_bytes=size_bytes,
                duration_ms=duration_ms,
                media_info=media_info,
                tenant=tenant,
                media_expires_at=media_expires_at,
                created_at=accepted_at,
                batch_id=batch.batch_id if batch is not None else None,
                batch_key=batch.key if batch is not None else None,
                source_url=source_url,
            )
            dispatch.hold_cap(session, settings, tenant)  # what the early check saw may be stale by now
            status = job.status
    except BaseException:
        storage.delete_job_files(settings, services.store, job_id)
        raise
    enqueued = job_id in dispatch.pump(services, [tenant])
    log.info("job %s of tenant %s accepted from %s: %s%s%s", job_id, tenant, options.source, filename,
             " (by link)" if source_url else "",
             "" if enqueued else " (held: sent when the tenant's earlier jobs end, or the broker answers)")
    return Submitted(id=job_id, status=status, profile=options.profile, enqueued=enqueued)
