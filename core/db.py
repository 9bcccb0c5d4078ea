"""Database engine and sessions. SQLite (the embedded default) runs in WAL mode with a busy timeout."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core import events


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_engine(database_url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                           connect_args=dict(KEEPALIVES))

    @event.listens_for(engine, "connect")
    def _server_keepalives(dbapi_connection, _record):
        # A SET, not libpq's startup "options", which PgBouncer refuses.
        with dbapi_connection.cursor() as cursor:
            for name, value in SERVER_KEEPALIVES.items():
                cursor.execute(f"SET {name} = {int(value)}")
        dbapi_connection.commit()

    return engine


# A host cut off the network in the middle of a transaction leaves its PostgreSQL session open,
# with its row locks, until the server notices the client is gone: by default after the OS's two
# hours of keepalive. A worker that lost its link while writing a job's progress kept that job's
# row locked, and the worker taking the job over after its lease waited on the lock for good (seen in
# tests/system/test_three_hosts.py with both CPUs busy). With keepalives every 10 s after 30 s idle,
# three unanswered, the server ends such a session within about a minute and the takeover goes
# ahead; the client side's own keepalives (libpq's) let a worker that lost its link find out too.
SERVER_KEEPALIVES = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def make_sessionmaker(engine: Engine, events_url: str = "") -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    events.attach(factory, events_url)
    return factory


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
