"""The database engine's sessions on PostgreSQL."""
from __future__ import annotations

from sqlalchemy import text

from core.db import CLIENT_LINK_CHECKS, SERVER_LINK_CHECKS, make_engine


def test_each_session_asks_both_ends_to_check_the_link(postgres_url):
    """A host cut off mid-transaction must not keep its row locks for the OS's two hours: each
    session asks the server to probe a silent client and to give up on an unacknowledged reply, and
    libpq does the same on the client's side (tests/system/faults/test_link_cut.py cuts a link)."""
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            for name, value in SERVER_LINK_CHECKS.items():
                assert conn.execute(text(f"SHOW {name}")).scalar_one() in (str(value), f"{value}s", f"{value}ms")
            parameters = conn.connection.dbapi_connection.info.get_parameters()
            for name, value in CLIENT_LINK_CHECKS.items():
                assert parameters[name] == str(value), name
            assert conn.execute(text("SELECT 1")).scalar_one() == 1  # the SETs' transaction was committed
    finally:
        engine.dispose()
