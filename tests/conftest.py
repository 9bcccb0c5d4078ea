"""Shared fixtures: settings on each backend, a migrated database, the Flask app and client,
and ``live_service`` (real web and worker processes); and the tiers every test is sorted into.

Tiers (markers, set here at collection; README "Development"), by what a test touches:
  unit       no server, no subprocess, no model, no network;
  component  the app in process on the embedded default, ffmpeg on small files, the tiny FunASR
             models, the offline engine in process;
  backends   the same on PostgreSQL + Redis (the ``servers`` half of ``any_settings``, postgres_url,
             redis_url);
  system     live processes: everything under tests/system/, and any test elsewhere that takes a
             fixture starting one (live_service...).
A test gets the highest tier any of its rules gives it: its folder, the fixtures it takes (all of
them, through other fixtures), or a marker saying what it starts (``@pytest.mark.cli``: the tingxie
CLI in a process of its own, system; ``@pytest.mark.subprocess``: another process, component;
``@pytest.mark.network``: a socket, even to a server the test runs itself, component).
Only this file sets the tier markers."""
from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
from pathlib import Path

import flask
import pytest

from core.settings import Settings
from tests.support.flask_client import ClosingClient
from tests.support.service import Service
from tests.support.settings import REPO, make_settings
from tests.support.speech import SPEECH_DIR

# Every app's test_client() (tests/support/flask_client.py).
flask.Flask.test_client_class = ClosingClient

# Fixtures shared by every folder (ffmpeg, engines, long speech, private servers...).
pytest_plugins = ["tests.support.fixtures"]

TIERS = ("unit", "component", "backends", "system")
# Folders (relative to tests/) whose tests are at least this tier: the folder says what they touch.
FOLDER_TIERS = {
    "system": "system",
    "web": "component",
    "gateway": "component",
    "media": "component",
    "pipeline/funasr": "component",
}
# Fixtures that start real processes, reach PostgreSQL/Redis, or load a model or ffmpeg.
FIXTURE_TIERS = {
    "live_service": "system", "shared_service": "system", "private_redis": "system",
    "private_postgres": "system", "subnet": "system",
    "postgres_url": "backends", "redis_url": "backends",
    "settings": "component", "any_settings": "component", "db": "component", "app": "component",
    "client": "component", "engine": "component", "funasr_model_dir": "component",
    "load_funasr": "component", "funasr_engine": "component", "ffmpeg": "component",
    "each_ffmpeg": "component", "make_media": "component", "long_speech": "component",
    "long_zh_wav": "component", "s3_server": "component", "s3_bucket": "component",
    "hanging_ffmpeg": "component", "webhook_receiver": "component", "transcribe_cli": "system", "module_settings": "component",
}
# Markers a test sets itself, saying what it starts.
MARKER_TIERS = {"cli": "system", "live": "system", "subprocess": "component", "network": "component"}


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    assert SPEECH_DIR.is_dir(), f"real speech expected at {SPEECH_DIR}"
    return SPEECH_DIR


@pytest.fixture
def speech_path(speech_dir):
    """speech_path('jfk.flac') -> Path of a real recording."""
    return lambda name: speech_dir / name


def tier_of(item: pytest.Item) -> str:
    """The tier ``item`` belongs to: the highest its folder, fixtures and own markers give."""
    rank = [0]
    relative = Path(str(item.path)).resolve().relative_to(REPO / "tests").as_posix()
    for folder, tier in FOLDER_TIERS.items():
        if relative.startswith(folder + "/"):
            rank.append(TIERS.index(tier))
    for name in getattr(item, "fixturenames", ()):
        if name in FIXTURE_TIERS:
            rank.append(TIERS.index(FIXTURE_TIERS[name]))
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "servers" in (callspec.params.get("any_settings"),
                                              callspec.params.get("module_settings")):
        rank.append(TIERS.index("backends"))
    for marker, tier in MARKER_TIERS.items():
        if item.get_closest_marker(marker) is not None:
            rank.append(TIERS.index(tier))
    return TIERS[max(rank)]


