"""Who is calling the web tier: tokens, the page's session, anonymous loopback use, CSRF and Origin.

Every request is identified once, before any view runs (:func:`install`): an
``Authorization: Bearer`` API token, else the page's session cookie, else, where
:func:`core.access.anonymous_web_allowed` says so, the anonymous ``local`` tenant. Credentials that
are presented are always checked (unknown, expired or revoked: 401, whatever the mode). Every
endpoint needs a principal except the few in :data:`PUBLIC` (the page and its files, the API
document and docs page, health checks, signing in), so a route added later is protected by default.
The API blueprints also declare :data:`auth` (APIFlask's ``HTTPTokenAuth``), which documents the
bearer scheme in ``/api/v1/openapi.json``.

Browsers: a state-changing request from the page's session must carry the session's CSRF token
(``X-CSRF-Token``, from ``GET``/``POST /api/v1/session``), and every state-changing request that
rides on ambient credentials (the session cookie, or anonymous loopback access) and every
WebSocket handshake must come from the service's own origin or one in ``TINGXIE_ALLOWED_ORIGINS``.
A bearer request carries no ambient credential (a page on another site cannot add the header), so
it needs neither.

The session cookie is HttpOnly, SameSite=Strict, and holds a session token (core.tokens): signing
out revokes it, and revoking the API token it came from ends it too. Under https it is
``__Host-tingxie_session``: Secure, ``Path=/``, no Domain, so no other origin (another port of the
host, a sibling domain, plain http) can set or shadow it (cookie tossing). A request that carries
two session cookies (one planted with a narrower path beside the real one) is refused (400
``session_conflict``), never answered as either. The CSRF token is an HMAC keyed by the session's
secret: it works with its own session's cookie and no other.
"""
from __future__ import annotations

from apiflask import APIBlueprint, HTTPTokenAuth, Schema
from apiflask.fields import Boolean, String
from apiflask.validators import Length
from flask import Response, current_app, g, request

from core import access, tokens
from core.access import Principal
from core.db import session_scope
from core.errors import TingxieError, UnauthorizedError
from core.models import utcnow
from web.errors import error_response
from web.schemas import Out, errors, ok

COOKIE = "tingxie_session"  # plain http (a loopback or trusted-LAN deployment)
SECURE_COOKIE = "__Host-tingxie_session"  # https: only this origin, over https, may set it
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Endpoints anyone may call: the page shell and its files (it signs in with the API below), the
# API document and its docs page, health checks, and signing in.
PUBLIC = frozenset({
    "pages.index", "pages.static", "docs.page", "docs.asset", "openapi.spec",
    "service.healthz", "service.readyz", "session.sign_in", "session.sign_out",
})

class _Bearer(HTTPTokenAuth):
    """APIFlask's bearer scheme: it documents the API's security in the OpenAPI document and
    refuses a view without a principal. The credentials themselves were checked by the guard
    (a bearer token, a session cookie or anonymous loopback use), whose principal it takes."""

    def authenticate(self, auth, stored_password):
        return g.get("tingxie_principal")


auth = _Bearer(
    scheme="Bearer", security_scheme_name="BearerAuth",
    description="An API token from `tingxie tokens create --tenant NAME` (the OpenAI SDK's `api_key`). "
                "The web page uses a session cookie from `POST /api/v1/session` instead.")


@auth.error_processor
def _auth_error(error):
    return error_response("unauthorized", "sign in, or send 'Authorization: Bearer <token>'", 401,
                          headers=challenge())


def challenge() -> dict:
    return {"WWW-Authenticate": 'Bearer realm="tingxie"'}


def _services():
    return current_app.extensions["tingxie"]


def identify() -> Principal | None:
    """The request's principal, found once per request (None: no credentials, and anonymous use
    is not allowed here). Never raises: a credential that is not valid is remembered and refused
    by the guard, so the rate limiter can count the request by address first."""
    if "tingxie_principal" in g:
        return g.tingxie_principal
    g.tingxie_principal, g.tingxie_auth_error = None, None
    try:
        g.tingxie_principal = _authenticate()
    except TingxieError as exc:  # bad credentials, or two session cookies
        g.tingxie_auth_error = exc
    return g.tingxie_principal


