"""Model profiles: a name -> profile registry, the one seam between tingxie and its model sets.

Every built-in profile lives in a module of its own, named here and imported on first use
(``offline``: faster-whisper Whisper-base, Silero VAD on onnxruntime, wetext ITN; ``funasr``:
FSMN-VAD, Paraformer, CT-Transformer). Importing this module imports no profile, and a machine
without torch/funasr still runs the offline profile. Loading is not cached here: the caller (a
worker process, the CLI) keeps the engine it loaded.

Each profile declares its options as a frozen dataclass (:attr:`Profile.options`);
:func:`split_profile_options` reads one mapping of strings (a caller's settings)
into every profile's options, refusing a key no profile declares.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Mapping

from contract.profiles import PROFILES
from pipeline.errors import EngineMissingError, UnknownProfileError
from pipeline.options import option_names, parse_options, unknown_options
from pipeline.stages import Engine, EngineConfig, EngineIdentity, Profile

__all__ = [
    "Engine",
    "EngineConfig",
    "Profile",
    "available_profiles",
    "get_profile",
    "load_engine",
    "options_type",
    "register_profile",
    "split_profile_options",
]

_REGISTERED: dict[str, Profile] = {}


def register_profile(name: str, profile: Profile) -> None:
    """Make ``profile`` the one called ``name`` (a model set outside tingxie's own)."""
    _REGISTERED[name] = profile


def available_profiles() -> list[str]:
    """Every profile name :func:`load_engine` knows, whether or not its models are present."""
    return sorted(set(_REGISTERED) | set(PROFILES))


def get_profile(name: str) -> Profile:
    """The named profile's declaration, importing its module on first use (cheap: the module
    loads no model runtime). Raises UnknownProfileError or EngineMissingError."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in PROFILES:
        raise UnknownProfileError(
            f"Unknown model profile {name!r}; known profiles: {', '.join(available_profiles())}"
        )
    # Built-in profiles: the contract's catalogue names the module declaring each one's ``PROFILE``
    # and what to install when importing it (or what it imports when loading) fails.
    info = PROFILES[name]
    try:
        return importlib.import_module(info.module).PROFILE
    except ImportError as exc:
        raise EngineMissingError(
            f"The {name!r} profile needs packages that are not installed: {info.install}",
            detail=repr(exc),
        ) from exc


def options_type(name: str) -> type:
    """The frozen dataclass the named profile takes as ``EngineConfig.options``."""
    return get_profile(name).options


def split_profile_options(raw: Mapping[str, str]) -> dict[str, Any]:
    """Every profile's options object, read from one mapping of lower-case keys to strings: a key
    goes to each profile that declares it. ProfileOptionsError for a key no profile declares
    (naming every profile's keys) or a value its field cannot take. Loads no model runtime."""
    types = {name: options_type(name) for name in available_profiles()}
    known = {name: option_names(cls) for name, cls in types.items()}
    unknown = sorted(key for key in raw if not any(key in keys for keys in known.values()))
    if unknown:
        raise unknown_options(unknown, raw, "; ".join(f"{name}: {', '.join(keys)}" for name, keys in known.items()))
    return {
        name: parse_options(cls, {key: value for key, value in raw.items() if key in known[name]})
        for name, cls in types.items()
    }


def load_engine(name: str, config: EngineConfig) -> Engine:
    """Build the named profile's engine (slow: loads models); ``config.options`` None gives the
    profile's default options. Raises UnknownProfileError, EngineMissingError (its package is
    not installed) or ModelNotReadyError (files missing)."""
    profile = get_profile(name)
    if config.options is None:
        config = dataclasses.replace(config, options=profile.options())
    elif not isinstance(config.options, profile.options):
        raise TypeError(
            f"The {name!r} profile takes {profile.options.__name__} options, not {type(config.options).__name__}"
        )
    engine = profile.load(config)
    engine.identity = EngineIdentity(name, config.options, config.device)
    return engine
