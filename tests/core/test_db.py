"""The database engine: its sessions on PostgreSQL, its pools across a fork."""
from __future__ import annotations

import os
import select
import signal
import threading

import pytest
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


@pytest.mark.subprocess
def test_a_forked_child_gets_pools_of_its_own(tmp_path):
    """A Celery worker forks pool processes while its sweeper thread uses the database. The child
    of a fork made while another thread held an engine's pool lock must not wait on that lock (a
    copy nobody in the child will release): it gets a new pool, and the parent's connections are
    left to the parent."""
    engine = make_engine(f"sqlite:///{tmp_path / 'fork.db'}")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    parents_pool = engine.pool
    held, release = threading.Event(), threading.Event()

    def hold_the_pool_lock():
        with parents_pool._pool.mutex:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold_the_pool_lock)
    holder.start()
    held.wait()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one query, its answer down the pipe
        try:
            with engine.connect() as conn:
                answer = conn.execute(text("SELECT 42")).scalar_one()
            os.write(write, f"{answer} {engine.pool is not parents_pool}".encode())
        finally:
            os._exit(0)
    os.close(write)
    release.set()
    holder.join()
    try:
        ready, _, _ = select.select([read], [], [], 120)  # a bound for a broken child, not a timing
        assert ready, "the forked child waited on the pool lock its parent's thread held"
        assert os.read(read, 100).decode() == "42 True"
    finally:
        os.close(read)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    assert engine.pool is parents_pool
    with engine.connect() as conn:  # the parent's connections still work
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()
