"""Shared fixtures: settings on each backend, a migrated database, the Flask app and client,
and ``live_service`` (real web and worker processes)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from core.settings import Settings
from tests.support.service import Service, free_port

# Fixtures shared by every folder (ffmpeg, engines, long speech, private servers...).
pytest_plugins = ["tests.support.fixtures"]

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_BASE = "redis://127.0.0.1:6379"


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    path = REPO.parent / "shared" / "data" / "speech"
    assert path.is_dir(), f"real speech expected at {path}"
    return path


@pytest.fixture
def speech_path(speech_dir):
    """speech_path('jfk.flac') -> Path of a real recording."""
    return lambda name: speech_dir / name


def _pg_available() -> bool:
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


def _redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_BASE, socket_connect_timeout=3).ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    if not _pg_available():
        pytest.fail("PostgreSQL is not answering on 127.0.0.1:5432 (.ci/run starts it)")
    name = f"tingxie_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url():
    """A Redis database number of its own, flushed before and after."""
    import redis

    if not _redis_available():
        pytest.fail("Redis is not answering on 127.0.0.1:6379 (.ci/run starts it)")
    mine = str(os.getpid())
    for number in range(1, 16):
        url = f"{REDIS_BASE}/{number}"
        db = redis.Redis.from_url(url)
        # Claim a database number with a marker key holding our pid, so concurrent test runs never
        # share one; a claim whose process is gone (a run killed from outside) is taken over.
        holder = db.get("tingxie-test-lock")
        if holder is not None and holder.decode().isdigit() and not _alive(int(holder)):
            db.delete("tingxie-test-lock")
        if db.set("tingxie-test-lock", mine, nx=True, ex=3600):
            db.flushdb()
            db.set("tingxie-test-lock", mine, ex=3600)
            yield url
            db.flushdb()
            return
    pytest.fail("no free Redis database number")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_settings(tmp_path: Path, **overrides) -> Settings:
    base = dict(
        data_dir=tmp_path / "data",
        port=free_port(),
        gateway_port=free_port(),
        job_lease_s=6.0,
        preload_models=True,
    )
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def settings(tmp_path) -> Settings:
    """The embedded default: SQLite + filesystem broker under a temporary data directory."""
    return make_settings(tmp_path)


@pytest.fixture(params=["embedded", "servers"])
def any_settings(request, tmp_path) -> Settings:
    """Each test using this runs twice: on the embedded default and on PostgreSQL + Redis."""
    if request.param == "embedded":
        return make_settings(tmp_path)
    pg = request.getfixturevalue("postgres_url")
    rd = request.getfixturevalue("redis_url")
    return make_settings(tmp_path, database_url=pg, broker_url=rd)


@pytest.fixture
def db(any_settings):
    """A migrated database (on each backend) and its session factory."""
    from core.db import make_engine, make_sessionmaker
    from core.migrate import upgrade

    upgrade(any_settings)
    engine = make_engine(any_settings.database_url)
    yield make_sessionmaker(engine, any_settings.events_url)
    engine.dispose()


@pytest.fixture
def app(any_settings, db):
    from web import create_app

    app = create_app(any_settings, {"TESTING": True})
    yield app
    app.extensions["tingxie"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_service(tmp_path):
    """live_service(settings=None, workers=1) -> a started Service (web + workers), stopped after the test."""
    from core.migrate import upgrade

    started: list[Service] = []

    def start(settings: Settings | None = None, workers: int = 1) -> Service:
        settings = settings or make_settings(tmp_path)
        upgrade(settings)
        log_dir = tmp_path / f"logs{len(started)}"
        log_dir.mkdir()
        service = Service(settings=settings, log_dir=log_dir)
        started.append(service)
        service.start_web()
        for _ in range(workers):
            service.start_worker()
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (moto's, over HTTP) for the whole session; each test takes its own bucket."""
    from tests.support.s3 import S3Server

    server = S3Server.start(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    return s3_server.new_bucket()
