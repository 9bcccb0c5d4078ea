"""``tingxie tokens create|list|revoke|signin``: API tokens, kept in the service's database.

A token is printed once, when it is made (on stdout alone, so ``TOKEN=$(tingxie tokens create ...)``
works); only its hash is stored. ``list`` and ``revoke`` name tokens by id (``tx_<id>_…``). Neither a
token nor a sign-in link is an admin unless ``--admin`` is given.
"""
from __future__ import annotations

import sys


def add_parser(subparsers):
    parser = subparsers.add_parser("tokens", help="create, list and revoke API tokens (tenants and admins)",
                                   description="Tokens let clients, the web page and the OpenAI SDK (as its "
                                               "api_key) use tingxie as a tenant; an admin token sees every tenant.")
    sub = parser.add_subparsers(dest="tokens_command", required=True)
    create = sub.add_parser("create", help="make a token and print it (once)")
    create.add_argument("--tenant", required=True, help="whose jobs the token submits and sees (e.g. team-a)")
    create.add_argument("--admin", action="store_true", help="may see every tenant's jobs")
    create.add_argument("--expires", default="never",
                        help="never (default), a duration (90m, 12h, 30d, 2w) or a date (2026-01-31)")
    create.add_argument("--name", help="a note to tell tokens apart in `tokens list`")
    listing = sub.add_parser("list", help="tokens with their tenant, state and last use (never the secret)")
    listing.add_argument("--all", action="store_true", help="also page sessions and sign-in codes")
    revoke = sub.add_parser("revoke", help="revoke a token (and the page sessions signed in with it)")
    revoke.add_argument("token", help="its id, as `tokens list` shows it (tx_<id>_…), or the token itself")
    signin = sub.add_parser("signin", help="print a one-time sign-in link for the web page (good for an hour)",
                            description="A link that signs the web page in once, as the tenant named: it sees "
                                        "that tenant's jobs only, unless --admin is given (as for tokens create).")
    signin.add_argument("--tenant", default="local", help="the tenant the page signs in as (default local)")
    signin.add_argument("--admin", action="store_true",
                        help="an admin session: sees every tenant's jobs (default: the tenant's own only)")
    signin.add_argument("--url", help="the page's address (default http://TINGXIE_HOST:TINGXIE_PORT)")
    return parser


def _db(settings):
    from core.db import make_engine, make_sessionmaker
    from core.migrate import upgrade

    upgrade(settings)
    return make_sessionmaker(make_engine(settings.database_url))


def signin_link(settings, *, tenant: str = "local", admin: bool = False, base_url: str | None = None) -> str:
    """A link that signs the page in once: the code rides in the URL's fragment, which browsers
    never send to a server or put in a Referer; the page exchanges it for a session."""
    from core import tokens
    from core.db import session_scope

    with session_scope(_db(settings)) as session:
        issued = tokens.signin_code(session, tenant=tenant, admin=admin)
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    base = (base_url or f"http://{host}:{settings.port}").rstrip("/")
    return f"{base}/#signin={issued.secret}"


def run(args) -> int:
    from core import tokens
    from core.db import session_scope
    from core.settings import Settings, tenant_name

    settings = Settings.from_env()
    if args.tokens_command == "signin":
        try:
            tenant = tenant_name(args.tenant)
        except ValueError as exc:
            print(f"tingxie tokens: --tenant {args.tenant!r}: {exc}", file=sys.stderr)
            return 2
        print(signin_link(settings, tenant=tenant, admin=args.admin, base_url=args.url))
        return 0
    db = _db(settings)
    if args.tokens_command == "create":
        try:
            tenant = tenant_name(args.tenant)
            expires = tokens.parse_expiry(args.expires)
        except ValueError as exc:  # a bad tenant name or expiry: say which, no traceback
            print(f"tingxie tokens: {exc}", file=sys.stderr)
            return 2
        with session_scope(db) as session:
            issued = tokens.create(session, tenant=tenant, admin=args.admin, name=args.name, expires_at=expires)
        info = issued.info
        role = "admin (every tenant)" if info.admin else f"tenant {info.tenant}"
        until = info.expires_at.isoformat(timespec="minutes") if info.expires_at else "never"
        print(f"token {info.display} for {role}, expires {until}; it is shown once, keep it now:", file=sys.stderr)
        print(issued.secret)
        return 0
    if args.tokens_command == "list":
        kinds = (tokens.API, tokens.SESSION, tokens.SIGNIN) if args.all else (tokens.API,)
        with session_scope(db) as session:
            rows = tokens.list_tokens(session, kinds=kinds)
        print(f"{'id':<19} {'tenant':<16} {'admin':<5} {'state':<8} {'expires':<17} {'last used':<17} name")
        for info in rows:
            stamp = lambda t: t.isoformat(timespec="minutes")[:16] if t else "-"  # noqa: E731
            print(f"{info.display:<19} {info.tenant:<16} {'yes' if info.admin else 'no':<5} {info.state():<8} "
                  f"{stamp(info.expires_at):<17} {stamp(info.last_used_at):<17} {info.name or ''}")
        return 0
    with session_scope(db) as session:
        revoked = tokens.revoke(session, args.token)
    if not revoked:
        print(f"tingxie tokens: no active token {args.token!r} (tingxie tokens list shows them)", file=sys.stderr)
        return 1
    print(f"revoked {args.token}; its page sessions are signed out", file=sys.stderr)
    return 0
