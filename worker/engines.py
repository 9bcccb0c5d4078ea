"""Settings -> the pipeline's EngineConfig: the one place a profile's model set is configured,
for workers and for `tingxie transcribe` alike."""
from __future__ import annotations

from typing import Any

from core.settings import Settings


def check_profile_options(settings: Settings) -> dict[str, Any]:
    """Every profile's typed options from ``settings.profile_options`` (``TINGXIE_MODEL_<NAME>``).
    Raises ProfileOptionsError for an unknown key or a bad value: call it at start-up, so a
    misspelled setting stops the process instead of being ignored. Loads no model runtime."""
    from pipeline.profiles import split_profile_options

    return split_profile_options(settings.profile_options)


def load_engine_for(settings: Settings, profile: str):
    """Load ``profile``'s model set as configured by ``settings`` (slow: loads models)."""
    from pipeline.profiles import EngineConfig, load_engine

    return load_engine(
        profile,
        EngineConfig(
            model_dir=settings.model_dir,
            cache_dir=settings.cache_dir,
            device=settings.device,
            batch_seconds=settings.batch_seconds,
            options=check_profile_options(settings).get(profile),
        ),
    )
