"""Rate limits (Flask-Limiter): requests per token, or per client address for calls without one,
and uploads (a job or an OpenAI transcription) per token the same way.

Counters live in Redis when the deployment has one (``TINGXIE_EVENTS_URL``, else a Redis broker),
so every web process shares them; on the embedded default they are in the one web process's memory.
A refused request gets 429 with ``Retry-After`` (seconds) in the route's error shape (OpenAI's on
``/v1``). If the counters' store cannot be reached, requests go through (and it is logged): a
Redis outage should not take the API down with it.
"""
from __future__ import annotations

import time

from flask import request
from flask_limiter import Limiter, RateLimitExceeded

from core.settings import Settings
from web import auth
from web.errors import error_response

# Never counted: health checks (probes call them often) and the page's static files.
EXEMPT = frozenset({"service.healthz", "service.readyz", "pages.static", "docs.asset"})
# Endpoints that take an upload; they share the upload limit.
UPLOADS = ("api.create_job", "openai.create_transcription")


def storage_uri(settings: Settings) -> str:
    if settings.events_url:
        return settings.events_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


def key() -> str:
    """Whose counter a request counts against: its token (a page session counts against the token
    it signed in with), else its address. A request with a bad token counts against its address."""
    found = auth.identify()
    if found is not None and found.token_id:
        return f"token:{found.token_id}"
    return f"addr:{request.remote_addr}"


def _limits(value: str) -> list[str]:
    return [] if value == "off" else [value]


def install(app, settings: Settings) -> Limiter:
    limiter = Limiter(
        key,
        app=app,
        default_limits=_limits(settings.rate_limit),
        storage_uri=storage_uri(settings),
        strategy="fixed-window",
        key_prefix="tingxie",
        headers_enabled=False,
        swallow_errors=True,
    )
    limiter.request_filter(lambda: request.endpoint in EXEMPT)
    if settings.upload_rate_limit != "off":
        shared = limiter.shared_limit(settings.upload_rate_limit, scope="uploads", methods=["POST"])
        for endpoint in UPLOADS:
            app.view_functions[endpoint] = shared(app.view_functions[endpoint])

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):
        current = limiter.current_limit
        reset_at = current.reset_at if current is not None else time.time() + 60
        retry_after = max(1, round(reset_at - time.time()))
        return error_response(
            "rate_limited",
            f"too many requests: the limit is {exc.description} per token (per address without one); "
            f"retry in {retry_after} s",
            429,
            headers={"Retry-After": str(retry_after)},
        )

    return limiter
