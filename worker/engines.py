"""Where core's typed values become the pipeline's, for workers and `tingxie transcribe` alike:
Settings -> a profile's EngineConfig (the one place a model set is configured), and a job's
JobOptions -> the pipeline's TranscribeOptions."""
from __future__ import annotations

from typing import Any

from core.options import JobOptions
from core.settings import Settings, SettingsError
from pipeline.errors import ProfileOptionsError
from pipeline.profiles import EngineConfig, load_engine, split_profile_options
from pipeline.types import TranscribeOptions


def transcribe_options(options: JobOptions):
    """The pipeline's options for a job: the stored typed values, as they are."""
    return TranscribeOptions(
        language=options.language,
        itn=options.itn,
        hotwords=options.hotwords,  # the contract's Hotword, on both sides
        diarize=options.diarize,
        num_speakers=options.num_speakers,
        min_speakers=options.min_speakers,
        max_speakers=options.max_speakers,
        task=options.task,
        channels=options.channels,
        channel_names=options.channel_names,
    )


def check_profile_options(settings: Settings) -> dict[str, Any]:
    """Every profile's typed options from ``settings.profile_options`` (``TINGXIE_MODEL_<NAME>``).
    An unknown key or a bad value is a SettingsError naming the variable, as for every other
    setting: call it at start-up, so a misspelled setting stops the process instead of being
    ignored. Loads no model runtime."""
    try:
        return split_profile_options(settings.profile_options)
    except ProfileOptionsError as exc:
        name = f"TINGXIE_MODEL_{exc.key.upper()}"
        raise SettingsError([f"{name}={exc.value!r}: {exc.allowed or exc.message}"]) from None


def load_engine_for(settings: Settings, profile: str):
    """Load ``profile``'s model set as configured by ``settings`` (slow: loads models)."""
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
