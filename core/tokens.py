"""Tokens: API tokens, page sessions and one-time sign-in codes, stored hashed.

A token reads ``tx_<id>_<secret>``: a short prefix that says what it is (``tx`` an API token sent as
``Authorization: Bearer``, ``txs`` a page session carried by its cookie, ``txc`` a one-time sign-in
code), the public id that ``tingxie tokens list`` shows, and 256 random bits from
:func:`secrets.token_urlsafe`. The database keeps the id and the SHA-256 of the whole string, never
the string: a copy of the database lets nobody in. The secret has full entropy, so a fast hash is
the right one (a slow password hash protects guessable secrets, which these are not); the stored
and computed hashes are compared with :func:`hmac.compare_digest`.

Nothing here logs a token: only ids appear in messages and logs.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core.errors import UnauthorizedError
from core.models import Token, utcnow
from core.tenants import tenant_name

API, SESSION, SIGNIN = "api", "session", "signin"
PREFIXES = {API: "tx", SESSION: "txs", SIGNIN: "txc"}
_KIND_BY_PREFIX = {prefix: kind for kind, prefix in PREFIXES.items()}
_SHAPE = re.compile(r"^(tx|txs|txc)_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")
# A one-time sign-in code is good for this long unless used first.
SIGNIN_TTL = timedelta(hours=1)
# last_used_at is written at most this often per token, so a busy client does not write on every request.
_TOUCH_EVERY = timedelta(seconds=60)
_CSRF_CONTEXT = b"tingxie csrf v1"
# Compared against when the id is unknown, so that path costs what a real comparison costs.
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its secret."""

    id: str
    kind: str
    tenant: str
    admin: bool
    name: str | None
    parent_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def display(self) -> str:
        """How people refer to it: prefix and id, never the secret (``tx_3f9a0c71be42_…``)."""
        return f"{PREFIXES[self.kind]}_{self.id}_…"

    def state(self, now: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and _aware(self.expires_at) <= (now or utcnow()):
            return "expired"
        return "active"

    @classmethod
    def of(cls, row: Token) -> "TokenInfo":
        return cls(row.id, row.kind, row.tenant, bool(row.admin), row.name, row.parent_id, _aware(row.created_at),
                   _aware(row.expires_at), _aware(row.revoked_at), _aware(row.last_used_at))


@dataclass(frozen=True)
class Issued:
    """A token just made: ``secret`` is shown once and is not stored."""

    secret: str
    info: TokenInfo


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """(kind, id) of a well-formed token string; None for anything else."""
    match = _SHAPE.match(token or "")
    if match is None:
        return None
    return _KIND_BY_PREFIX[match.group(1)], match.group(2)


def create(session: Session, *, tenant: str, admin: bool = False, kind: str = API, name: str | None = None,
           expires_at: datetime | None = None, parent_id: str | None = None) -> Issued:
    """A new token of ``kind`` for ``tenant``; the caller commits and shows ``secret`` once."""
    if kind not in PREFIXES:
        raise ValueError(f"unknown token kind {kind!r}")
    tenant_name(tenant)
    token_id = secrets.token_hex(6)
    secret = f"{PREFIXES[kind]}_{token_id}_{secrets.token_urlsafe(32)}"
    row = Token(id=token_id, kind=kind, secret_hash=digest(secret), tenant=tenant, admin=admin,
                name=(name or None), parent_id=parent_id, created_at=utcnow(), expires_at=expires_at)
    session.add(row)
    session.flush()
    return Issued(secret, TokenInfo.of(row))


def verify(session: Session, token: str, *, kinds: tuple[str, ...] = (API,)) -> TokenInfo:
    """The token's record if ``token`` is one of ``kinds`` and is neither revoked nor expired (a
    session also needs its parent token to be valid); else :class:`UnauthorizedError` saying which."""
    parsed = parse(token)
    if parsed is None or parsed[0] not in kinds:
        raise UnauthorizedError("the token is not valid")
    kind, token_id = parsed
    row = session.get(Token, token_id)
    stored = row.secret_hash if row is not None and row.kind == kind else _DUMMY_HASH
    if not hmac.compare_digest(stored, digest(token)) or row is None:
        raise UnauthorizedError("the token is not valid")
    info = TokenInfo.of(row)
    now = utcnow()
    state = info.state(now)
    if state == "active" and info.parent_id is not None:
        parent = session.get(Token, info.parent_id)
        state = TokenInfo.of(parent).state(now) if parent is not None else "revoked"
    if state != "active":
        if kind == SIGNIN:
            state = "used up" if state == "revoked" else state
            raise UnauthorizedError(f"the sign-in code {info.display} is {state}; ask for a new link "
                                    "(tingxie tokens signin)")
        raise UnauthorizedError(f"the {'session' if kind == SESSION else 'token'} {info.display} is {state}")
    if info.last_used_at is None or now - info.last_used_at > _TOUCH_EVERY:
        session.execute(update(Token).where(Token.id == token_id).values(last_used_at=now))
    return info


def invalid(session: Session, ids: set[str] | frozenset[str], *, chunk: int = 500) -> set[str]:
    """Which of the token ids ``ids`` are no longer valid (revoked, expired or gone): one query per
    ``chunk`` ids, for re-checking the tokens of open sockets (core.revocation)."""
    now, active = utcnow(), set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), chunk):
        rows = session.execute(select(Token).where(Token.id.in_(ordered[start:start + chunk]))).scalars()
        active.update(row.id for row in rows if TokenInfo.of(row).state(now) == "active")
    return set(ids) - active


