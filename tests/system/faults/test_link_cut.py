"""A host whose link is cut in the middle of a transaction: PostgreSQL ends its session, and the
session's row locks go with it, within about a minute (core.db's link checks), so that another host
can go on with the row. Two ways to be cut off: while the transaction sits idle (the server hears
nothing: its keepalive probes go unanswered) and while the server is sending a reply (nothing is
acknowledged: the TCP user timeout). Without the checks the first waits two hours, the second
about fifteen minutes."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.faults import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[3]

# Locks row ``ROW`` through core.db's engine, says so, then, once told, (busy) asks for a reply that
# the server starts sending after a 5 s pause (the test cuts the link during the pause) and that is
# too big for the socket's buffers, or (idle) does nothing more.
_HOLDER = textwrap.dedent("""
    import sys, time
    from sqlalchemy import text
    from core.db import make_engine

    url, row, mode = sys.argv[1:]
    connection = make_engine(url).connect()
    connection.execute(text("UPDATE rows SET n = n + 1 WHERE id = :id"), {"id": int(row)})
    print("locked", flush=True)
    sys.stdin.readline()
    if mode == "busy":
        connection.execute(text("SELECT pg_sleep(5), repeat('x', 4000000)"))
    time.sleep(3600)
""")


def _busy_wait_event(engine) -> str | None:
    """What the busy holder's server process waits on (PgSleep, ClientWrite...), None if nothing."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT wait_event FROM pg_stat_activity WHERE query LIKE '%repeat(%' "
                                 "AND query NOT LIKE '%pg_stat_activity%'")).scalar_one_or_none()


def test_a_cut_host_does_not_keep_its_row_locks(subnet):
    from tests.support.servers import PrivatePostgres

    services = subnet.add_host("svc")
    pg = PrivatePostgres(host=services.address, prefix=services.prefix, clients=subnet.cidr)
    holders = {}
    try:
        pg.start()
        engine = create_engine(pg.url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE rows (id int PRIMARY KEY, n int NOT NULL)"))
            conn.execute(text("INSERT INTO rows VALUES (1, 0), (2, 0)"))
        for row, mode in ((1, "idle"), (2, "busy")):
            host = subnet.add_host(mode)
            proc = subprocess.Popen([*host.prefix, sys.executable, "-c", _HOLDER, pg.url, str(row), mode],
                                    cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            holders[row] = (host, proc)
            assert proc.stdout.readline().strip() == "locked"
        with engine.connect() as conn:
            held = conn.execute(text("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                     "WHERE c.relname = 'rows' AND l.mode = 'RowExclusiveLock'")).scalar_one()
        assert held == 2
        for host, proc in holders.values():
            proc.stdin.write("go\n")
            proc.stdin.flush()
        # The links go while the busy holder's query pauses, so that its reply goes out into a dead link.
        wait_for(lambda: _busy_wait_event(engine) == "PgSleep", 120, "the busy holder's query to start")
        cut_at = time.monotonic()
        for host, _ in holders.values():
            host.cut()
        # The server is stuck sending the reply: unacknowledged data, the case keepalives never reach.
        wait_for(lambda: _busy_wait_event(engine) == "ClientWrite", 120, "the server to block sending the reply")
        waited = {}
        for row in holders:
            with engine.begin() as conn:
                # Far past the checks' minute, far short of the OS's defaults.
                conn.execute(text("SET LOCAL lock_timeout = '300s'"))
                conn.execute(text("UPDATE rows SET n = n + 10 WHERE id = :id"), {"id": row})
            waited[row] = time.monotonic() - cut_at
        print(f"row locks released after the cut: idle {waited[1]:.0f} s, busy {waited[2]:.0f} s")
        with engine.connect() as conn:
            # Each holder's own change was rolled back with its session; ours stands.
            assert dict(conn.execute(text("SELECT id, n FROM rows")).all()) == {1: 10, 2: 10}
        engine.dispose()
    finally:
        for _, proc in holders.values():
            proc.kill()
            proc.communicate()
        pg.remove()
