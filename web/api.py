"""REST API v1: jobs in, transcripts out. Every error has one shape: {"error": {"code", "message"}}.

Every route acts for the caller (web.auth): a job is listed, read, followed or deleted only by its
own tenant or an admin; anyone else gets the answer for a job that does not exist."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from apiflask import APIBlueprint, abort
from marshmallow import ValidationError
from flask import Response, current_app, request, url_for
from sqlalchemy import func, select

from core import dispatch, export, jobs, languages, storage, usage, workers
from core.db import session_scope
from core.errors import NotFoundError, TingxieError
from core.models import Job, Transcript
from core.services import Services
from core.settings import PROFILES
from core.submit import submit_job
from web import auth, schemas
from web.ranges import stored_file_response

bp = APIBlueprint("api", __name__, tag={"name": "Jobs", "description": "submit files, follow jobs, read transcripts"})


@bp.before_request
@bp.auth_required(auth.auth)
def _authenticated() -> None:
    """Documents the bearer scheme on every route here (web.auth's guard has already checked)."""

_NOT_FOUND = schemas.errors({404: "no such job"})


def services() -> Services:
    return current_app.extensions["tingxie"]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def _seconds_between(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    a = a if a.tzinfo else a.replace(tzinfo=timezone.utc)
    b = b if b.tzinfo else b.replace(tzinfo=timezone.utc)
    return round((b - a).total_seconds(), 3)


def job_links(job_id: str) -> dict:
    return {
        "self": url_for("api.get_job", job_id=job_id),
        "transcript": url_for("api.get_transcript", job_id=job_id),
        "media": url_for("api.get_media", job_id=job_id),
        "events": f"/api/v1/jobs/{job_id}/events",
    }


def served_profiles() -> dict[str, int]:
    """Live workers per profile (core.workers), read at most every two seconds per process."""
    return current_app.extensions["tingxie.served"].get()


def job_json(job: Job) -> dict:
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    if job.status == jobs.QUEUED:
        waiting = workers.waiting_reason(job.status, job.profile, served_profiles())
    else:
        waiting = job.waiting_reason if job.status == jobs.RUNNING else None
    return {
        "id": job.id,
        "status": job.status,
        "waiting_reason": waiting,
        "stage": job.stage,
        "progress": round(job.progress or 0.0, 4),
        "filename": job.filename,
        "size_bytes": job.size_bytes,
        "duration_ms": job.duration_ms,
        "profile": job.profile,
        "options": jobs.options_of(job).public(),
        "source": job.source,
        "priority": job.priority,
        "tenant": job.tenant,
        "attempt": job.attempt,
        "error": error,
        "warnings": job.warnings or [],
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "media_expires_at": _iso(job.media_expires_at),
        "media_expired_at": _iso(job.media_expired_at),
        "timings": {
            "queued_s": _seconds_between(job.created_at, job.started_at),
            "running_s": _seconds_between(job.started_at, job.finished_at),
        },
        "callback_url": job.callback_url,
        "source_url": job.source_url,
        "output": {"last_status": job.output_last_status,
                   "delivered_at": _iso(job.output_delivered_at)} if jobs.options_of(job).output_url else None,
        "webhook": {
            "attempts": job.webhook_attempts,
            "last_status": job.webhook_last_status,
            "delivered_at": _iso(job.webhook_delivered_at),
        },
        "links": job_links(job.id),
        "batch_id": job.batch_id,
        "batch_key": job.batch_key,
    }


@bp.post("/api/v1/jobs")
@bp.input(schemas.JobForm, location="form_and_files", arg_name="form")
@bp.doc(summary="Submit a file, or a link to one", responses={
    **schemas.ok("Accepted", "accepted and queued; `Location` is the job", 202,
                 headers={"Location": {"description": "the job's URL", "schema": {"type": "string"}}}),
    **schemas.errors({
    400: "bad options or an empty file",
    404: "a `source_url` or `output_url` in a bucket the tenant was not given",
    413: "over the upload or duration cap",
    415: "not audio or video (`bad_media`)",
    422: "no audio stream, or cut short",
})})
def create_job(form):
    """Stream a file to storage, probe it, record the job and queue it; or record a job whose
    worker fetches its ``source_url`` (a multipart form without a file, or the same fields as JSON)."""
    if request.is_json:
        try:
            form = schemas.JobForm().load(request.get_json())
        except ValidationError as exc:
            abort(400, detail={"json": exc.messages})
    upload, source_url, options = form
    accepted = submit_job(services(), schemas.media_of(upload, source_url), options, tenant=auth.principal().tenant)
    links = job_links(accepted.id)
    return {"id": accepted.id, "status": accepted.status, "links": links}, 202, {"Location": links["self"]}


def _load(session, job_id: str) -> Job:
    """The job, if the caller may see it; another tenant's job is "no such job" too."""
    job = session.get(Job, job_id)
    if job is None or not auth.principal().can_see(job.tenant):
        raise NotFoundError(f"no job {job_id}")
    return job


@bp.get("/api/v1/jobs/<job_id>")
@bp.doc(summary="A job", responses={**schemas.ok("Job"), **_NOT_FOUND})
def get_job(job_id: str):
    with session_scope(services().db) as session:
        return job_json(_load(session, job_id))


@bp.get("/api/v1/jobs")
@bp.input(schemas.JobListQuery, location="query", arg_name="query")
@bp.doc(summary="Jobs, newest first", responses={**schemas.ok("JobList"), **schemas.errors({400: "bad paging or status"})})
def list_jobs(query):
    page, per_page, status, tenant = query["page"], query["per_page"], query.get("status"), query.get("tenant")
    caller = auth.principal()
    conditions = [] if caller.admin else [Job.tenant == caller.tenant]
    if tenant:
        conditions.append(Job.tenant == tenant)
    if status:
        conditions.append(Job.status == status)
    in_batch = query.get("in_batch")
    if in_batch is not None:
        conditions.append(Job.batch_id.is_not(None) if in_batch else Job.batch_id.is_(None))
    select_jobs = select(Job).where(*conditions)
    count = select(func.count()).select_from(Job).where(*conditions)
    with session_scope(services().db) as session:
        total = session.execute(count).scalar_one()
        rows = session.execute(
            select_jobs.order_by(Job.created_at.desc(), Job.id).offset((page - 1) * per_page).limit(per_page)
        ).scalars().all() if (page - 1) * per_page < total else []
        items = [job_json(j) for j in rows]
    links = {}
    if page * per_page < total:
        links["next"] = url_for("api.list_jobs", page=page + 1, per_page=per_page, status=status, tenant=tenant,
                                in_batch=in_batch)
    if page > 1:
        links["prev"] = url_for("api.list_jobs", page=page - 1, per_page=per_page, status=status, tenant=tenant,
                                in_batch=in_batch)
    return {"items": items, "page": page, "per_page": per_page, "total": total, "links": links}


@bp.delete("/api/v1/jobs/<job_id>")
@bp.doc(summary="Cancel or delete a job", responses={
    **schemas.ok("Job", "a queued or running job was canceled"),
    204: {"description": "a finished job was deleted with its files"}, **_NOT_FOUND})
def delete_job(job_id: str):
    svc = services()
    with session_scope(svc.db) as session:
        job = _load(session, job_id)
        tenant = job.tenant
        if job.status not in jobs.TERMINAL:
            jobs.cancel(session, job_id)
            session.flush()
            session.refresh(job)
            canceled = job_json(job)
        else:
            canceled = None
            jobs.delete_job(session, job_id)
    if canceled is not None:
        dispatch.pump(svc, [tenant])  # its slot is free for the tenant's next held job
        return canceled
    storage.delete_job_files(svc.settings, svc.store, job_id)
    return Response(status=204)


@bp.post("/api/v1/jobs/<job_id>/cancel")
@bp.doc(summary="Cancel a job", responses={
    **schemas.ok("Job", "the job, canceled (its worker stops within about 2 s, whatever the stage)"),
    **schemas.errors({404: "no such job", 409: "the job has already finished (`not_cancelable`); it is left as it is"})})
def cancel_job(job_id: str):
    """Cancel a queued or running job; unlike DELETE, never deletes a job that has just finished."""
    svc = services()
    with session_scope(svc.db) as session:
        job = _load(session, job_id)
        if not jobs.cancel(session, job_id):
            raise TingxieError(f"job {job_id} is already {job.status}; nothing to cancel", code="not_cancelable")
        session.flush()
        session.refresh(job)
        canceled, tenant = job_json(job), job.tenant
    dispatch.pump(svc, [tenant])  # its slot is free for the tenant's next held job
    return canceled


_TRANSCRIPT_TYPES = {
    "application/json": {"schema": schemas.ref("Transcript")},
    "text/plain": {"schema": {"type": "string"}},
    "application/x-subrip": {"schema": {"type": "string"}},
    "text/vtt": {"schema": {"type": "string"}},
}


@bp.get("/api/v1/jobs/<job_id>/transcript")
@bp.input(schemas.TranscriptQuery, location="query", arg_name="query")
@bp.doc(summary="A finished job's transcript", responses={
    200: {"description": "JSON, TXT, SRT or VTT", "content": _TRANSCRIPT_TYPES},
    **schemas.errors({400: "unknown format", 404: "no such job", 409: "the job has not finished (`not_ready`)"})})
def get_transcript(job_id: str, query):
    fmt = query["format"]
    with session_scope(services().db) as session:
        job = _load(session, job_id)
        transcript = session.get(Transcript, job_id)
        if job.status != jobs.DONE or transcript is None:
            raise TingxieError(f"job {job_id} is {job.status}; the transcript exists once it is done", code="not_ready")
        content, filename = transcript.read(), job.filename
    response = Response(export.render(content, fmt, query["limits"]), content_type=export.FORMATS[fmt])
    if query["download"]:
        stem = Path(filename).stem or job_id
        response.headers["Content-Disposition"] = attachment(f"{stem}.{fmt}")
    return response


@bp.put("/api/v1/jobs/<job_id>/speakers")
@bp.input(schemas.SpeakerNames, location="json", arg_name="body")
@bp.doc(summary="Name a diarized transcript's speakers", responses={
    200: {"description": "the speakers with their names",
          "content": {"application/json": {"schema": {"type": "object", "properties": {"speakers": {
              "type": "array", "items": schemas.ref("Speaker")}}}}}},
    **schemas.errors({400: "unknown speaker, bad name, or a job without speakers (`bad_speakers`)",
                      404: "no such job", 409: "the job has not finished (`not_ready`)"})})
def name_speakers(job_id: str, body):
    with session_scope(services().db) as session:
        job = _load(session, job_id)
        if job.status != jobs.DONE:
            raise TingxieError(f"job {job_id} is {job.status}; speakers can be named once it is done", code="not_ready")
        speakers = jobs.rename_speakers(session, job_id, body["names"])
    return {"speakers": speakers}


def attachment(filename: str) -> str:
    """RFC 6266: an ASCII fallback name and the exact UTF-8 name as ``filename*``."""
    filename = storage.clean_filename(filename)
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@bp.get("/api/v1/jobs/<job_id>/media")
@bp.doc(summary="The uploaded file (HTTP Range for players)", responses={
    200: {"description": "the file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    206: {"description": "part of the file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    304: {"description": "the client's copy is current (If-None-Match, If-Modified-Since)"},
    416: {"description": "the Range lies outside the file"},
    **schemas.errors({404: "no such job", 410: "the file is no longer stored",
                      503: "the media store could not be reached (`unavailable`)"})})
def get_media(job_id: str):
    """The stored file, typed by what the probe found (never by the client's file name): audio and
    video play inline, anything else is an attachment; the browser may neither sniff nor run it."""
    svc = services()
    with session_scope(svc.db) as session:
        job = _load(session, job_id)
        key, filename, info = job.media_key, job.filename, job.media_info or {}
        expired_at = job.media_expired_at
    if expired_at is not None:
        raise TingxieError(f"the media of this job was deleted on {_iso(expired_at)} (its retention ended: "
                           "TINGXIE_RETAIN_MEDIA_DAYS or the job's retain_media_days); its transcript is still here",
                           code="media_expired")
    mime_type = info.get("mime_type") or "application/octet-stream"
    playable = mime_type.startswith(("audio/", "video/"))
    response = stored_file_response(request, svc.store, key,
                                    mimetype=mime_type if playable else "application/octet-stream")
    disposition = attachment(filename)
    response.headers["Content-Disposition"] = disposition if not playable else disposition.replace("attachment", "inline", 1)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


@bp.get("/api/v1/profiles")
@bp.doc(summary="Model profiles, the live workers serving each, and the languages each transcribes",
        responses=schemas.ok("ProfileList"))
def list_profiles():
    settings = services().settings
    served = served_profiles()
    return {"items": [
        {"name": name, "default": name == settings.profile, "workers": served.get(name, 0),
         "languages": [{"code": code, "name": languages.language_name(code)} for code in languages.languages_for(name)]}
        for name in PROFILES
    ]}


@bp.get("/api/v1/usage")
@bp.input(schemas.UsageQuery, location="query", arg_name="query")
@bp.doc(summary="Audio seconds and jobs per tenant and profile over time", responses={
    **schemas.ok("UsageReport"), **schemas.errors({400: "a bad range or grouping", 404: "no such tenant (not the caller's)"})})
def get_usage(query):
    """Jobs accepted in [from, to) grouped by day, month or in total, per tenant and profile; an
    admin sees every tenant, anyone else only their own (core.usage)."""
    caller = auth.principal()
    tenant = query.get("tenant")
    if tenant is not None and not caller.can_see(tenant):
        raise NotFoundError(f"no tenant {tenant}")
    if tenant is None and not caller.admin:
        tenant = caller.tenant
    now = datetime.now(timezone.utc)
    month_start, resets = usage.month_bounds(now)
    start = _utc(query.get("from_")) or month_start
    end = _utc(query.get("to")) or now
    if end <= start:
        raise TingxieError("`to` must come after `from`", code="bad_option")
    svc = services()
    with session_scope(svc.db) as session:
        items = usage.usage(session, start=start, end=end, group=query["group"], tenant=tenant)
        quota = None
        if not caller.admin:
            quota = {"tenant": caller.tenant, "quota_hours": usage.quota_hours(svc.settings, caller.tenant),
                     "used_hours": round(usage.charged_seconds(session, caller.tenant, now) / 3600, 4),
                     "resets_at": _iso(resets)}
    return {"start": _iso(start), "end": _iso(end), "group": query["group"],
            "items": [row.to_json() for row in items], "quota": quota}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
