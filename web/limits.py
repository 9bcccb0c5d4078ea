"""Rate limits (Flask-Limiter): one request budget per token across every route (per client address
for calls without one), an upload budget (a job or an OpenAI transcription) per token the same way,
and a stricter budget per address for failed authentication.

A page session counts against the API token it signed in with (signing in again gives no fresh
budget). A request whose credentials fail counts against its address, in the request budget and in
the failure budget (``TINGXIE_AUTH_FAIL_RATE_LIMIT``); once an address has spent that, its requests
that carry credentials (a token, a session cookie, a sign-in) are refused before they are checked.

Counters live in Redis when the deployment has one (``TINGXIE_EVENTS_URL``, else a Redis broker),
so every web process shares them; on the embedded default they are in the one web process's memory.
A refused request gets 429 with ``Retry-After`` (seconds) in the route's error shape (OpenAI's on
``/v1``). If the counters' store cannot be reached, requests go through (and it is logged): a
Redis outage should not take the API down with it.
"""
from __future__ import annotations

import logging
import time

from flask import request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many

from core.settings import Settings
from web import auth
from web.errors import error_response

log = logging.getLogger("tingxie.limits")

# Never counted: health checks (probes call them often) and the page's static files.
EXEMPT = frozenset({"service.healthz", "service.readyz", "pages.static", "docs.asset"})
# Endpoints that take an upload; they share the upload limit.
UPLOADS = ("api.create_job", "openai.create_transcription", "openai.create_translation", "batches.add_file")
_FAILURES = "auth-failures"


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


def _presents_credentials() -> bool:
    return ("Authorization" in request.headers or bool(auth.session_cookies())
            or request.endpoint == "session.sign_in")


def _refusal(what: str, reset_at: float):
    retry_after = max(1, round(reset_at - time.time()))
    return error_response("rate_limited", f"too many requests: the limit is {what}; retry in {retry_after} s",
                          429, headers={"Retry-After": str(retry_after)})


class _Failures:
    """Failed authentication per address: counted after the answer (a 401 to a request that
    presented credentials), checked before any credential is looked at."""

    def __init__(self, limiter: Limiter, value: str):
        self.limiter = limiter
        self.items = parse_many(value) if value != "off" else []

    def check(self):
        if not self.items or request.endpoint in EXEMPT or not _presents_credentials():
            return
        try:
            spent = next((item for item in self.items
                          if not self.limiter.limiter.test(item, _FAILURES, request.remote_addr or "")), None)
        except Exception:  # the counters' store is down: let the request through, as the other limits do
            log.warning("could not read the failed-authentication counters", exc_info=True)
            return
        if spent is not None:
            reset_at = self.limiter.limiter.get_window_stats(spent, _FAILURES, request.remote_addr or "").reset_time
            return _refusal(f"{spent} failed authentications (bad tokens, sessions or sign-ins) per address", reset_at)
        return None

    def count(self, response):
        if self.items and response.status_code == 401 and _presents_credentials():
            try:
                for item in self.items:
                    self.limiter.limiter.hit(item, _FAILURES, request.remote_addr or "")
            except Exception:
                log.warning("could not count a failed authentication", exc_info=True)
        return response


def install(app, settings: Settings) -> Limiter:
    limiter = Limiter(
        key,
        app=app,
        application_limits=_limits(settings.rate_limit),  # one budget across every route, not one per route
        storage_uri=storage_uri(settings),
        strategy="fixed-window",
        key_prefix="tingxie",
        headers_enabled=False,
        swallow_errors=True,
        # Requests for no route count too (a bad token sent to any path is still a request).
        request_identifier=lambda: request.endpoint or "unrouted",
    )
    limiter.request_filter(lambda: request.endpoint in EXEMPT)
    if settings.upload_rate_limit != "off":
        shared = limiter.shared_limit(settings.upload_rate_limit, scope="uploads", methods=["POST"])
        for endpoint in UPLOADS:
            app.view_functions[endpoint] = shared(app.view_functions[endpoint])
    failures = _Failures(limiter, settings.auth_fail_rate_limit)
    app.before_request_funcs.setdefault(None, []).insert(0, failures.check)
    app.after_request(failures.count)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):
        current = limiter.current_limit
        reset_at = current.reset_at if current is not None else time.time() + 60
        return _refusal(f"{exc.description} per token (per address without one)", reset_at)

    return limiter
