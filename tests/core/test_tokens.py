"""Tokens and the access policy, on both backends: what is stored, what is checked, who sees what."""
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core import access, tokens
from core.db import session_scope
from core.errors import UnauthorizedError
from core.models import Token, utcnow
from core.settings import Settings


def test_a_token_is_shown_once_and_only_its_hash_is_stored(db):
    with session_scope(db) as s:
        issued = tokens.create(s, tenant="team-a", name="ci")
    secret = issued.secret
    prefix, token_id, random_part = secret.split("_", 2)
    assert prefix == "tx" and token_id == issued.info.id and len(random_part) == 43
    assert issued.info.display == f"tx_{token_id}_…"
    with session_scope(db) as s:
        row = s.get(Token, token_id)
        stored = [str(v) for v in (row.id, row.kind, row.secret_hash, row.tenant, row.name)]
    assert not any(random_part in value for value in stored)
    assert row.secret_hash == tokens.digest(secret) and len(row.secret_hash) == 64
    with session_scope(db) as s:
        info = tokens.verify(s, secret)
    assert (info.tenant, info.admin, info.kind) == ("team-a", False, "api")


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character off
    lambda t: "txs" + t[2:],  # an API token offered as a session
    lambda t: t.replace("tx_", "tx_0"),  # malformed
    lambda t: "",
    lambda t: "tx_" + "0" * 12 + "_" + t.split("_", 2)[2],  # an unknown id with a real secret
])
def test_anything_but_the_exact_token_is_refused(db, mangle):
    with session_scope(db) as s:
        secret = tokens.create(s, tenant="team-a").secret
    with session_scope(db) as s, pytest.raises(UnauthorizedError) as caught:
        tokens.verify(s, mangle(secret))
    assert caught.value.status == 401 and secret not in caught.value.message


def test_revoked_and_expired_tokens_say_so_and_revoking_ends_sessions(db):
    with session_scope(db) as s:
        api = tokens.create(s, tenant="team-a", expires_at=utcnow() + timedelta(days=1))
        session = tokens.start_session(s, api.secret, hours=12)
    assert session.info.expires_at <= api.info.expires_at + timedelta(seconds=1)  # never past its token
    with session_scope(db) as s:
        assert tokens.verify(s, session.secret, kinds=(tokens.SESSION,)).tenant == "team-a"
        with pytest.raises(UnauthorizedError):
            tokens.verify(s, session.secret)  # a session is not an API token
        assert tokens.revoke(s, api.info.display)
        assert not tokens.revoke(s, api.info.id)  # already revoked
    with session_scope(db) as s:
        for secret, kinds in ((api.secret, (tokens.API,)), (session.secret, (tokens.SESSION,))):
            with pytest.raises(UnauthorizedError, match="revoked"):
                tokens.verify(s, secret, kinds=kinds)
        expired = tokens.create(s, tenant="team-a", expires_at=utcnow() + timedelta(hours=1))
        s.execute(update(Token).where(Token.id == expired.info.id).values(expires_at=utcnow() - timedelta(seconds=1)))
    with session_scope(db) as s, pytest.raises(UnauthorizedError, match="expired"):
        tokens.verify(s, expired.secret)


def test_a_sign_in_code_is_used_once_and_makes_an_admin_session(db):
    with session_scope(db) as s:
        code = tokens.signin_code(s, tenant="local", admin=True)
    assert code.secret.startswith("txc_") and code.info.expires_at <= utcnow() + tokens.SIGNIN_TTL
    with session_scope(db) as s:
        session = tokens.start_session(s, code.secret, hours=12)
    assert session.info.admin and session.info.tenant == "local" and session.info.parent_id is None
    with session_scope(db) as s, pytest.raises(UnauthorizedError, match="used up"):
        tokens.start_session(s, code.secret, hours=12)


def test_listing_shows_state_never_secrets(db):
    with session_scope(db) as s:
        a = tokens.create(s, tenant="a")
        b = tokens.create(s, tenant="b", admin=True)
        tokens.revoke(s, b.info.id)
        tokens.start_session(s, a.secret, hours=1)
    with session_scope(db) as s:
        listed = tokens.list_tokens(s)
        everything = tokens.list_tokens(s, kinds=(tokens.API, tokens.SESSION, tokens.SIGNIN))
    assert [(t.tenant, t.admin, t.state()) for t in listed] == [("a", False, "active"), ("b", True, "revoked")]
    assert len(everything) == 3 and not hasattr(listed[0], "secret")


def test_old_sessions_and_codes_are_forgotten(db):
    with session_scope(db) as s:
        api = tokens.create(s, tenant="a")
        session = tokens.start_session(s, api.secret, hours=1)
        tokens.end_session(s, session.info.id)
        s.execute(update(Token).where(Token.id == session.info.id).values(revoked_at=utcnow() - timedelta(days=8)))
    with session_scope(db) as s:
        assert tokens.forget_expired(s) == 1
    with session_scope(db) as s:
        assert s.execute(select(Token.id)).scalars().all() == [api.info.id]


