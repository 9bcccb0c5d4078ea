"""Security headers on every response the web tier sends.

Pages (the app and the API docs) run only scripts and styles served by tingxie itself: no inline
script, no eval, nothing from another host. JSON and other API answers get a policy that allows
nothing at all (a browser that is tricked into rendering one runs nothing). Nobody may frame
tingxie (clickjacking), browsers may not sniff a type other than the one sent, no referrer leaves
the page, and other sites may not embed its responses.
"""
from __future__ import annotations

from flask import request
from werkzeug.middleware.proxy_fix import ProxyFix

PAGE_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "media-src 'self'",
    "connect-src 'self'",
    "font-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The endpoints that render HTML for a person.
PAGES = frozenset({"pages.index", "docs.page"})


def _secure(response):
    headers = response.headers
    policy = headers.get("Content-Security-Policy")
    if policy is None:
        headers["Content-Security-Policy"] = PAGE_POLICY if request.endpoint in PAGES else API_POLICY
    elif "frame-ancestors" not in policy:  # a route's own policy (media: sandbox) gains the framing rule
        headers["Content-Security-Policy"] = f"{policy}; frame-ancestors 'none'"
    headers.setdefault("Server", "tingxie")  # no software or version banner
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.path.startswith(("/api/", "/v1/")) and request.endpoint not in PAGES:
        # Answers differ per caller: no shared cache may keep one.
        headers.setdefault("Cache-Control", "no-store")
        headers.add("Vary", "Authorization, Cookie")
    return response


def install(app) -> None:
    app.after_request(_secure)


def behind_proxies(wsgi_app, count: int):
    """Client address, scheme and host from the X-Forwarded-* headers of ``count`` trusted reverse
    proxies (TINGXIE_TRUSTED_PROXIES), for HTTP requests and WebSocket handshakes alike."""
    return ProxyFix(wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count)
