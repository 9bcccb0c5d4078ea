"""Settings -> the pipeline's EngineConfig: the one place a profile's model set is configured,
for workers and for `tingxie transcribe` alike."""
from __future__ import annotations

from core.settings import Settings


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
            options=dict(settings.profile_options),
        ),
    )
