"""The ``offline`` profile: Whisper-base (faster-whisper, int8 on CPU) + Silero VAD + wetext ITN.

Every language Whisper-base knows (99; ``auto`` detects among them per segment); ITN for the
two wetext has grammars for (zh, en), a note on the transcript for the others.

Everything it needs comes from PyPI packages; nothing is downloaded at run time and torch is
never imported. Whisper punctuates its own output, so the profile has no punctuation model.
Speaker labels (GE2E, :mod:`pipeline.speaker_ge2e`) are the exception: they need the ``diarize``
extra, torch included, and are loaded on the first job that asks for them.

Importing this module loads none of them (the registry reads :class:`OfflineOptions` from here).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial

from pipeline.itn import WetextItn
from pipeline.options import require
from pipeline.stages import Engine, EngineConfig, LazyModel, Profile
from pipeline.vad_silero import SileroVad, VadOptions
from pipeline.whisper import WhisperAsr, prepare_whisper_base


@dataclass(frozen=True)
class OfflineOptions:
    """The offline profile's options, each read from a string by :func:`pipeline.options.parse_options`.

    beam_size: beams Whisper's decoder keeps per segment (default 5; 1 is greedy decoding).
    cpu_threads: CTranslate2's threads per model on the CPU (default 0: CTranslate2 chooses).
    compute_type: CTranslate2's compute type, e.g. ``int8``, ``float32``, ``float16`` (default
        None: int8 on CPU, float16 on CUDA).
    speaker_threads: torch's CPU threads for the speaker encoder, when a job asks for speakers
        (default 1: on a busy 2-core host two threads ran 3-4x slower; 0: torch chooses).
    """

    beam_size: int = 5
    cpu_threads: int = 0
    compute_type: str | None = None
    speaker_threads: int = 1

    def __post_init__(self) -> None:
        require(self, "beam_size", self.beam_size >= 1, "a whole number of at least 1")
        require(self, "cpu_threads", self.cpu_threads >= 0, "a whole number of at least 0")
        require(self, "speaker_threads", self.speaker_threads >= 0, "a whole number of at least 0")


def load_offline_engine(config: EngineConfig) -> Engine:
    """Whisper-base, Silero VAD and wetext, loaded once; the worker keeps the engine for every job."""
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
        speaker=LazyModel(partial(_load_speaker, config.device, options.speaker_threads)),
        vad_beside_asr=_core_to_spare(config.device, options.cpu_threads),
    )


def _core_to_spare(device: str, cpu_threads: int) -> bool:
    """Whether a core is left for Silero beside Whisper: on a GPU, or on a CPU host with more cores
    than CTranslate2's threads (``cpu_threads``, or its default of one per core up to 4). Where
    there is none, VAD beside ASR only takes the OpenMP threads' time slices: on 2 cores, 10 minutes
    of speech took 1.07x the bare engine's time with VAD beside ASR and 1.02x with VAD first
    (README, P1)."""
    if not device.startswith("cpu"):
        return True
    cores = len(os.sched_getaffinity(0))
    return cores > (cpu_threads or min(4, cores))


def _load_speaker(device: str, threads: int):
    # the GE2E encoder loads numpy and torch at import: only when a job asks for speakers
    from pipeline.speaker_ge2e import load_ge2e

    return load_ge2e(device, threads)


PROFILE = Profile(options=OfflineOptions, load=load_offline_engine)
