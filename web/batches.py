"""REST API v1: batches, many jobs submitted, followed, exported, canceled and deleted as one
(core.batches). Every route acts for the caller (web.auth): another tenant's batch is "no such batch"."""
from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from apiflask import APIBlueprint
from flask import Response, url_for
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core import batches, dispatch, storage
from core.db import session_scope
from core.errors import TingxieError
from core.models import Batch, Job, utcnow
from core.submit import BatchEntry, Link, Upload, resolve_options, submit_job, submit_links
from web import auth, schemas
from web.api import attachment, job_json, job_links, services

bp = APIBlueprint("batches", __name__, tag={
    "name": "Batches", "description": "many jobs as one: links, keys or uploads, one set of options, one progress, "
                                      "one zip of transcripts, one webhook"})

_NOT_FOUND = {404: "no such batch"}
# The body of POST /api/v1/batches: its most sources at their longest, and the options (web.server reads it).
MAX_BODY_BYTES = batches.MAX_SOURCES * (schemas.MAX_URL_CHARS + 8) + 64 * 1024


def batch_links(batch_id: str) -> dict:
    return {
        "self": url_for("batches.get_batch", batch_id=batch_id),
        "jobs": url_for("batches.list_batch_jobs", batch_id=batch_id),
        "files": url_for("batches.add_file", batch_id=batch_id),
        "close": url_for("batches.close_batch", batch_id=batch_id),
        "cancel": url_for("batches.cancel_batch", batch_id=batch_id),
        "transcripts": url_for("batches.get_transcripts_zip", batch_id=batch_id),
    }


def batch_json(batch: Batch, counts: batches.Counts, now: datetime) -> dict:
    status = batches.status_of(batch)
    ended = status in ("completed", "canceled") and batch.finished_at is not None
    return {
        **batches.summary(batch, counts),
        "progress": round(1.0 if ended and counts.total else counts.progress(), 4),
        "eta_s": None if ended else counts.eta_s(now),
        "profile": batch.profile,
        "options": batches.job_options(batch).public(),
        "tenant": batch.tenant,
        "callback_url": batch.callback_url,
        "webhook": {"attempts": batch.webhook_attempts, "last_status": batch.webhook_last_status,
                    "delivered_at": batches._iso(batch.webhook_delivered_at)},
        "links": batch_links(batch.id),
    }


def _load(session, batch_id: str) -> Batch:
    return batches.load(session, batch_id, auth.principal().can_see)


def _answer(batch_id: str) -> dict:
    with session_scope(services().db) as session:
        batch = _load(session, batch_id)
        return batch_json(batch, batches.counts(session, [batch_id])[batch_id], utcnow())


@bp.post("/api/v1/batches")
@bp.auth_required(auth.auth)  # each route names it (APIFlask records a shared auth once)
@bp.input(schemas.BatchCreate, location="json", arg_name="body")
@bp.doc(summary="Create a batch", responses={
    **schemas.ok("Batch", "created: closed with its jobs when `sources` were given, else open for uploads", 201,
                 headers={"Location": {"description": "the batch's URL", "schema": {"type": "string"}}}),
    **schemas.errors({400: "bad options or sources, or more than 10,000 sources",
                      429: "the tenant's queued and running jobs would pass TINGXIE_TENANT_MAX_JOBS (`too_many_jobs`)"})})
def create_batch(body):
    """Many jobs with one set of options: given as links or bucket keys (each fetched by a worker),
    or uploaded one by one into the open batch, which is then closed."""
    sources, name, options = body
    svc = services()
    tenant = auth.principal().tenant
    options = resolve_options(svc.settings, options, tenant=tenant)
    if sources:
        for url in sources:
            if not url.startswith(("http://", "https://", "s3://")):
                raise TingxieError(f"source {url[:100]!r} is not an http(s):// link or an s3:// key", code="bad_request")
        with session_scope(svc.db) as session:
            dispatch.check_cap(session, svc.settings, tenant, adding=len(sources))
    with session_scope(svc.db) as session:
        batch = batches.create(session, options, tenant=tenant, name=name, open_=True)
        batch_id = batch.id
    try:
        if sources:  # the batch's callback_url gets the batch's webhook; its jobs send none of their own
            submit_links(svc, [Link(url) for url in sources], dataclasses.replace(options, callback_url=None),
                         tenant=tenant, batch=BatchEntry(batch_id))
            with session_scope(svc.db) as session:  # its sources are all in: closed, as an upload batch is
                batches.close(session, batch)
    except BaseException:
        _remove(batch_id)
        raise
    if sources:
        batches.end_check(svc, [batch_id])
    answer = _answer(batch_id)
    return answer, 201, {"Location": answer["links"]["self"]}


