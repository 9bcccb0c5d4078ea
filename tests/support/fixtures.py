"""Fixtures every folder may use, registered once by tests/conftest.py (``pytest_plugins``), so a
test keeps them when it moves between folders and each name means one thing everywhere.

``ffmpeg`` is the ffmpeg tingxie runs (``media.find_ffmpeg``); tests/media's ``each_ffmpeg`` runs a
test with both builds. ``long_speech(minutes)`` is minutes of mixed real speech (a FLAC, built once);
``long_zh_wav`` is the 150 s Mandarin file the FunASR tests cut into batches.
"""
from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import pytest

from core.settings import Settings
from media import find_ffmpeg


# --- media ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return find_ffmpeg()


@pytest.fixture
def make_media(ffmpeg, tmp_path):
    """make_media(name, *ffmpeg_args): run ffmpeg with ``args`` writing tmp_path/name; return its path."""
    def make(name: str, *args: str) -> Path:
        out = tmp_path / name
        subprocess.run([ffmpeg, "-nostdin", "-v", "error", *args, "-y", str(out)], check=True,
                       stdin=subprocess.DEVNULL)
        return out
    return make


@pytest.fixture(scope="session")
def stereo_call(ffmpeg, speech_dir, tmp_path_factory) -> Path:
    """A two-channel WAV of two real voices: JFK (English) alone on channel 0 from 6 s, the Mandarin
    example alone on channel 1 from 0.5 s (tests.support.media_files.two_voice_stereo)."""
    from tests.support.media_files import two_voice_stereo

    return two_voice_stereo(ffmpeg, speech_dir, tmp_path_factory.mktemp("stereo") / "call.wav")


@pytest.fixture(scope="session")
def long_speech():
    """long_speech(minutes, language=None) -> a FLAC of real speech with pauses (tests.support.speech),
    built once per machine in bench/out/ (atomically: pytest-xdist workers may ask at once)."""
    from tests.support.speech import build_speech

    return lambda minutes, language=None: build_speech(minutes, language=language)


@pytest.fixture(scope="session")
def long_zh_wav(speech_dir, tmp_path_factory) -> Path:
    """About 150 s of real speech: asr_example.wav eighteen times with pauses of 1.5 to 3.5 s,
    so VAD spans cross its one-minute chunks and the ASR sees several batches."""
    import numpy as np

    with wave.open(str(speech_dir / "asr_example.wav"), "rb") as src:
        assert src.getframerate() == 16_000 and src.getnchannels() == 1
        clip = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")
    parts = []
    for i in range(18):
        parts.append(clip)
        parts.append(np.zeros(int(16_000 * (1.5 + (i % 5) * 0.5)), dtype="<i2"))
    path = tmp_path_factory.mktemp("long") / "long.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(np.concatenate(parts).tobytes())
    return path


# --- engines ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """The offline profile's engine, loaded once (loading Whisper takes seconds)."""
    from pipeline.profiles import EngineConfig, load_engine

    root = tmp_path_factory.mktemp("models")
    return load_engine("offline", EngineConfig(model_dir=root / "models", cache_dir=root / "cache"))


@pytest.fixture(scope="session")
def funasr_model_dir() -> Path:
    """A model directory holding the FunASR profile's default models (tiny, random weights) and
    their ONNX twins: built once per machine (tests/artifacts/, keyed by the builder and funasr's
    version), read only."""
    from tests.support.funasr_models import cached_tiny_models

    return cached_tiny_models()


@pytest.fixture(scope="session")
def load_funasr(funasr_model_dir, tmp_path_factory):
    """load_funasr(**options) -> Engine, through ``load_engine`` exactly as a worker loads it
    (``options``: FunasrOptions' fields)."""
    from pipeline.funasr.profile import FunasrOptions
    from pipeline.profiles import EngineConfig, load_engine

    cache_dir = tmp_path_factory.mktemp("funasr-cache")

    def load(model_dir: Path | None = None, batch_seconds: float = 120.0, device: str = "cpu", **options):
        config = EngineConfig(
            model_dir=model_dir or funasr_model_dir,
            cache_dir=cache_dir,
            device=device,
            batch_seconds=batch_seconds,
            options=FunasrOptions(**options),
        )
        return load_engine("funasr", config)

    return load


@pytest.fixture(scope="session")
def funasr_engine(load_funasr):
    """The default FunASR engine (PyTorch VAD, SeACo ASR, PyTorch punctuation), shared by the tests."""
    return load_funasr()


# --- live processes ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def shared_service(tmp_path_factory):
    """Real web and worker processes on the embedded default, started once per test process and
    shared by the system tests that only add jobs and read them (starting a worker loads its models)."""
    from core.migrate import upgrade
    from tests.conftest import make_settings
    from tests.support.service import Service

    root = tmp_path_factory.mktemp("shared-service")
    settings = make_settings(root)
    upgrade(settings)
    (root / "logs").mkdir()
    service = Service(settings=settings, log_dir=root / "logs")
    try:
        service.start_web()
        service.start_worker()
        yield service
    finally:
        service.stop()


# --- faults: private servers and SQL ----------------------------------------------------
@pytest.fixture
def private_redis():
    from tests.support.servers import PrivateRedis

    server = PrivateRedis().start()
    yield server
    server.stop()


@pytest.fixture
def private_postgres():
    from tests.support.servers import PrivatePostgres

    server = PrivatePostgres().start()
    yield server
    server.remove()


@pytest.fixture
def sql():
    """sql(settings) -> a tests.support.faults.Sql on that database, closed after the test."""
    from tests.support import faults

    opened: list[faults.Sql] = []

    def open_(settings: Settings) -> faults.Sql:
        opened.append(faults.Sql(settings))
        return opened[-1]

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def hanging_ffmpeg(tmp_path):
    from tests.support import faults

    return faults.hanging_ffmpeg(tmp_path)
