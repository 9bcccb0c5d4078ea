"""Database engine and sessions. SQLite (the embedded default) runs in WAL mode with a busy timeout."""
from __future__ import annotations

import os
import weakref
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from core import events


# Every engine made here, so that a forked child starts each with a pool of its own.
_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def _new_pools_in_child() -> None:
    """After a fork, in the child: each engine gets a new, empty pool. The parent's pool and its
    connections are left alone (``close=False``: a connection's socket or file is the parent's),
    and so is the pool's lock, which a thread of the parent may have held at the moment of the fork
    and which nobody in the child would ever release. A Celery worker forks a pool process while
    its sweeper and announcer threads use the database; a pool process forked while the sweeper
    was inside the pool would wait on that lock for good, its job never started (the likely cause of
    a job received and never started, under load, in tests/system/faults/test_attempts.py)."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_new_pools_in_child)


def make_engine(database_url: str) -> Engine:
    engine = _make_engine(database_url)
    _ENGINES.add(engine)
    return engine


def _make_engine(database_url: str) -> Engine:
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
                           connect_args=dict(CLIENT_LINK_CHECKS))

    @event.listens_for(engine, "connect")
    def _server_link_checks(dbapi_connection, _record):
        # SETs, not libpq's startup "options", which PgBouncer refuses.
        with dbapi_connection.cursor() as cursor:
            for name, value in SERVER_LINK_CHECKS.items():
                cursor.execute(f"SET {name} = {int(value)}")
        dbapi_connection.commit()

    return engine


# A host cut off the network in the middle of a transaction leaves its PostgreSQL session open, with
# its row locks, until the server finds the client gone: by default after two hours of silence
# (the OS's keepalive), or some 15 minutes of retransmitting a reply nobody acknowledges. A worker
# that lost its link while writing a job's progress kept that job's row locked, and the worker
# taking the job over after its lease waited on the lock (tests/system/test_three_hosts.py, with
# both CPUs busy). The server now probes a silent client after 30 s, every 10 s, and gives up after
# three unanswered probes; a reply unacknowledged for 60 s ends the session too. Either way the
# session ends within about a minute and its locks go with it. libpq does the same the other way,
# so that a worker whose link is gone finds out.
SERVER_LINK_CHECKS = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3,
                      "tcp_user_timeout": 60_000}
CLIENT_LINK_CHECKS = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
                      "tcp_user_timeout": 60_000}


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
