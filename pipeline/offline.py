"""The ``offline`` profile: Whisper-base (faster-whisper, int8 on CPU) + Silero VAD + wetext ITN.

Every language Whisper-base knows (99; ``auto`` detects among them per segment); ITN for the
two wetext has grammars for (zh, en), a note on the transcript for the others.

Everything it needs comes from PyPI packages; nothing is downloaded at run time and torch is
never imported. Whisper punctuates its own output, so the profile has no punctuation model.
Importing this module loads none of them (the registry reads :class:`OfflineOptions` from here).
"""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.options import require
from pipeline.stages import Engine, EngineConfig, Profile


@dataclass(frozen=True)
class OfflineOptions:
    """The offline profile's options, each read from a string by :func:`pipeline.options.parse_options`.

    beam_size: beams Whisper's decoder keeps per segment (default 5; 1 is greedy decoding).
    cpu_threads: CTranslate2's threads per model on the CPU (default 0: CTranslate2 chooses).
    compute_type: CTranslate2's compute type, e.g. ``int8``, ``float32``, ``float16`` (default
        None: int8 on CPU, float16 on CUDA).
    """

    beam_size: int = 5
    cpu_threads: int = 0
    compute_type: str | None = None

    def __post_init__(self) -> None:
        require(self, "beam_size", self.beam_size >= 1, "a whole number of at least 1")
        require(self, "cpu_threads", self.cpu_threads >= 0, "a whole number of at least 0")


def load_offline_engine(config: EngineConfig) -> Engine:
    """Whisper-base, Silero VAD and wetext, loaded once; the worker keeps the engine for every job."""
    from pipeline.itn import WetextItn
    from pipeline.vad_silero import SileroVad, VadOptions
    from pipeline.whisper import WhisperAsr, prepare_whisper_base

    options: OfflineOptions = config.options
    model_dir = prepare_whisper_base(config.cache_dir)
    asr = WhisperAsr(
        model_dir,
        device=config.device,
        compute_type=options.compute_type,
        beam_size=options.beam_size,
        cpu_threads=options.cpu_threads,
    )
    return Engine(
        name="offline",
        vad=SileroVad(VadOptions(max_span_ms=30_000)),
        asr=asr,
        punc=None,
        itn=WetextItn(),
        batch_seconds=config.batch_seconds,
        asr_window_ms=30_000,
        languages=asr.languages,
    )


PROFILE = Profile(options=OfflineOptions, load=load_offline_engine)
