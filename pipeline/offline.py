"""The ``offline`` profile: Whisper-base (faster-whisper, int8 on CPU) + Silero VAD + wetext ITN.

Everything it needs comes from PyPI packages; nothing is downloaded at run time and torch is
never imported. Whisper punctuates its own output, so the profile has no punctuation model.
Speaker labels (GE2E, :mod:`pipeline.speaker_ge2e`) are the exception: they need the ``diarize``
extra, torch included, and are loaded on the first job that asks for them.
"""
from __future__ import annotations

from functools import partial

from pipeline.itn import WetextItn
from pipeline.profiles import EngineConfig
from pipeline.stages import Engine, LazyModel
from pipeline.vad_silero import SileroVad, VadOptions
from pipeline.whisper import WhisperAsr, prepare_whisper_base


def load_offline_engine(config: EngineConfig) -> Engine:
    """Options (all optional): ``beam_size`` (default 5), ``cpu_threads`` (0: CTranslate2 chooses),
    ``compute_type`` (default int8 on CPU, float16 on CUDA), ``speaker_threads`` (torch threads of
    the speaker encoder, default 1; 0: torch chooses)."""
    opts = config.options
    model_dir = prepare_whisper_base(config.cache_dir)
    asr = WhisperAsr(
        model_dir,
        device=config.device,
        compute_type=opts.get("compute_type") or None,
        beam_size=int(opts.get("beam_size", 5)),
        cpu_threads=int(opts.get("cpu_threads", 0)),
    )
    return Engine(
        name="offline",
        vad=SileroVad(VadOptions(max_span_ms=30_000)),
        asr=asr,
        punc=None,
        itn=WetextItn(),
        batch_seconds=config.batch_seconds,
        asr_window_ms=30_000,
        speaker=LazyModel(partial(_load_speaker, config.device, int(opts.get("speaker_threads", 1)))),
    )


def _load_speaker(device: str, threads: int):
    from pipeline.speaker_ge2e import load_ge2e

    return load_ge2e(device, threads)
