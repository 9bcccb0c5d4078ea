"""The pipeline's own typed values: a job's options as the pipeline reads them, and its progress.

What it produces (:class:`~contract.Transcript` and its parts), the hotwords it takes and the
stages it reports are the contract's (:mod:`contract`), shared with core and the doors.
"""
from __future__ import annotations

from dataclasses import dataclass

from contract import Hotword, Stage, check_speaker_options


@dataclass(frozen=True)
class TranscribeOptions:
    """Per-request options.

    language: ``auto`` or an ISO 639-1 code the profile transcribes (the engine's ``languages``);
        Chinese ("zh") is written in simplified characters; ``zh-hant`` and ``zh-tw`` (Taiwan's
        standard forms) ask for traditional ones (the models read them as "zh").
    itn: inverse text normalisation ("一百二十三" -> "123"), on by default.
    hotwords: phrases to bias towards.
    diarize: label each sentence and word with its speaker (``S1``, ``S2``...); off by default.
    num_speakers: how many speakers there are, when known; None: estimated.
    min_speakers, max_speakers: bounds on the estimate (either may be None); not with num_speakers.
    The speaker counts follow the contract's rules (:func:`contract.check_speaker_options`); a bad
    combination raises SpeakerOptionsError.
    task: ``transcribe``, or ``translate`` (English text; an engine whose ASR model has
        ``translates`` true, else UnsupportedTaskError).
    """

    language: str = "auto"
    itn: bool = True
    hotwords: tuple[Hotword, ...] = ()
    diarize: bool = False
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    task: str = "transcribe"

    def __post_init__(self) -> None:
        check_speaker_options(self.diarize, self.num_speakers, self.min_speakers, self.max_speakers)


@dataclass(frozen=True)
class Progress:
    """Reported by the pipeline while it runs: ``fraction`` is 0..1 over the whole job."""

    stage: Stage
    fraction: float
