"""Job push over WebSocket: ``GET /api/v1/jobs/<id>/events``, what a watcher is sent.

The watcher gets a snapshot of the job (the REST API's JSON), then every event as it is
committed (queued, running, progress with stage, done with the transcript links, failed with
the error), then a close. A watcher that arrives after the end gets the snapshot and the final
event at once. Each message is JSON with a ``type``.

This module decides what a watcher may see and what it is sent, inside an ordinary Flask request
context built from the socket's handshake. :mod:`web.live` serves the sockets on the event loop, so
an open socket costs memory, not a request thread. The handshake is checked before the socket is
accepted (:func:`web.auth.guard_socket`: credentials, and an ``Origin`` that is the service's own or
allowed); only the job's tenant (or an admin) may watch it (:func:`can_watch`), anyone else gets the
same answer as for a job that does not exist.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, select

from core import events
from core.access import Principal
from core.db import session_scope
from core.jobs import TERMINAL
from core.models import Job, JobEvent
from web import auth
from web.api import job_json, job_links

# Close codes: 1000 normal (the job ended), 1008 policy (no such job, or not yours, or the watcher's
# token was revoked or expired while the socket was open).
NORMAL, POLICY = 1000, 1008


@dataclass(frozen=True)
class Opening:
    """What a new watcher is sent before the live events: ``messages`` in order; ``close`` set when
    the socket closes right after them (no such job, or the job had already ended); otherwise the
    live events follow from ``after_id`` on."""

    messages: tuple[dict, ...]
    close: tuple[int, str] | None
    after_id: int = 0
    links: dict | None = None  # the job's links, for its `done` event
    principal: Principal | None = None  # who watches: its token is re-checked while the socket is open


def not_found(job_id: str) -> dict:
    return {"type": "error", "error": {"code": "not_found", "message": f"no job {job_id}"}}


def event_message(message: dict, links: dict) -> dict:
    """An event as the watcher sees it; ``done`` carries where to read the transcript (``links``:
    the job's, made in the handshake's request context)."""
    out = {"type": message["type"], "id": message["id"], "job_id": message["job_id"], "at": message["at"],
           "data": message["data"]}
    if message["type"] == "done":
        out["links"] = links
    return out


def can_watch(principal: Principal, job: Job) -> bool:
    """Whether ``principal`` may follow ``job``'s events: the one check any push server applies."""
    return principal.can_see(job.tenant)


def open_watch(job_id: str) -> Opening:
    """The snapshot (and, for a finished job, its final event), inside the handshake's request
    context. Raises TingxieError (401, 403) for a handshake that may not watch anything."""
    watcher = auth.guard_socket()
    svc = current_app.extensions["tingxie"]
    with session_scope(svc.db) as session:
        # The last event id first, then the job: an event committed in between shows in the
        # snapshot and is replayed too, so none is missed.
        last_id = session.execute(
            select(func.max(JobEvent.id)).where(JobEvent.job_id == job_id)
        ).scalar() or 0
        job = session.get(Job, job_id)
        if job is None or not can_watch(watcher, job):
            return Opening((not_found(job_id),), (POLICY, "no such job"))
        snapshot = job_json(job)
        links = job_links(job_id)
        if job.status not in TERMINAL:
            return Opening(({"type": "snapshot", "job": snapshot},), None, last_id, links, watcher)
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
    return Opening(({"type": "snapshot", "job": snapshot}, event_message(final, links)), (NORMAL, "job finished"),
                   last_id, links)