def pytest_configure(config):
    # A suite started in the background by a non-interactive shell (`make test &` in a script, as a
    # CI runner may start it) inherits SIGINT ignored, as would every process a test starts: the
    # tests that press Ctrl-C on `tingxie up` or `tingxie submit --wait` would wait for ever. The
    # processes a test starts begin as from a terminal, with SIGINT at its default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: the {tier} tier (set by tests/conftest.py; README Development)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(tier_of(item))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Fixtures of any scope are set up after this: a live process started for a test outside the
    system tier fails (tests.support.service), whichever fixture starts it."""
    from tests.support import service

    service.running_tier = next((t for t in TIERS if item.get_closest_marker(t) is not None), None)


@pytest.fixture(autouse=True)
def _unit_touches_nothing(request, monkeypatch):
    """A unit test that starts a process or opens a network connection fails, saying how to
    place it: the tiers stay what they say, and ``make test-unit`` needs nothing running. The
    refusal is an OSError, so that a library holding a socket closes it as on any failed connect;
    and it fails the test even when the code under test catches it (an S3 client retrying, then
    reporting the store unreachable, would otherwise pass for the behaviour the test checks)."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    refused: list[str] = []

    def refuse(what):
        def refuse_(*args, **kwargs):
            refused.append(f"a unit test {what}: take the fixture that provides it, or mark the test "
                           "(tests/conftest.py, tiers)")
            raise PermissionError(refused[-1])
        return refuse_

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("started a process (mark it subprocess)"))
    monkeypatch.setattr(socket.socket, "connect", refuse("opened a network connection (mark it network)"))
    yield
    if refused:
        pytest.fail(refused[0], pytrace=False)


@pytest.fixture(autouse=True)
def _close_services(monkeypatch):
    """Every ``Services`` a test starts (an app's, a dispatch world's...) has its connections
    closed when the test ends, whether or not the test closes it: a connection left to the garbage
    collector is a ResourceWarning, which fails whichever later test the collector runs in. Closing
    twice is harmless, and a closed one still works (it connects again when used)."""
    from core.services import Services

    started: list[Services] = []
    start = Services.start.__func__

    def start_and_keep(cls, settings):
        services = start(cls, settings)
        started.append(services)
        return services

    monkeypatch.setattr(Services, "start", classmethod(start_and_keep))
    yield
    for services in started:
        services.close()


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    from tests.support.database import fresh_postgres, postgres_available

    if not postgres_available():
        pytest.fail("PostgreSQL is not answering on 127.0.0.1:5432 (.ci/run starts it)")
    with fresh_postgres() as url:
        yield url


@pytest.fixture
def redis_url():
    """A Redis database number of its own, flushed before and after."""
    from tests.support.database import claimed_redis, redis_available

    if not redis_available():
        pytest.fail("Redis is not answering on 127.0.0.1:6379 (.ci/run starts it)")
    with claimed_redis() as url:
        yield url


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


@pytest.fixture(scope="module", params=["embedded", "servers"])
def module_settings(request, tmp_path_factory, migrated) -> Settings:
    """``any_settings`` for a whole module, migrated: a world the module's tests only read is built
    once per backend (the tests that change it take ``fresh_settings``)."""
    from contextlib import ExitStack

    from tests.support.database import claimed_redis, fresh_postgres

    root = tmp_path_factory.mktemp("module")
    with ExitStack() as stack:
        if request.param == "embedded":
            settings = make_settings(root)
        else:
            settings = make_settings(root, database_url=stack.enter_context(fresh_postgres()),
                                     broker_url=stack.enter_context(claimed_redis()))
        migrated.migrate(settings)
        yield settings


@pytest.fixture
def fresh_settings(module_settings, tmp_path, migrated) -> Settings:
    """``module_settings`` with a database and data directory of this test's own (same backend,
    same Redis number), migrated: for the tests of a module-scoped world that change state."""
    from contextlib import ExitStack

    from tests.support.database import fresh_postgres

    with ExitStack() as stack:
        changes: dict = {"data_dir": tmp_path / "data", "scratch_dir": tmp_path / "data" / "work",
                         "model_dir": tmp_path / "data" / "models"}
        changes["database_url"] = ("" if module_settings.database_url.startswith("sqlite")
                                   else stack.enter_context(fresh_postgres()))
        settings = dataclasses.replace(module_settings, **changes)
        migrated.migrate(settings)
        yield settings


@pytest.fixture(scope="session")
def migrated(tmp_path_factory):
    """migrated.migrate(settings): the database at head, cloned from one migrated per process."""
    from tests.support.database import MigratedTemplates

    templates = MigratedTemplates(tmp_path_factory.mktemp("migrated"))
    yield templates
    templates.close()


@pytest.fixture
def db(any_settings, migrated):
    """A migrated database (on each backend) and its session factory."""
    from core.db import make_engine, make_sessionmaker

    migrated.migrate(any_settings)
    engine = make_engine(any_settings.database_url)
    yield make_sessionmaker(engine, any_settings.events_url)
    engine.dispose()


@pytest.fixture
def app(any_settings, db):
    from web import create_app

    app = create_app(any_settings, {"TESTING": True})
    yield app
    app.extensions["tingxie"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_service(tmp_path, migrated):
    """live_service(settings=None, workers=1) -> a started Service (web + workers), stopped after the test."""
    started: list[Service] = []

    def start(settings: Settings | None = None, workers: int = 1) -> Service:
        settings = settings or make_settings(tmp_path)
        migrated.migrate(settings)
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
        service.discard()


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