def _remove(batch_id: str) -> None:
    """A batch whose creation failed part way, with the jobs it had."""
    svc = services()
    batches.cancel(svc.db, batch_id)
    for job_id in batches.delete(svc.db, batch_id):
        storage.delete_job_files(svc.settings, svc.store, job_id)


@bp.post("/api/v1/batches/<batch_id>/files")
@bp.auth_required(auth.auth)
@bp.input(schemas.BatchFileForm, location="form_and_files", arg_name="form")
@bp.doc(summary="Upload a file into an open batch", responses={
    **schemas.ok("Accepted", "accepted and queued as a job of the batch", 202),
    **schemas.ok("Accepted", "a job with this key was already in the batch: that job, nothing added"),
    **schemas.errors({400: "an empty file", 404: "no such batch", 409: "the batch is closed (`batch_closed`)",
                      413: "over the upload or duration cap", 415: "not audio or video (`bad_media`)",
                      422: "no audio stream, or cut short"})})
def add_file(batch_id: str, form):
    """A job of the batch, with the batch's options, from one uploaded file."""
    svc = services()
    tenant = auth.principal().tenant
    key = form.get("key")
    upload = form["file"]
    with session_scope(svc.db) as session:
        batch = _load(session, batch_id)
        if batch.tenant != tenant:  # an admin sees other tenants' batches; jobs are added by their own tenant
            raise TingxieError(f"batch {batch_id} is tenant {batch.tenant!r}'s; its own tenant adds its files",
                               code="forbidden")
        existing = batches.job_with_key(session, batch_id, key) if key else None
        if existing is None:
            batches.lock_open(session, batch_id, tenant)  # refused early, before the file is probed and stored
        options = batches.job_options(batch)
    if existing is not None:
        return _accepted(existing.id, existing.status), 200
    try:
        accepted = submit_job(svc, Upload(Path(upload.stream.name), upload.filename or key or ""), options,
                              tenant=tenant, batch=BatchEntry(batch_id, key))
    except IntegrityError:  # the same key, uploaded twice at once: the other upload's job stands
        with session_scope(svc.db) as session:
            existing = batches.job_with_key(session, batch_id, key)
        if existing is None:
            raise
        return _accepted(existing.id, existing.status), 200
    return _accepted(accepted.id, accepted.status), 202


def _accepted(job_id: str, status: str) -> dict:
    return {"id": job_id, "status": status, "links": job_links(job_id)}


@bp.post("/api/v1/batches/<batch_id>/close")
@bp.auth_required(auth.auth)
@bp.doc(summary="Close an open batch: no more files", responses={
    **schemas.ok("Batch", "closed (or already closed); it ends once its jobs have"),
    **schemas.errors({404: "no such batch", 409: "the batch was canceled (`batch_closed`)"})})
def close_batch(batch_id: str):
    svc = services()
    with session_scope(svc.db) as session:
        batch = _load(session, batch_id)
        if batch.state == batches.CANCELED:
            raise TingxieError(f"batch {batch_id} was canceled", code="batch_closed")
        batches.close(session, batch)
    batches.end_check(svc, [batch_id])
    return _answer(batch_id)


@bp.get("/api/v1/batches/<batch_id>")
@bp.auth_required(auth.auth)
@bp.doc(summary="A batch: its jobs per status, progress and ETA", responses={
    **schemas.ok("Batch"), **schemas.errors(_NOT_FOUND)})
def get_batch(batch_id: str):
    return _answer(batch_id)


@bp.get("/api/v1/batches")
@bp.auth_required(auth.auth)
@bp.input(schemas.BatchListQuery, location="query", arg_name="query")
@bp.doc(summary="Batches, newest first", responses={**schemas.ok("BatchList"),
                                                     **schemas.errors({400: "bad paging"})})
def list_batches(query):
    page, per_page = query["page"], query["per_page"]
    caller = auth.principal()
    conditions = [] if caller.admin else [Batch.tenant == caller.tenant]
    with session_scope(services().db) as session:
        total = session.execute(select(func.count()).select_from(Batch).where(*conditions)).scalar_one()
        rows = session.execute(select(Batch).where(*conditions).order_by(Batch.created_at.desc(), Batch.id)
                               .offset((page - 1) * per_page).limit(per_page)).scalars().all()
        counts = batches.counts(session, [b.id for b in rows])
        now = utcnow()
        items = [batch_json(b, counts[b.id], now) for b in rows]
    links = {}
    if page * per_page < total:
        links["next"] = url_for("batches.list_batches", page=page + 1, per_page=per_page)
    if page > 1:
        links["prev"] = url_for("batches.list_batches", page=page - 1, per_page=per_page)
    return {"items": items, "page": page, "per_page": per_page, "total": total, "links": links}


