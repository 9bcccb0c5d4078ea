"""``GET /metrics`` in Prometheus's text format: one scrape target for the whole deployment.

- The web tier's own: requests by route and status, request durations, upload bytes received,
  open job-events sockets; every uvicorn worker process's, through prometheus_client's
  multiprocess files (``tingxie web`` sets the directory up).
- Read when scraped from what every host shares: jobs by status and profile (the database), the
  depth of each queue (the broker), live workers per profile (their announcements).
- The workers' own (audio seconds and realtime factor per profile, job durations, ASR batch
  sizes, GPU memory), as each live worker published them with its last announcement, labelled
  ``worker``.
"""
from __future__ import annotations

import logging
import time
import threading

import redis
from flask import Blueprint, Response, current_app, g, request
from sqlalchemy import func, select

from core.errors import TingxieError
from core import metrics as wire
from core import workers
from core.models import Job
from core.queue import ALL_QUEUES
from web import auth
from web.waits import DEFERRED

log = logging.getLogger("tingxie.web")

bp = Blueprint("metrics", __name__)

# Routes whose request body is an upload.
_UPLOAD_ENDPOINTS = frozenset({"api.create_job", "openai.create_transcription"})
_DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


# The methods the `method` label names; any other a client sends is counted as "other", so a
# client cannot add label values (and series) by making methods up.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_built: dict | None = None
_building = threading.Lock()


def _web_metrics() -> dict:
    """Made once per process (prometheus_client reads its multiprocess setting when first imported).
    :func:`init_app` makes them before the process serves; the lock keeps two threads from both
    registering them, which prometheus_client refuses (a duplicated series)."""
    global _built
    if _built is None:
        with _building:
            if _built is None:
                from prometheus_client import Counter, Gauge, Histogram  # reads its multiprocess mode when first imported

                _built = {
                    "requests": Counter("tingxie_http_requests", "HTTP requests answered",
                                        ["method", "route", "status"]),
                    "duration": Histogram("tingxie_http_request_duration_seconds", "Time to answer an HTTP request",
                                          ["route"], buckets=_DURATION_BUCKETS_S),
                    "upload_bytes": Counter("tingxie_upload_bytes", "Bytes of upload request bodies received",
                                            ["route"]),
                    "sockets": Gauge("tingxie_event_sockets", "Job-events WebSockets open", multiprocess_mode="livesum"),
                }
    return _built


def init_app(app) -> None:
    """Register the blueprint and make this process's metrics now, before any request comes."""
    _web_metrics()
    app.register_blueprint(bp)


def event_sockets():
    """The open-sockets gauge (web.live increments and decrements it)."""
    return _web_metrics()["sockets"]


class _Fleet:
    """What every host shares, read when /metrics is scraped."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily  # as in _web_metrics: not before the mode is set

        svc = self.services
        jobs = GaugeMetricFamily("tingxie_jobs", "Jobs by status and profile", labels=["status", "profile"])
        live = GaugeMetricFamily("tingxie_workers", "Live workers serving each profile", labels=["profile"])
        depth = GaugeMetricFamily("tingxie_queue_depth", "Messages waiting in each queue", labels=["queue"])
        with svc.db() as session:
            for status, profile, count in session.execute(
                    select(Job.status, Job.profile, func.count()).group_by(Job.status, Job.profile)):
                jobs.add_metric([status, profile], count)
            rows = workers.live(session)
        served: dict[str, int] = {}
        for row in rows:
            for profile in row.profiles or ():
                served[profile] = served.get(profile, 0) + 1
        for profile, count in sorted(served.items()):
            live.add_metric([profile], count)
        for queue, count in _queue_depths(svc).items():
            depth.add_metric([queue], count)
        yield jobs
        yield live
        yield GaugeMetricFamily("tingxie_workers_live", "Live workers", value=len(rows))
        yield depth
        yield from wire.from_wire((row.metrics, {"worker": row.id}) for row in rows if row.metrics)


def _queue_depths(svc) -> dict[str, int]:
    settings = svc.settings
    if settings.embedded_broker:
        folder = settings.broker_dir / "queue"
        return {queue: sum(1 for _ in folder.glob(f"*.{queue}.msg")) for queue in ALL_QUEUES}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # Closed after each scrape: a client per call must not leave its connection to the collector.
        with redis.Redis.from_url(settings.broker_url, socket_timeout=3) as client, \
                client.pipeline(transaction=False) as pipe:
            for queue in ALL_QUEUES:
                pipe.llen(queue)
            return dict(zip(ALL_QUEUES, pipe.execute()))
    return {}  # AMQP: the broker's own metrics say it


@bp.before_app_request
def _start_clock() -> None:
    g.metrics_started = time.perf_counter()


@bp.after_app_request
def _count(response: Response) -> Response:
    if g.get(DEFERRED):  # a placeholder: the answer sent after the wait is counted (web.waits)
        return response
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    m = _web_metrics()
    method = request.method if request.method in _METHODS else "other"
    m["requests"].labels(method, route, str(response.status_code)).inc()
    started = g.pop("metrics_started", None)
    if started is not None:
        m["duration"].labels(route).observe(time.perf_counter() - started)
    if request.endpoint in _UPLOAD_ENDPOINTS and request.content_length:
        m["upload_bytes"].labels(route).inc(request.content_length)
    return response


@bp.get("/metrics")
def metrics() -> Response:
    """Every tenant's figures: for an admin token (a Prometheus scrape sends one as its bearer
    token), or this machine's own requests where the web tier lets them in without one."""
    # After the process's metrics are made (init_app): prometheus_client's first import sets its mode.
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    caller = auth.principal()
    if not (caller.admin or caller.anonymous):
        raise TingxieError("/metrics covers every tenant: scrape it with an admin token "
                           "(tingxie tokens create --tenant ops --admin)", code="forbidden")

    own = wire.registry()
    fleet = CollectorRegistry()
    fleet.register(_Fleet(current_app.extensions["tingxie"]))
    body = generate_latest(own) + generate_latest(fleet)
    return Response(body, content_type=CONTENT_TYPE_LATEST)
