"""Fixtures every folder may use, registered once by tests/conftest.py (``pytest_plugins``), so a
test keeps them when it moves between folders and each name means one thing everywhere.

``ffmpeg`` is the ffmpeg tingxie runs (``media.find_ffmpeg``); ``each_ffmpeg`` runs a
test with both builds. ``long_speech(minutes)`` is minutes of mixed real speech (a FLAC, built once);
``long_zh_wav`` is the 150 s Mandarin file the FunASR tests cut into batches.
"""
from __future__ import annotations

import os
import shutil
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


# --- media: both ffmpeg builds, hostile files ---------------------------------------------
@pytest.fixture(scope="session", params=["bundled", "system"])
def each_ffmpeg(request) -> str:
    """Runs each test that takes it twice: with the binary imageio-ffmpeg bundles (what a fresh
    clone gets) and with Debian's /usr/bin/ffmpeg (what the Docker image runs; .ci/run installs it)."""
    from tests.support.media_files import SYSTEM_FFMPEG, bundled_ffmpeg

    if request.param == "bundled":
        return bundled_ffmpeg()
    if not os.access(SYSTEM_FFMPEG, os.X_OK):
        pytest.skip(f"no system ffmpeg at {SYSTEM_FFMPEG} (apt-get install ffmpeg; .ci/run does)")
    return SYSTEM_FFMPEG


@pytest.fixture
def other_upload(tmp_path, speech_path) -> Path:
    """Another tenant's upload on the same disk: what a hostile file tries to make ffmpeg read."""
    target = tmp_path / "media" / "other-job" / "secret.mp3"
    target.parent.mkdir(parents=True)
    shutil.copy(speech_path("asr_example.mp3"), target)
    return target


@pytest.fixture
def reference_file(tmp_path, other_upload):
    """reference_file(kind) -> the hostile file of REFERENCES[kind] (tests.support.media_files), in
    an upload folder of its own."""
    from tests.support.media_files import REFERENCES

    def build(kind: str) -> Path:
        name, content = REFERENCES[kind]
        folder = tmp_path / "media" / "attacker-job"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(content(folder, other_upload))
        return path

    return build


@pytest.fixture
def image_sequence(make_media, tmp_path) -> Path:
    """Three PNG frames and a file literally named like their pattern (img%03d.png)."""
    make_media("img%03d.png", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=1:duration=3")
    pattern = tmp_path / "img%03d.png"
    shutil.copy(tmp_path / "img001.png", pattern)
    return pattern


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


@pytest.fixture(scope="session")
def itn():
    """wetext's ITN (the offline profile's), loaded once."""
    from pipeline.itn import WetextItn

    return WetextItn()


@pytest.fixture(scope="session")
def two_voices(speech_dir, ffmpeg, tmp_path_factory) -> tuple[Path, list]:
    """(path, turns): two real voices taking turns in one WAV (tests.support.speaker_turns), built once."""
    from tests.support import speaker_turns

    path = tmp_path_factory.mktemp("turns") / "two_voices.wav"
    return path, speaker_turns.build(speech_dir, path, ffmpeg)


@pytest.fixture
def transcribe_offline(engine, tmp_path):
    """transcribe_offline(path, max_duration_ms=None, **options) -> Transcript: the offline
    engine's whole pipeline; progress recorded in ``.progress``, its scratch in ``.work_dir``."""
    from pipeline import transcribe
    from pipeline.types import TranscribeOptions

    progress: list = []

    def go(path, max_duration_ms=None, **options):
        progress.clear()
        return transcribe(path, TranscribeOptions(**options), engine, work_dir=tmp_path / "work",
                          on_progress=progress.append, max_duration_ms=max_duration_ms)

    go.progress = progress
    go.work_dir = tmp_path / "work"
    return go


# --- live processes ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def shared_service(tmp_path_factory):
    """Real web and worker processes on the embedded default, started once per test process and
    shared by the system tests that only add jobs and read them (starting a worker loads its models)."""
    from core.migrate import upgrade
    from tests.support.settings import make_settings
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
        service.discard()


# --- the CLI in a process of its own -----------------------------------------------------------
@pytest.fixture
def transcribe_cli(tmp_path):
    """transcribe_cli(*args) -> the CompletedProcess of ``tingxie transcribe ARGS`` (a data
    directory of the test's own)."""
    import sys

    env = {**os.environ, "TINGXIE_DATA_DIR": str(tmp_path / "data")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", "transcribe", *args], capture_output=True, text=True,
                              env=env, timeout=300)

    return run


# --- webhooks -----------------------------------------------------------------------------
@pytest.fixture
def webhook_receiver():
    """webhook_receiver(statuses=(200,)) -> a started tests.support.webhooks.Receiver, closed after the test."""
    from tests.support.webhooks import Receiver

    started: list[Receiver] = []

    def start(statuses=(200,)) -> Receiver:
        started.append(Receiver(statuses))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


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
def subnet():
    """A private subnet of Linux network namespaces (tests.support.netns): hosts whose links a
    test can cut. Skips where namespaces cannot be made (not root)."""
    from tests.support import netns

    why = netns.available()
    if why is not None:
        pytest.skip(f"network namespaces cannot be made here: {why}")
    net = netns.Network().start()
    try:
        yield net
    finally:
        left = net.remove()
        assert not left, f"left behind: {left}"


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
