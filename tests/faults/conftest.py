"""Fault injection against real processes: private Redis and PostgreSQL where a test stops,
restarts or flushes them, real workers killed, outcomes read from SQL (tests/support/faults.py)."""
from __future__ import annotations

import pytest

from core.settings import Settings
from tests.support import faults
from tests.support.servers import PrivatePostgres, PrivateRedis


@pytest.fixture
def private_redis():
    server = PrivateRedis().start()
    yield server
    server.stop()


@pytest.fixture
def private_postgres():
    server = PrivatePostgres().start()
    yield server
    server.remove()


@pytest.fixture
def sql():
    """sql(settings) -> a tests.support.faults.Sql on that database, closed after the test."""
    opened: list[faults.Sql] = []

    def open_(settings: Settings) -> faults.Sql:
        opened.append(faults.Sql(settings))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


@pytest.fixture(scope="session")
def long_speech(tmp_path_factory):
    """long_speech(minutes, language=None) -> a FLAC of real speech with pauses (bench.speech), built once."""
    from bench.speech import build_speech

    folder = tmp_path_factory.mktemp("long-speech")
    return lambda minutes, language=None: build_speech(minutes, out_dir=folder, language=language)


@pytest.fixture
def hanging_ffmpeg(tmp_path):
    return faults.hanging_ffmpeg(tmp_path)
