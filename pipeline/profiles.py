"""Model profiles: a name -> profile registry, the one seam between tingxie and its model sets.

Every built-in profile lives in a module of its own, named here and imported on first use
(``offline``: faster-whisper Whisper-base, Silero VAD on onnxruntime, wetext ITN; ``funasr``:
FSMN-VAD, Paraformer, CT-Transformer). Importing this module imports no profile, and a machine
without torch/funasr still runs the offline profile. Loading is not cached here: the caller (a
worker process, the CLI) keeps the engine it loaded.
"""
from __future__ import annotations

import importlib

from pipeline.errors import EngineMissingError, UnknownProfileError
from pipeline.stages import Engine, EngineConfig, Profile

__all__ = [
    "Engine",
    "EngineConfig",
    "Profile",
    "available_profiles",
    "load_engine",
    "register_profile",
]

# Built-in profiles: the module declaring each one's ``PROFILE``, and what to install when
# importing it (or what it imports when loading) fails.
_MODULES: dict[str, tuple[str, str]] = {
    "offline": ("pipeline.offline", "pip install 'tingxie[offline]'"),
    "funasr": ("pipeline.funasr.profile", "pip install 'tingxie[funasr]'"),
}

_REGISTERED: dict[str, Profile] = {}


def register_profile(name: str, profile: Profile) -> None:
    """Make ``profile`` the one called ``name`` (a model set outside tingxie's own)."""
    _REGISTERED[name] = profile


def available_profiles() -> list[str]:
    """Every profile name :func:`load_engine` knows, whether or not its models are present."""
    return sorted(set(_REGISTERED) | set(_MODULES))


def get_profile(name: str) -> Profile:
    """The named profile's declaration, importing its module on first use (cheap: the module
    loads no model runtime). Raises UnknownProfileError or EngineMissingError."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _MODULES:
        raise UnknownProfileError(
            f"Unknown model profile {name!r}; known profiles: {', '.join(available_profiles())}"
        )
    module, install = _MODULES[name]
    try:
        return importlib.import_module(module).PROFILE
    except ImportError as exc:
        raise EngineMissingError(
            f"The {name!r} profile needs packages that are not installed: {install}",
            detail=repr(exc),
        ) from exc


def load_engine(name: str, config: EngineConfig) -> Engine:
    """Build the named profile's engine (slow: loads models). Raises UnknownProfileError,
    EngineMissingError (its package is not installed) or ModelNotReadyError (files missing)."""
    return get_profile(name).load(config)