@bp.get("/api/v1/batches/<batch_id>/jobs")
@bp.auth_required(auth.auth)
@bp.input(schemas.BatchJobsQuery, location="query", arg_name="query")
@bp.doc(summary="A batch's jobs, in the order they were added", responses={
    **schemas.ok("JobList"), **schemas.errors({400: "bad paging or status", 404: "no such batch"})})
def list_batch_jobs(batch_id: str, query):
    page, per_page, status = query["page"], query["per_page"], query.get("status")
    conditions = [Job.batch_id == batch_id, *([Job.status == status] if status else [])]
    with session_scope(services().db) as session:
        _load(session, batch_id)
        total = session.execute(select(func.count()).select_from(Job).where(*conditions)).scalar_one()
        rows = session.execute(select(Job).where(*conditions).order_by(Job.created_at, Job.id)
                               .offset((page - 1) * per_page).limit(per_page)).scalars().all()
        items = [job_json(job) for job in rows]
    links = {}
    if page * per_page < total:
        links["next"] = url_for("batches.list_batch_jobs", batch_id=batch_id, page=page + 1, per_page=per_page,
                                status=status)
    if page > 1:
        links["prev"] = url_for("batches.list_batch_jobs", batch_id=batch_id, page=page - 1, per_page=per_page,
                                status=status)
    return {"items": items, "page": page, "per_page": per_page, "total": total, "links": links}


@bp.post("/api/v1/batches/<batch_id>/cancel")
@bp.auth_required(auth.auth)
@bp.doc(summary="Cancel a batch and its queued and running jobs", responses={
    **schemas.ok("Batch", "canceled: its unfinished jobs are canceled (their workers stop within about 2 s); "
                          "its finished jobs keep their transcripts"),
    **schemas.errors({404: "no such batch", 409: "the batch has already ended (`not_cancelable`)"})})
def cancel_batch(batch_id: str):
    svc = services()
    with session_scope(svc.db) as session:
        batch = _load(session, batch_id)
        if batch.finished_at is not None:
            raise TingxieError(f"batch {batch_id} has already ended; nothing to cancel", code="not_cancelable")
    _, tenant = batches.cancel(svc.db, batch_id)
    dispatch.pump(svc, [tenant])  # the slots its jobs held are free for the tenant's next held jobs
    batches.end_check(svc, [batch_id])
    return _answer(batch_id)


@bp.delete("/api/v1/batches/<batch_id>")
@bp.auth_required(auth.auth)
@bp.doc(summary="Delete a batch with its jobs and their files", responses={
    204: {"description": "deleted: its unfinished jobs were canceled, then every job removed with its files"},
    **schemas.errors(_NOT_FOUND)})
def delete_batch(batch_id: str):
    svc = services()
    with session_scope(svc.db) as session:
        _load(session, batch_id)
    _, tenant = batches.cancel(svc.db, batch_id)
    for job_id in batches.delete(svc.db, batch_id):
        storage.delete_job_files(svc.settings, svc.store, job_id)
    dispatch.pump(svc, [tenant])
    return Response(status=204)


@bp.get("/api/v1/batches/<batch_id>/transcripts.zip")
@bp.auth_required(auth.auth)
@bp.input(schemas.ZipQuery, location="query", arg_name="query")
@bp.doc(summary="The batch's finished transcripts as one zip, streamed", responses={
    200: {"description": "`<key or file name>.<format>` for each finished job in each format asked for, and "
                         "`jobs.jsonl`: a line per job (id, key, file name, status, error, its entries)",
          "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
    **schemas.errors({400: "unknown format", 404: "no such batch"})})
def get_transcripts_zip(batch_id: str, query):
    svc = services()
    with session_scope(svc.db) as session:
        batch = _load(session, batch_id)
        name = batch.name or batch_id
    body = batches.transcripts_zip(svc.db, batch_id, query["format"], query["limits"])
    response = Response(body, mimetype="application/zip", direct_passthrough=True)
    response.headers["Content-Disposition"] = attachment(f"{name}.zip")
    return response
