"""Fixtures for the funasr profile: tiny random-weight models built with funasr's own classes in a
ModelScope-shaped directory, and engines loaded from it through the production loader."""
from __future__ import annotations

import wave
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def funasr_model_dir(tmp_path_factory) -> Path:
    """A model directory holding the profile's default models and their ONNX twins."""
    from tests.support.funasr_models import build_tiny_models

    root = tmp_path_factory.mktemp("funasr-models")
    build_tiny_models(root)
    return root


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
    """The default engine (PyTorch VAD, SeACo ASR, PyTorch punctuation), shared by the tests."""
    return load_funasr()


@pytest.fixture(scope="session")
def long_speech(speech_dir, tmp_path_factory) -> Path:
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
