"""Migrated databases for tests, migrated once per process and cloned per test: a file copy on
SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL (Alembic takes about a second a database;
a clone takes milliseconds). Each pytest-xdist worker keeps its own templates."""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from core.migrate import upgrade
from core.settings import Settings

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432"
REDIS_BASE = "redis://127.0.0.1:6379"
# The databases tests/conftest.py's postgres_url creates: the only ones a clone may replace.
PG_TEST_PREFIX = "tingxie_"


class MigratedTemplates:
    """``migrate(settings)``: the database ``settings`` names, at the head revision."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._sqlite: Path | None = None
        self._postgres: str | None = None

    def _sqlite_template(self) -> Path:
        if self._sqlite is None:
            settings = Settings(data_dir=self.folder / "sqlite")
            upgrade(settings)
            self._sqlite = Path(settings.database_url.removeprefix("sqlite:///"))
        return self._sqlite

    def _postgres_template(self) -> str:
        import psycopg

        if self._postgres is None:
            name = f"{PG_TEST_PREFIX}template_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            # Alembic's env.py disposes its engine: the template has no open connection left,
            # which CREATE DATABASE ... TEMPLATE requires.
            upgrade(Settings(data_dir=self.folder / "postgres", database_url=f"{PG_BASE}/{name}"))
            self._postgres = name
        return self._postgres

    def migrate(self, settings: Settings) -> None:
        url = settings.database_url
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self._sqlite_template(), path)
                return
        elif url.startswith(("postgresql", "postgres")):
            name = urlsplit(url).path.lstrip("/")
            if name.startswith(PG_TEST_PREFIX) and name != self._postgres:
                import psycopg

                template = self._postgres_template()
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                return
        upgrade(settings)  # a database a test made itself: migrate it as production does

    def close(self) -> None:
        if self._postgres is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self._postgres}" WITH (FORCE)')


# --- The shared servers (127.0.0.1:5432 and :6379): a database of one's own on each -------------

def postgres_available() -> bool:
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_BASE, socket_connect_timeout=3).ping())
    except redis.ConnectionError:
        return False


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database on the shared server, dropped afterwards."""
    import psycopg

    name = f"{PG_TEST_PREFIX}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_BASE}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def claimed_redis() -> Iterator[str]:
    """The URL of a Redis database number of the shared server no other test run holds, flushed
    before and after. A claim is a marker key holding our pid; a claim whose process is gone (a
    run killed from outside) is taken over."""
    import redis

    mine = str(os.getpid())
    for number in range(1, 16):
        url = f"{REDIS_BASE}/{number}"
        db = redis.Redis.from_url(url)
        holder = db.get("tingxie-test-lock")
        if holder is not None and holder.decode().isdigit() and not _alive(int(holder)):
            db.delete("tingxie-test-lock")
        if db.set("tingxie-test-lock", mine, nx=True, ex=3600):
            db.flushdb()
            db.set("tingxie-test-lock", mine, ex=3600)
            try:
                yield url
            finally:
                db.flushdb()
            return
    raise LookupError("no free Redis database number (1-15) on 127.0.0.1:6379")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
