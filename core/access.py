"""Who is asking, and what they may see: the one policy every door applies.

A request is made by a :class:`Principal`: a tenant, whether it is an admin (sees every tenant), and
how it proved it (an API token, a page session, or nothing). Every job belongs to one tenant, and a
principal sees a job only when :meth:`Principal.can_see` says so; everything else answers as if the
job did not exist.

Credentials, whenever they are presented, are checked: an unknown, expired or revoked token is
refused in every mode. Without credentials, the web tier lets a request in as the ``local`` tenant
(never an admin) only where :func:`anonymous_web_allowed` says so: ``TINGXIE_AUTH=auto`` on a web
tier bound to a loopback address, for a request that comes from this machine, names this machine as
its host (so a web page that rebinds its DNS name to 127.0.0.1 gets nothing) and did not pass a
proxy; or anywhere under ``TINGXIE_AUTH=insecure-no-auth``. The FunASR gateway lets clients without
a token in as its own tenant unless it requires tokens (:func:`gateway_principal`).

Browsers are the other half: a page on another site can make a visitor's browser send requests
with its cookies. State-changing requests and WebSocket handshakes that carry an ``Origin`` other
than the service's own or one listed in ``TINGXIE_ALLOWED_ORIGINS`` are refused
(:func:`origin_allowed`); the page's cookie session also needs its CSRF token (web.auth).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from sqlalchemy.orm import Session, sessionmaker

from core import tokens
from core.db import session_scope
from core.errors import UnauthorizedError
from core.settings import Settings

LOCAL_TENANT = "local"
ANONYMOUS, TOKEN, SESSION = "anonymous", "token", "session"
# Headers a proxy adds: a request that carries one did not come straight from this machine.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
_LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost")


@dataclass(frozen=True)
class Principal:
    """Who a request is: ``via`` is anonymous, token or session; ``token_id`` names the token (for
    a page session, the API token it signed in with, so it keys the same rate limits) and
    ``session_id`` the page session itself."""

    tenant: str
    admin: bool = False
    via: str = ANONYMOUS
    token_id: str | None = None
    session_id: str | None = None

    def can_see(self, tenant: str) -> bool:
        """A job of ``tenant`` is visible to this principal (an admin sees every tenant)."""
        return self.admin or tenant == self.tenant

    @property
    def anonymous(self) -> bool:
        return self.via == ANONYMOUS


def anonymous_principal() -> Principal:
    return Principal(LOCAL_TENANT, admin=False, via=ANONYMOUS)


def is_loopback(address: str) -> bool:
    """A loopback address or name (``127.0.0.1``, ``::1``, ``localhost``); an unparsable one is not."""
    host = (address or "").strip().lower()
    if host.startswith("[") and "]" in host:
        host = host[1:host.index("]")]
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(host_header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8000`` -> ``[::1]``, ``a:80`` -> ``a``)."""
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        return host[: host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def open_on_loopback(settings: Settings) -> bool:
    """``TINGXIE_AUTH=auto`` with the web tier bound to a loopback address: this machine's own
    requests need no token."""
    return settings.auth == "auto" and is_loopback(settings.host) and settings.trusted_proxies == 0


def anonymous_web_allowed(settings: Settings, *, peer: str, host_header: str, headers: Mapping[str, str]) -> bool:
    """Whether a request without credentials may use the web tier as the ``local`` tenant."""
    if settings.auth == "insecure-no-auth":
        return True
    if not open_on_loopback(settings):
        return False
    if any(name in headers for name in FORWARDING_HEADERS):
        return False
    return is_loopback(peer) and is_loopback(host_of(host_header))


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization`` header; None when there is no header. Any other scheme,
    or an empty token, is refused: a request that presents credentials always has them checked."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise UnauthorizedError("send the token as 'Authorization: Bearer <token>' (tingxie tokens create)")
    return value.strip()


def token_principal(db: sessionmaker[Session], token: str) -> Principal:
    """The principal of an API token; :class:`UnauthorizedError` when it is not valid."""
    with session_scope(db) as session:
        info = tokens.verify(session, token, kinds=(tokens.API,))
    return Principal(info.tenant, info.admin, TOKEN, info.id)


def session_principal(db: sessionmaker[Session], secret: str) -> Principal:
    """The principal of a page session (its cookie's value)."""
    with session_scope(db) as session:
        info = tokens.verify(session, secret, kinds=(tokens.SESSION,))
    return Principal(info.tenant, info.admin, SESSION, info.parent_id or info.id, info.id)


def web_principal(db: sessionmaker[Session], settings: Settings, *, authorization: str | None,
                  session_cookie: str | None, peer: str, host_header: str,
                  headers: Mapping[str, str]) -> Principal | None:
    """Who a request to the web tier (a route or a WebSocket handshake, whatever serves it) is: its
    bearer token, else its session cookie, else the anonymous ``local`` tenant where that is allowed;
    None when it has no credentials and needs some. A credential that is not valid raises
    :class:`UnauthorizedError` (``session=True`` on it when it was the cookie, so a server can clear it).
    ``headers`` is the request's headers, looked up case-insensitively (or with lower-case keys)."""
    token = bearer(authorization)
    if token is not None:
        return token_principal(db, token)
    if session_cookie:
        try:
            return session_principal(db, session_cookie)
        except UnauthorizedError as exc:
            stale = UnauthorizedError(f"{exc.message}; sign in again")
            stale.session = True
            raise stale from None
    if anonymous_web_allowed(settings, peer=peer, host_header=host_header, headers=headers):
        return anonymous_principal()
    return None


def gateway_principal(db: sessionmaker[Session], settings: Settings, *, authorization: str | None,
                      query_token: str | None, require_token: bool, tenant: str) -> Principal:
    """The principal of a FunASR gateway connection: a token from the ``Authorization`` header or
    the URL's ``token`` parameter (for clients that cannot set headers, such as a browser), checked
    whenever present; without one, ``tenant`` unless tokens are required."""
    token = bearer(authorization)
    if token is None and query_token is not None:
        if not query_token:
            raise UnauthorizedError("the token parameter is empty")
        token = query_token
    if token is not None:
        return token_principal(db, token)
    if require_token:
        raise UnauthorizedError("this gateway needs a token: send 'Authorization: Bearer <token>' or add "
                                "?token=<token> to the URL (tingxie tokens create)")
    return Principal(tenant, admin=False, via=ANONYMOUS)


def normalise_origin(origin: str) -> str:
    """``HTTPS://Example.com:443`` -> ``https://example.com``: scheme and host lower-case, the
    scheme's default port dropped, as browsers send ``Origin``."""
    origin = origin.strip().rstrip("/").lower()
    for scheme, port in (("http://", ":80"), ("https://", ":443"), ("ws://", ":80"), ("wss://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin[: -len(port)]
    return origin


def origin_allowed(origin: str | None, own: tuple[str, ...], settings: Settings) -> bool:
    """A request's ``Origin`` is absent (not a browser, or a same-origin GET), the service's own
    (``own``: the origins this request's host answers as), or listed in ``TINGXIE_ALLOWED_ORIGINS``.
    ``null`` (sandboxed frames, files) is never allowed."""
    if origin is None:
        return True
    origin = normalise_origin(origin)
    if origin == "null" or not origin:
        return False
    return origin in {normalise_origin(o) for o in own} or origin in set(settings.allowed_origins)


def web_origins(scheme: str, host_header: str) -> tuple[str, ...]:
    """The web tier's own origin for a request: its scheme and ``Host``."""
    return (normalise_origin(f"{scheme}://{host_header}"),)


def gateway_origins(settings: Settings, host_header: str) -> tuple[str, ...]:
    """The gateway's own origins: the tingxie page on the same host (the web tier's port, http or
    https), when that host is a loopback one. A ``Host`` naming anything else proves nothing: a page
    whose DNS name was rebound to this machine sends its own name as both ``Host`` and ``Origin``.
    Pages elsewhere connect only from ``TINGXIE_ALLOWED_ORIGINS``."""
    host = host_of(host_header)
    if not is_loopback(host):
        return ()
    return tuple(normalise_origin(f"{scheme}://{host}:{settings.port}") for scheme in ("http", "https"))


def describe(settings: Settings) -> str:
    """One line for a start-up banner: who may use the web tier without a token."""
    if settings.auth == "insecure-no-auth":
        return (f"NO AUTHENTICATION on {settings.host} (TINGXIE_AUTH=insecure-no-auth): anyone who can reach "
                f"it uses the '{LOCAL_TENANT}' tenant; tokens are still checked when sent")
    if open_on_loopback(settings):
        return (f"no token needed from this machine (requests from it are the '{LOCAL_TENANT}' tenant); "
                "tokens are checked when sent")
    return "every request needs a token (tingxie tokens create --tenant NAME)"
