"""Migrated databases for tests, migrated once per process and cloned per test: a file copy on
SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL (Alembic takes about a second a database;
a clone takes milliseconds). Each pytest-xdist worker keeps its own templates."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from core.migrate import upgrade
from core.settings import Settings

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432"
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