@pytest.mark.parametrize("text,hours", [("90m", 1.5), ("12h", 12), ("30d", 720), ("2w", 336)])
def test_expiry_durations(text, hours):
    now = utcnow()
    assert tokens.parse_expiry(text, now) == now + timedelta(hours=hours)


def test_expiry_dates_and_refusals():
    assert tokens.parse_expiry("never") is None
    assert tokens.parse_expiry("2999-01-31").year == 2999
    for bad in ("soon", "2001-01-01", "-3d"):
        with pytest.raises(ValueError):
            tokens.parse_expiry(bad)


def test_csrf_tokens_belong_to_their_session():
    assert tokens.check_csrf("txs_a", tokens.csrf_token("txs_a"))
    assert not tokens.check_csrf("txs_b", tokens.csrf_token("txs_a"))
    assert not tokens.check_csrf("txs_a", None) and not tokens.check_csrf("txs_a", "")


# --- The access policy ----------------------------------------------------------------------------

def test_principals_see_their_tenant_and_admins_every_tenant():
    assert access.Principal("a").can_see("a") and not access.Principal("a").can_see("b")
    assert access.Principal("ops", admin=True).can_see("b")
    anonymous = access.anonymous_principal()
    assert anonymous.tenant == "local" and not anonymous.admin and anonymous.anonymous


@pytest.mark.parametrize("settings,peer,host,headers,allowed", [
    (Settings(), "127.0.0.1", "127.0.0.1:8000", {}, True),
    (Settings(), "::1", "[::1]:8000", {}, True),
    (Settings(), "127.0.0.1", "localhost:8000", {}, True),
    (Settings(), "10.0.0.5", "127.0.0.1:8000", {}, False),
    (Settings(), "127.0.0.1", "rebound.example:8000", {}, False),
    (Settings(), "127.0.0.1", "127.0.0.1:8000", {"x-forwarded-for": "203.0.113.1"}, False),
    (Settings(auth="required"), "127.0.0.1", "127.0.0.1:8000", {}, False),
    (Settings(host="0.0.0.0"), "127.0.0.1", "127.0.0.1:8000", {}, False),
    (Settings(trusted_proxies=1), "127.0.0.1", "127.0.0.1:8000", {}, False),
    (Settings(host="0.0.0.0", auth="insecure-no-auth"), "10.0.0.5", "asr.lan", {}, True),
])
def test_who_may_use_the_web_tier_without_a_token(settings, peer, host, headers, allowed):
    assert access.anonymous_web_allowed(settings, peer=peer, host_header=host, headers=headers) is allowed


def test_bearer_headers():
    assert access.bearer(None) is None
    assert access.bearer("Bearer tx_abc") == access.bearer("bearer  tx_abc ") == "tx_abc"
    for bad in ("Basic dXNlcjpwdw==", "Bearer", "Bearer   ", "tx_abc"):
        with pytest.raises(UnauthorizedError):
            access.bearer(bad)


def test_origins():
    settings = Settings(port=8000, allowed_origins=("https://console.example",))
    own = access.web_origins("http", "127.0.0.1:8000")
    assert access.origin_allowed(None, own, settings)
    assert access.origin_allowed("http://127.0.0.1:8000", own, settings)
    assert access.origin_allowed("https://console.example:443", own, settings)
    for bad in ("http://evil.example", "null", "http://127.0.0.1:8001", "https://127.0.0.1:8000"):
        assert not access.origin_allowed(bad, own, settings), bad
    gateway = access.gateway_origins(settings, "127.0.0.1:10095")
    assert access.origin_allowed("http://127.0.0.1:8000", gateway, settings)
    assert not access.origin_allowed("http://127.0.0.1:10095", gateway, settings)
    # A name that is not loopback proves nothing (a DNS-rebound page sends its own name as Host).
    rebound = access.gateway_origins(settings, "asr.lan:10095")
    assert rebound == () and not access.origin_allowed("http://asr.lan:8000", rebound, settings)
    assert access.origin_allowed("https://console.example", rebound, settings)


def test_the_gateway_principal(db):
    settings = Settings()
    with session_scope(db) as s:
        token = tokens.create(s, tenant="team-a").secret
    anonymous = access.gateway_principal(db, settings, authorization=None, query_token=None, require_token=False,
                                         tenant="funasr")
    assert anonymous.tenant == "funasr" and not anonymous.admin
    by_header = access.gateway_principal(db, settings, authorization=f"Bearer {token}", query_token=None,
                                         require_token=True, tenant="funasr")
    by_query = access.gateway_principal(db, settings, authorization=None, query_token=token, require_token=True,
                                        tenant="funasr")
    assert by_header.tenant == by_query.tenant == "team-a"
    for kwargs in ({"authorization": None, "query_token": None, "require_token": True},
                   {"authorization": "Bearer tx_nope", "query_token": None, "require_token": False},
                   {"authorization": None, "query_token": "", "require_token": False}):
        with pytest.raises(UnauthorizedError):
            access.gateway_principal(db, settings, tenant="funasr", **kwargs)
