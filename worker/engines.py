"""Where core's typed values become the pipeline's, for workers and `tingxie transcribe` alike:
Settings -> a profile's EngineConfig (the one place a model set is configured), and a job's
JobOptions -> the pipeline's TranscribeOptions."""
from __future__ import annotations

from core.options import JobOptions
from core.settings import Settings


def transcribe_options(options: JobOptions):
    """The pipeline's options for a job: the stored typed values, as they are."""
    from pipeline.types import Hotword, TranscribeOptions

    return TranscribeOptions(
        language=options.language,
        itn=options.itn,
        hotwords=tuple(Hotword(h.text, h.weight) for h in options.hotwords),
    )


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
