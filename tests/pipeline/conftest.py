"""Pipeline fixtures: ffmpeg, bad media made on the fly, and one offline engine per session.

``speech_dir`` (real recordings in tests/data/speech) comes from tests/conftest.py.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from media import find_ffmpeg


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """The offline profile's engine, loaded once (loading Whisper takes seconds)."""
    from pipeline.profiles import EngineConfig, load_engine

    root = tmp_path_factory.mktemp("models")
    return load_engine("offline", EngineConfig(model_dir=root / "models", cache_dir=root / "cache"))


@pytest.fixture
def make_media(ffmpeg, tmp_path):
    """make_media(name, *ffmpeg_args): run ffmpeg with ``args`` writing tmp_path/name; return its path."""

    def make(name: str, *args: str) -> Path:
        out = tmp_path / name
        subprocess.run([ffmpeg, "-nostdin", "-v", "error", *args, "-y", str(out)], check=True,
                       stdin=subprocess.DEVNULL)
        return out

    return make