def cookie_name() -> str:
    """The session cookie's name for this request: ``__Host-`` prefixed when it is served over https
    (the request's scheme, or a trusted proxy's ``X-Forwarded-Proto``)."""
    return SECURE_COOKIE if request.is_secure else COOKIE


def session_cookies() -> list[str]:
    """Every session cookie the request carries (a browser sends one for each path and domain it
    holds one for)."""
    return request.cookies.getlist(cookie_name())


def session_cookie() -> str | None:
    """The request's one session cookie; :class:`TingxieError` (``session_conflict``) when it
    carries two, as when another page of the host planted one for a narrower path: which one is
    the user's cannot be told, so neither is used."""
    found = session_cookies()
    if len(found) > 1:
        raise TingxieError("this browser sent two tingxie session cookies (another site on this host may have set "
                           "one); clear this site's cookies in the browser, then sign in again",
                           code="session_conflict")
    return found[0] if found else None


def _authenticate() -> Principal | None:
    svc = _services()
    try:
        cookie = session_cookie()
    except TingxieError:
        g.tingxie_cookie_conflict = True
        raise
    try:
        return access.web_principal(svc.db, svc.settings, authorization=request.headers.get("Authorization"),
                                    session_cookie=cookie, peer=request.remote_addr or "",
                                    host_header=request.host, headers=request.headers)
    except UnauthorizedError as exc:
        if getattr(exc, "session", False):
            g.tingxie_clear_session = True
        raise


def principal() -> Principal:
    """The caller of a protected view (the guard guarantees there is one)."""
    found = identify()
    if found is None:
        raise UnauthorizedError("sign in, or send 'Authorization: Bearer <token>'")
    return found


def _websocket() -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _check_origin(*, writes: bool = True) -> None:
    """Refuse a request a page on another origin made the browser send. Browsers send ``Origin``
    with every cross-origin fetch and every POST; for a write without one, ``Sec-Fetch-Site``
    still tells a cross-site request apart."""
    origin = request.headers.get("Origin")
    own = access.web_origins(request.scheme, request.host)
    if not access.origin_allowed(origin, own, _services().settings):
        raise TingxieError(f"requests from the page at {origin} are not accepted here (it is not this service's "
                           "origin, nor listed in TINGXIE_ALLOWED_ORIGINS)", code="origin_not_allowed")
    if writes and origin is None and request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise TingxieError("a cross-site request is not accepted here", code="origin_not_allowed")


def guard_socket() -> Principal:
    """A WebSocket handshake, served outside Flask's routing (web.live): its ``Origin`` must be the
    service's own or allowed, and its credentials those any protected route needs. Raises the
    error to answer before the socket is accepted."""
    _check_origin()
    found = identify()
    if g.tingxie_auth_error is not None:
        raise g.tingxie_auth_error
    if found is None:
        raise UnauthorizedError("sign in, or send 'Authorization: Bearer <token>' (tingxie tokens create)")
    return found


def _guard() -> None:
    """Before every view: refuse bad credentials, anonymous calls where tokens are needed, and
    cross-site requests riding on the browser's ambient credentials."""
    found = identify()
    public = request.endpoint in PUBLIC or request.endpoint is None  # None: no such route, 404 follows
    if _websocket():
        _check_origin()
    cookie_only = g.get("tingxie_clear_session") or g.get("tingxie_cookie_conflict")
    if g.tingxie_auth_error is not None and (not public or not cookie_only):
        raise g.tingxie_auth_error  # a bearer token sent is checked everywhere; a bad cookie only where needed
    if public:
        if request.method not in SAFE_METHODS:
            _check_origin()  # signing in: no login CSRF from another site
        return
    if found is None:
        raise UnauthorizedError("sign in, or send 'Authorization: Bearer <token>' (tingxie tokens create)")
    if found.via == access.TOKEN:
        return  # no ambient credential: a page on another site cannot add the header
    if request.method in SAFE_METHODS:
        _check_origin(writes=False)  # another page's script may not even read through the browser
        return
    _check_origin()
    if found.via == access.SESSION and not tokens.check_csrf(session_cookie() or "", request.headers.get(CSRF_HEADER)):
        raise TingxieError(f"this request from the page lacks its CSRF token ({CSRF_HEADER}); reload the page",
                           code="csrf_failed")


