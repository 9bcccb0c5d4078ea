"""The database engine's sessions on PostgreSQL."""
from __future__ import annotations

from sqlalchemy import text

from core.db import SERVER_KEEPALIVES, make_engine


def test_the_server_and_the_client_probe_a_silent_connection(postgres_url):
    """A host cut off mid-transaction must not keep its row locks for the OS's two hours: each
    session asks the server for keepalives (30 s idle, then every 10 s, three unanswered), and
    libpq keeps its own on the client's side."""
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            for name, value in SERVER_KEEPALIVES.items():
                assert conn.execute(text(f"SHOW {name}")).scalar_one() in (str(value), f"{value}s")
            info = conn.connection.dbapi_connection.info
            assert info.get_parameters()["keepalives"] == "1"
            assert info.get_parameters()["keepalives_idle"] == "30"
            assert conn.execute(text("SELECT 1")).scalar_one() == 1  # the SETs' transaction was committed
    finally:
        engine.dispose()
