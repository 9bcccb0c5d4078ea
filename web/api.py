"""REST API v1: jobs in, transcripts out. Every error has one shape: {"error": {"code", "message"}}."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from apiflask import APIBlueprint
from flask import Response, current_app, send_file, url_for
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from core import export, jobs, languages, storage
from core.db import session_scope
from core.errors import NotFoundError, TingxieError
from core.models import Job, Transcript
from core.services import Services
from core.settings import PROFILES
from core.submit import Upload, submit_job
from web import schemas

bp = APIBlueprint("api", __name__, tag="Jobs")

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


def job_json(job: Job) -> dict:
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    return {
        "id": job.id,
        "status": job.status,
        "stage": job.stage,
        "progress": round(job.progress or 0.0, 4),
        "filename": job.filename,
        "size_bytes": job.size_bytes,
        "duration_ms": job.duration_ms,
        "profile": job.profile,
        "options": jobs.options_of(job).public(),
        "source": job.source,
        "priority": job.priority,
        "attempt": job.attempt,
        "error": error,
        "warnings": job.warnings or [],
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "timings": {
            "queued_s": _seconds_between(job.created_at, job.started_at),
            "running_s": _seconds_between(job.started_at, job.finished_at),
        },
        "callback_url": job.callback_url,
        "webhook": {
            "attempts": job.webhook_attempts,
            "last_status": job.webhook_last_status,
            "delivered_at": _iso(job.webhook_delivered_at),
        },
        "links": job_links(job.id),
    }


@bp.post("/api/v1/jobs")
@bp.input(schemas.JobForm, location="form_and_files", arg_name="form")
@bp.doc(summary="Submit a file", responses={
    **schemas.ok("Accepted", "accepted and queued; `Location` is the job", 202,
                 headers={"Location": {"description": "the job's URL", "schema": {"type": "string"}}}),
    **schemas.errors({
    400: "bad options or an empty file",
    413: "over the upload or duration cap",
    415: "not audio or video (`bad_media`)",
    422: "no audio stream, or cut short",
})})
def create_job(form):
    """Stream a file to storage, probe it, record the job and queue it."""
    upload, options = form
    accepted = submit_job(services(), Upload(Path(upload.stream.name), upload.filename or ""), options)
    links = job_links(accepted.id)
    return {"id": accepted.id, "status": accepted.status, "links": links}, 202, {"Location": links["self"]}


def _load(session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
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
    page, per_page, status = query["page"], query["per_page"], query.get("status")
    select_jobs = select(Job)
    count = select(func.count()).select_from(Job)
    if status:
        select_jobs, count = select_jobs.where(Job.status == status), count.where(Job.status == status)
    with session_scope(services().db) as session:
        total = session.execute(count).scalar_one()
        rows = session.execute(
            select_jobs.order_by(Job.created_at.desc(), Job.id).offset((page - 1) * per_page).limit(per_page)
        ).scalars().all() if (page - 1) * per_page < total else []
        items = [job_json(j) for j in rows]
    links = {}
    if page * per_page < total:
        links["next"] = url_for("api.list_jobs", page=page + 1, per_page=per_page, status=status)
    if page > 1:
        links["prev"] = url_for("api.list_jobs", page=page - 1, per_page=per_page, status=status)
    return {"items": items, "page": page, "per_page": per_page, "total": total, "links": links}


@bp.delete("/api/v1/jobs/<job_id>")
@bp.doc(summary="Cancel or delete a job", responses={
    **schemas.ok("Job", "a queued or running job was canceled"),
    204: {"description": "a finished job was deleted with its files"}, **_NOT_FOUND})
def delete_job(job_id: str):
    svc = services()
    with session_scope(svc.db) as session:
        job = _load(session, job_id)
        if job.status not in jobs.TERMINAL:
            jobs.cancel(session, job_id)
            session.flush()
            session.refresh(job)
            return job_json(job)
        jobs.delete_job(session, job_id)
    storage.delete_job_files(svc.settings, job_id)
    return Response(status=204)


@bp.post("/api/v1/jobs/<job_id>/cancel")
@bp.doc(summary="Cancel a job", responses={
    **schemas.ok("Job", "the job, canceled (its worker stops within about 2 s, whatever the stage)"),
    **schemas.errors({404: "no such job", 409: "the job has already finished (`not_cancelable`); it is left as it is"})})
def cancel_job(job_id: str):
    """Cancel a queued or running job; unlike DELETE, never deletes a job that has just finished."""
    with session_scope(services().db) as session:
        job = _load(session, job_id)
        if not jobs.cancel(session, job_id):
            raise TingxieError(f"job {job_id} is already {job.status}; nothing to cancel", code="not_cancelable")
        session.flush()
        session.refresh(job)
        return job_json(job)


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
        data, filename = transcript.data, job.filename
    response = Response(export.render(data, fmt, query["limits"]), content_type=export.FORMATS[fmt])
    if query["download"]:
        stem = Path(filename).stem or job_id
        response.headers["Content-Disposition"] = attachment(f"{stem}.{fmt}")
    return response


def attachment(filename: str) -> str:
    """RFC 6266: an ASCII fallback name and the exact UTF-8 name as ``filename*``."""
    filename = storage.clean_filename(filename)
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@bp.get("/api/v1/jobs/<job_id>/media")
@bp.doc(summary="The uploaded file (HTTP Range for players)", responses={
    200: {"description": "the file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    206: {"description": "part of the file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    **schemas.errors({404: "no such job", 410: "the file is no longer stored"})})
def get_media(job_id: str):
    """The stored file, typed by what the probe found (never by the client's file name): audio and
    video play inline, anything else is an attachment; the browser may neither sniff nor run it."""
    with session_scope(services().db) as session:
        job = _load(session, job_id)
        path, filename, info = Path(job.media_path), job.filename, job.media_info or {}
    if not path.exists():
        raise TingxieError("the media file of this job is no longer stored", code="gone")
    mime_type = info.get("mime_type") or "application/octet-stream"
    playable = mime_type.startswith(("audio/", "video/"))
    response = send_file(path, mimetype=mime_type if playable else "application/octet-stream", conditional=True)
    disposition = attachment(filename)
    response.headers["Content-Disposition"] = disposition if not playable else disposition.replace("attachment", "inline", 1)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


@bp.get("/api/v1/profiles")
@bp.doc(summary="Model profiles and the languages each transcribes", responses=schemas.ok("ProfileList"))
def list_profiles():
    settings = services().settings
    return {"items": [
        {"name": name, "default": name == settings.profile,
         "languages": [{"code": code, "name": languages.language_name(code)} for code in languages.languages_for(name)]}
        for name in PROFILES
    ]}


@bp.get("/healthz")
@bp.doc(tags=["Service"], summary="Liveness", responses=schemas.ok("Health"))
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
@bp.doc(tags=["Service"], summary="Readiness: database and broker reachable",
        responses={**schemas.ok("Readiness"), **schemas.ok("Readiness", "not ready; `checks` says why", 503)})
def readyz():
    svc = services()
    checks = {}
    try:
        with svc.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        checks["database"] = "ok"
    except OperationalError as exc:
        checks["database"] = f"unreachable: {exc.orig}"
    try:
        svc.queue.ping()
        checks["broker"] = "ok"
    except Exception as exc:  # kombu raises several types for "cannot connect"
        checks["broker"] = f"unreachable: {exc}"
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, (200 if ready else 503)
