"""What a running job is doing: the pipeline reports these stages, the job record and the events
carry them."""
from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """The pipeline's stages, in the order they run; each compares equal to its name as a string."""

    FETCH = "fetch"  # a job by link: its worker fetches the media first (core.fetch)
    DECODE = "decode"
    VAD = "vad"
    ASR = "asr"
    DIARIZE = "diarize"  # only when the job asks for speakers
    PUNC = "punc"
    ITN = "itn"
