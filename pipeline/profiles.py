"""Model profiles: a name -> loader registry, the one seam between tingxie and its model sets.

``offline`` (faster-whisper Whisper-base, Silero VAD on onnxruntime, wetext ITN) is registered
here. ``funasr`` lives in :mod:`pipeline.funasr_profile`, imported only when asked for, so that
a machine without torch/funasr still runs the offline profile. Loading is not cached here: the
caller (a worker process, the CLI) keeps the engine it loaded.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from pipeline.errors import EngineMissingError, UnknownProfileError
from pipeline.stages import Engine

__all__ = [
    "Engine",
    "EngineConfig",
    "available_profiles",
    "load_engine",
    "register_profile",
]


@dataclass(frozen=True)
class EngineConfig:
    """Where a profile finds its files and how it runs.

    model_dir: downloaded models (FunASR's ``--download-model-dir``).
    cache_dir: files a profile derives once (the joined Whisper weights).
    device: ``cpu``, ``cuda`` or ``cuda:N``.
    batch_seconds: an ASR batch holds at most this many seconds of audio in total (default 240 s).
    options: profile-specific settings, e.g. ``{"asr_model": "..."}``.
    """

    model_dir: Path
    cache_dir: Path
    device: str = "cpu"
    batch_seconds: float = 240.0
    options: Mapping[str, str] = field(default_factory=dict)


Loader = Callable[[EngineConfig], Engine]

_LOADERS: dict[str, Loader] = {}

# Profiles whose module is imported on first use, and what to install when that import fails.
_LAZY_MODULES: dict[str, tuple[str, str]] = {
    "funasr": ("pipeline.funasr_profile", "pip install 'tingxie[funasr]'"),
}


def register_profile(name: str) -> Callable[[Loader], Loader]:
    """Decorator: make ``loader`` the way to build the engine called ``name``."""

    def decorate(loader: Loader) -> Loader:
        _LOADERS[name] = loader
        return loader

    return decorate


def available_profiles() -> list[str]:
    """Every profile name :func:`load_engine` knows, whether or not its models are present."""
    return sorted(set(_LOADERS) | set(_LAZY_MODULES))


def load_engine(name: str, config: EngineConfig) -> Engine:
    """Build the named profile's engine (slow: loads models). Raises UnknownProfileError,
    EngineMissingError (its package is not installed) or ModelNotReadyError (files missing)."""
    loader = _LOADERS.get(name)
    if loader is None and name in _LAZY_MODULES:
        module, install = _LAZY_MODULES[name]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise EngineMissingError(
                f"The {name!r} profile needs packages that are not installed: {install}",
                detail=repr(exc),
            ) from exc
        loader = _LOADERS.get(name)
    if loader is None:
        raise UnknownProfileError(
            f"Unknown model profile {name!r}; known profiles: {', '.join(available_profiles())}"
        )
    return loader(config)


@register_profile("offline")
def _load_offline(config: EngineConfig) -> Engine:
    """faster-whisper Whisper-base + Silero VAD (onnxruntime) + wetext ITN; needs no torch, no download."""
    from pipeline.offline import load_offline_engine

    return load_offline_engine(config)