def revoke(session: Session, token_id: str) -> bool:
    """Revoke a token (by id, display form or whole string) and every session signed in with it.
    False when there is no such token or it was already revoked."""
    parsed = parse(token_id)
    if parsed is not None:
        token_id = parsed[1]
    else:
        token_id = re.sub(r"^(txs|txc|tx)_", "", token_id.strip()).rstrip("_…. ")
    now = utcnow()
    result = session.execute(
        update(Token).where(Token.id == token_id, Token.revoked_at.is_(None)).values(revoked_at=now))
    session.execute(update(Token).where(Token.parent_id == token_id, Token.revoked_at.is_(None))
                    .values(revoked_at=now))
    return result.rowcount == 1


def list_tokens(session: Session, *, kinds: tuple[str, ...] = (API,)) -> list[TokenInfo]:
    rows = session.execute(select(Token).where(Token.kind.in_(kinds)).order_by(Token.created_at)).scalars()
    return [TokenInfo.of(row) for row in rows]


def start_session(session: Session, credential: str, *, hours: float) -> Issued:
    """Sign in: an API token or a one-time sign-in code becomes a page session (its own token,
    kept in an HttpOnly cookie). A session lasts ``hours`` and never past its API token; a sign-in
    code is used up."""
    info = verify(session, credential, kinds=(API, SIGNIN))
    forget_expired(session)  # signing in is rare: a good moment to drop sessions that ended long ago
    expires = utcnow() + timedelta(hours=hours)
    if info.expires_at is not None and info.kind == API:
        expires = min(expires, info.expires_at)
    if info.kind == SIGNIN:
        used = session.execute(update(Token).where(Token.id == info.id, Token.revoked_at.is_(None))
                               .values(revoked_at=utcnow()))
        if used.rowcount != 1:  # two sign-ins raced for one code: only the first gets in
            raise UnauthorizedError(f"the sign-in code {info.display} is used up")
    return create(session, tenant=info.tenant, admin=info.admin, kind=SESSION, name="page session",
                  expires_at=expires, parent_id=info.id if info.kind == API else None)


def end_session(session: Session, token_id: str) -> None:
    session.execute(update(Token).where(Token.id == token_id, Token.kind == SESSION, Token.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))


def signin_code(session: Session, *, tenant: str, admin: bool = False) -> Issued:
    """A one-time code that signs the page in as ``tenant`` (an admin only when asked, as for
    :func:`create`; ``tingxie up`` prints an admin link for the first user)."""
    return create(session, tenant=tenant, admin=admin, kind=SIGNIN, name="one-time sign-in",
                  expires_at=utcnow() + SIGNIN_TTL)


def forget_expired(session: Session, older_than: timedelta = timedelta(days=7)) -> int:
    """Delete sessions and sign-in codes that ended a while ago (API tokens stay listed)."""
    cutoff = utcnow() - older_than
    rows = session.execute(select(Token.id).where(
        Token.kind.in_((SESSION, SIGNIN)),
        or_(Token.revoked_at < cutoff, Token.expires_at < cutoff))).scalars().all()
    for token_id in rows:
        session.delete(session.get(Token, token_id))
    return len(rows)


def csrf_token(session_secret: str) -> str:
    """The page's CSRF token: bound to its session (an HMAC keyed by the session's secret), so it
    needs no storage of its own and is worthless with any other session."""
    return hmac.new(session_secret.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def check_csrf(session_secret: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(session_secret), presented)


_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str, now: datetime | None = None) -> datetime | None:
    """``never``, a duration (``90m``, ``12h``, ``30d``, ``2w``) or an ISO date/time (UTC when no zone)."""
    text = text.strip().lower()
    now = now or utcnow()
    if text in ("never", "none", ""):
        return None
    match = _DURATION.match(text)
    if match:
        return now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.upper() if "t" in text else text)
    except ValueError:
        raise ValueError(f"{text!r}: expected never, a duration like 30d, 12h or 90m, or a date like 2026-01-31")
    when = _aware(when)
    if when <= now:
        raise ValueError(f"{text!r} is in the past")
    return when
