"""REST API v1: jobs in, transcripts out. Every error has one shape: {"error": {"code", "message"}}."""
from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request, send_file, url_for
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from core import export, jobs, storage, webhooks
from core.db import session_scope
from core.hotwords import HotwordError, check_cap, parse_hotwords
from core.models import Job, Transcript
from media import MediaError, probe
from web.uploads import discard_spooled

log = logging.getLogger("tingxie.web")

bp = Blueprint("api", __name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return jsonify(error={"code": exc.code, "message": exc.message}), exc.status


def _ctx() -> dict:
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
        "options": job.options,
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


def _flag(name: str, default: bool) -> bool:
    value = request.form.get(name)
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ApiError(400, "bad_option", f"{name} must be true or false, not {value!r}")


def _job_options(settings) -> tuple[dict, str]:
    language = (request.form.get("language") or "auto").lower()
    if language not in jobs.LANGUAGES:
        raise ApiError(400, "bad_option", f"language must be one of {', '.join(jobs.LANGUAGES)}")
    profile = request.form.get("profile") or settings.profile
    if profile not in jobs.KNOWN_PROFILES:
        raise ApiError(400, "unknown_profile", f"profile must be one of {', '.join(jobs.KNOWN_PROFILES)}")
    try:
        hotwords = check_cap(parse_hotwords(request.form.get("hotwords")), settings.max_hotwords)
    except HotwordError as exc:
        raise ApiError(400, "bad_hotwords", str(exc)) from None
    options = {"language": language, "itn": _flag("itn", True), "hotwords": [list(h) for h in hotwords]}
    return options, profile


@bp.post("/api/v1/jobs")
def create_job():
    ctx = _ctx()
    settings = ctx["settings"]
    try:
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise ApiError(400, "no_file", "send the audio or video as a multipart form field named 'file'")
        options, profile = _job_options(settings)
        callback_url = request.form.get("callback_url") or None
        if callback_url:
            _check_callback(callback_url, settings)
        spooled = Path(upload.stream.name)
        upload.stream.close()
        size = spooled.stat().st_size
        if size == 0:
            raise ApiError(400, "empty_file", "the uploaded file is empty (0 bytes)")
        try:
            info = probe(spooled)
        except MediaError as exc:
            status = 415 if exc.code == "bad_media" else 422
            raise ApiError(status, exc.code, f"{upload.filename}: {exc.message}") from None
        if info.duration_ms is not None and info.duration_ms > settings.max_duration_s * 1000:
            raise ApiError(
                413, "too_long",
                f"{upload.filename} lasts {info.duration_ms / 60000:.1f} min; "
                f"the limit is {settings.max_duration_s / 60:.0f} min (TINGXIE_MAX_DURATION_S)",
            )
        job_id = jobs.new_job_id()
        target = storage.place_upload(settings, spooled, job_id, upload.filename)
        try:
            with session_scope(ctx["db"]) as session:
                job = jobs.create_job(
                    session,
                    job_id=job_id,
                    media_path=str(target),
                    filename=os.path.basename(upload.filename)[:512],
                    profile=profile,
                    options=options,
                    size_bytes=size,
                    duration_ms=info.duration_ms,
                    source=request.form.get("source") if request.form.get("source") in ("api", "page") else "api",
                    callback_url=callback_url,
                )
        except Exception:
            storage.delete_job_files(settings, job_id)
            raise
    finally:
        discard_spooled()
    _enqueue(job)
    body = {"id": job.id, "status": job.status, "links": job_links(job.id)}
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = body["links"]["self"]
    return response


def _check_callback(url: str, settings) -> None:
    try:
        webhooks.check_target(url, settings)
    except webhooks.WebhookTargetError as exc:
        raise ApiError(400, "bad_callback_url", str(exc)) from None


def _enqueue(job: Job) -> None:
    """After commit. If the broker is down the job stays queued with no message; workers'
    sweepers send it once the broker is back, so the accepted job is not lost."""
    ctx = _ctx()
    try:
        ctx["queue"].send_transcribe(job.id, priority=job.priority)
    except Exception:
        log.warning("could not reach the broker for job %s; a worker will send it later", job.id, exc_info=True)
        return
    with session_scope(ctx["db"]) as session:
        jobs.mark_enqueued(session, job.id)


def _load(session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return job


@bp.get("/api/v1/jobs/<job_id>")
def get_job(job_id: str):
    with session_scope(_ctx()["db"]) as session:
        return jsonify(job_json(_load(session, job_id)))


@bp.get("/api/v1/jobs")
def list_jobs():
    try:
        page = max(1, int(request.args.get("page", 1)))
        per_page = min(100, max(1, int(request.args.get("per_page", 20))))
    except ValueError:
        raise ApiError(400, "bad_option", "page and per_page must be integers") from None
    status = request.args.get("status")
    query = select(Job)
    count = select(func.count()).select_from(Job)
    if status:
        if status not in jobs.STATUSES:
            raise ApiError(400, "bad_option", f"status must be one of {', '.join(jobs.STATUSES)}")
        query, count = query.where(Job.status == status), count.where(Job.status == status)
    with session_scope(_ctx()["db"]) as session:
        total = session.execute(count).scalar_one()
        rows = session.execute(
            query.order_by(Job.created_at.desc(), Job.id).offset((page - 1) * per_page).limit(per_page)
        ).scalars().all()
        items = [job_json(j) for j in rows]
    links = {}
    if page * per_page < total:
        links["next"] = url_for("api.list_jobs", page=page + 1, per_page=per_page, status=status)
    if page > 1:
        links["prev"] = url_for("api.list_jobs", page=page - 1, per_page=per_page, status=status)
    return jsonify(items=items, page=page, per_page=per_page, total=total, links=links)


@bp.delete("/api/v1/jobs/<job_id>")
def delete_job(job_id: str):
    ctx = _ctx()
    with session_scope(ctx["db"]) as session:
        job = _load(session, job_id)
        if job.status not in jobs.TERMINAL:
            jobs.cancel(session, job_id)
            session.flush()
            session.refresh(job)
            return jsonify(job_json(job))
        jobs.delete_job(session, job_id)
    storage.delete_job_files(ctx["settings"], job_id)
    return Response(status=204)


@bp.get("/api/v1/jobs/<job_id>/transcript")
def get_transcript(job_id: str):
    fmt = request.args.get("format", "json").lower()
    if fmt not in export.FORMATS:
        raise ApiError(400, "bad_format", f"format must be one of {', '.join(export.FORMATS)}")
    with session_scope(_ctx()["db"]) as session:
        job = _load(session, job_id)
        transcript = session.get(Transcript, job_id)
        if job.status != jobs.DONE or transcript is None:
            raise ApiError(409, "not_ready", f"job {job_id} is {job.status}; the transcript exists once it is done")
        data, filename = transcript.data, job.filename
    response = Response(export.render(data, fmt), content_type=export.FORMATS[fmt])
    if request.args.get("download", "").lower() in _TRUE:
        stem = os.path.splitext(filename)[0] or job_id
        response.headers["Content-Disposition"] = _attachment(f"{stem}.{fmt}")
    return response


def _attachment(filename: str) -> str:
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


@bp.get("/api/v1/jobs/<job_id>/media")
def get_media(job_id: str):
    with session_scope(_ctx()["db"]) as session:
        job = _load(session, job_id)
        path, filename = job.media_path, job.filename
    if not os.path.exists(path):
        raise ApiError(410, "gone", "the media file of this job is no longer stored")
    return send_file(path, conditional=True, download_name=filename)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    ctx = _ctx()
    checks = {}
    try:
        with ctx["engine"].connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        checks["database"] = "ok"
    except OperationalError as exc:
        checks["database"] = f"unreachable: {exc.orig}"
    try:
        ctx["queue"].ping()
        checks["broker"] = "ok"
    except Exception as exc:  # kombu raises several types for "cannot connect"
        checks["broker"] = f"unreachable: {exc}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not_ready", checks=checks), (200 if ready else 503)