def _after(response: Response) -> Response:
    if g.get("tingxie_clear_session"):
        response.delete_cookie(cookie_name(), path="/", secure=request.is_secure, httponly=True, samesite="Strict")
    if g.get("tingxie_auth_error") is not None or response.status_code == 401:
        response.headers.setdefault("WWW-Authenticate", challenge()["WWW-Authenticate"])
    return response


def install(app) -> None:
    """Identify every request and guard every endpoint (call after the rate limiter is set up, so
    its counting, keyed by :func:`identify`, comes first)."""
    app.before_request(_guard)
    app.after_request(_after)


# --- Signing the page in and out ---------------------------------------------------------------

bp = APIBlueprint("session", __name__, tag={
    "name": "Session", "description": "the web page signs in with a token and keeps a session cookie"})


class SignIn(Schema):
    token = String(required=True, validate=Length(min=1, max=256),
                   metadata={"description": "an API token, or the one-time code of a sign-in link"})


class SessionOut(Out):
    tenant = String(required=True)
    admin = Boolean(required=True, metadata={"description": "sees every tenant's jobs"})
    via = String(required=True, metadata={"description": "`session`, `token` or `anonymous`"})
    csrf_token = String(required=True, allow_none=True,
                        metadata={"description": f"send as `{CSRF_HEADER}` with every state-changing request "
                                                 "the page makes"})
    expires_at = String(required=True, allow_none=True)


COMPONENTS = {"SessionOut": SessionOut}


def _describe(found: Principal, session_secret: str | None = None, expires_at=None) -> dict:
    return {
        "tenant": found.tenant,
        "admin": found.admin,
        "via": found.via,
        "csrf_token": tokens.csrf_token(session_secret) if session_secret else None,
        "expires_at": expires_at.isoformat() if expires_at is not None else None,
    }


@bp.get("/api/v1/session")
@bp.auth_required(auth)
@bp.doc(summary="Who this request is (the page asks on load)",
        responses={**ok("SessionOut"), **errors({400: "two session cookies arrived (`session_conflict`): clear the "
                                                     "site's cookies", 401: "not signed in"})})
def who():
    found = principal()
    secret = session_cookie() if found.via == access.SESSION else None
    expires = None
    if secret:
        with session_scope(_services().db) as session:
            expires = tokens.verify(session, secret, kinds=(tokens.SESSION,)).expires_at
    return _describe(found, secret, expires)


@bp.post("/api/v1/session")
@bp.input(SignIn, location="json", arg_name="body")
@bp.doc(summary="Sign the page in with a token or a one-time sign-in code (sets an HttpOnly cookie)",
        responses={**ok("SessionOut"), **errors({400: "no token sent", 401: "not a valid token or code",
                                                 403: "sent from another site's page"})})
def sign_in(body):
    svc = _services()
    with session_scope(svc.db) as session:
        issued = tokens.start_session(session, body["token"], hours=svc.settings.session_hours)
    info = issued.info
    found = Principal(info.tenant, info.admin, access.SESSION, info.parent_id or info.id, info.id)
    response = current_app.make_response(_describe(found, issued.secret, info.expires_at))
    max_age = max(1, int((info.expires_at - utcnow()).total_seconds()))
    response.set_cookie(cookie_name(), issued.secret, max_age=max_age, path="/", secure=request.is_secure,
                        httponly=True, samesite="Strict")
    return response


@bp.delete("/api/v1/session")
@bp.doc(summary="Sign the page out (ends its session)", responses={204: {"description": "signed out"},
                                                                   **errors({403: "no CSRF token"})})
def sign_out():
    secret = session_cookie()
    if secret:
        found = identify()
        if found is not None and found.via == access.SESSION:
            _check_origin()
            if not tokens.check_csrf(secret, request.headers.get(CSRF_HEADER)):
                raise TingxieError(f"signing out needs the page's CSRF token ({CSRF_HEADER})", code="csrf_failed")
            parsed = tokens.parse(secret)
            with session_scope(_services().db) as session:
                tokens.end_session(session, parsed[1])
        g.tingxie_clear_session = True
    return Response(status=204)

