"""Job push over WebSocket: ``GET /api/v1/jobs/<id>/events``.

The watcher gets a snapshot of the job (the REST API's JSON), then every event as it is
committed (queued, running, progress with stage, done with the transcript links, failed with
the error), then a close. A watcher that arrives after the end gets the snapshot and the final
event at once. Each message is JSON with a ``type``.

Only the job's tenant (or an admin) may watch it (:func:`can_watch`); anyone else gets the same
answer as for a job that does not exist. The handshake itself is checked before the socket is
accepted (web.auth): credentials, and an ``Origin`` that is the service's own or allowed.
"""
from __future__ import annotations

import json

from flask import Blueprint, current_app
from flask_sock import Sock
from sqlalchemy import func, select

from core import events
from core.access import Principal
from core.db import session_scope
from core.jobs import TERMINAL
from core.models import Job, JobEvent
from web import auth
from web.api import job_json, job_links

bp = Blueprint("events", __name__)
sock = Sock()

# Close codes: 1000 normal (the job ended), 1008 policy (no such job).
_NORMAL, _NOT_FOUND = 1000, 1008
# How often a quiet watcher checks that its client is still connected.
_TICK_S = 10.0


def _event(message: dict) -> dict:
    """An event as the watcher sees it; ``done`` carries where to read the transcript."""
    out = {"type": message["type"], "id": message["id"], "job_id": message["job_id"], "at": message["at"],
           "data": message["data"]}
    if message["type"] == "done":
        out["links"] = job_links(message["job_id"])
    return out


def can_watch(principal: Principal, job: Job) -> bool:
    """Whether ``principal`` may follow ``job``'s events: the one check any push server applies."""
    return principal.can_see(job.tenant)


@sock.route("/api/v1/jobs/<job_id>/events", bp=bp)
def job_events(ws, job_id: str) -> None:
    svc = current_app.extensions["tingxie"]
    watcher = auth.principal()
    factory, settings = svc.db, svc.settings
    with session_scope(factory) as session:
        # The last event id first, then the job: an event committed in between shows in the
        # snapshot and is replayed too, so none is missed.
        last_id = session.execute(
            select(func.max(JobEvent.id)).where(JobEvent.job_id == job_id)
        ).scalar() or 0
        job = session.get(Job, job_id)
        if job is None or not can_watch(watcher, job):
            ws.send(json.dumps({"type": "error", "error": {"code": "not_found", "message": f"no job {job_id}"}}))
            ws.close(reason=_NOT_FOUND, message="no such job")
            return
        snapshot = job_json(job)
        final = None
        if job.status in TERMINAL:
            row = session.execute(
                select(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.type.in_(events.TERMINAL_TYPES))
                .order_by(JobEvent.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            final = events.as_message(row) if row is not None else {
                "id": last_id, "job_id": job_id, "type": job.status, "at": snapshot["finished_at"],
                "data": {"status": job.status, "error": snapshot["error"]},
            }
    ws.send(json.dumps({"type": "snapshot", "job": snapshot}, ensure_ascii=False))
    if final is not None:
        ws.send(json.dumps(_event(final), ensure_ascii=False))
        ws.close(reason=_NORMAL, message="job finished")
        return
    stream = events.listen(factory, job_id, events_url=settings.events_url, after_id=last_id, tick_s=_TICK_S)
    try:
        for message in stream:
            if message is None:
                if not ws.connected:
                    return
                continue
            ws.send(json.dumps(_event(message), ensure_ascii=False))
            if message["type"] in events.TERMINAL_TYPES:
                break
    finally:
        stream.close()
    ws.close(reason=_NORMAL, message="job finished")
