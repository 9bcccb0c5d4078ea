"""Health checks for load balancers and orchestrators: public (no token), never rate limited."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app
from sqlalchemy.exc import OperationalError

from core.storage import StorageUnavailableError
from web import schemas

bp = APIBlueprint("service", __name__, tag={"name": "Service", "description": "health and readiness"})


@bp.get("/healthz")
@bp.doc(summary="Liveness", responses=schemas.ok("Health"))
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
@bp.doc(summary="Readiness: database, broker and media store reachable",
        responses={**schemas.ok("Readiness"), **schemas.ok("Readiness", "not ready; `checks` says why", 503)})
def readyz():
    svc = current_app.extensions["tingxie"]
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
    try:
        svc.store.check()
        checks["media_store"] = "ok"
    except StorageUnavailableError as exc:
        checks["media_store"] = f"unavailable: {exc.message}"
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, (200 if ready else 503)
