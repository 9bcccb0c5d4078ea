"""Typed values passed between pipeline stages and returned to callers.

Times are integers in milliseconds on the input file's timeline.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

from pipeline.errors import SpeakerOptionsError


@dataclass(frozen=True)
class Hotword:
    """A phrase to bias recognition towards; ``weight`` is the model's boost, None for its default."""

    text: str
    weight: float | None = None


@dataclass(frozen=True)
class Word:
    """``speaker``: the speaker's id (``S1``, ``S2``...) when the job was diarized, else None."""

    start_ms: int
    end_ms: int
    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class Segment:
    """One sentence: its text (punctuated, after ITN), its span and its words.

    ``punc`` is the closing punctuation mark and ``tokens`` the per-token spans
    as FunASR's ``stamp_sents`` carries them (``ts_list``); both may be empty.
    """

    start_ms: int
    end_ms: int
    text: str
    words: tuple[Word, ...] = ()
    punc: str = ""
    tokens: tuple[tuple[int, int], ...] = ()
    speaker: str | None = None


@dataclass(frozen=True)
class Speaker:
    """A voice diarization found: ``id`` is ``S1``, ``S2``... in order of first appearance;
    ``name`` is what a person called it (None until someone does)."""

    id: str
    name: str | None = None


@dataclass
class Transcript:
    """``speakers`` is None when the job was not diarized (then no segment or word carries a
    speaker, and the JSON has no ``speaker``/``speakers`` keys at all), else every speaker found."""

    text: str
    language: str
    duration_ms: int
    segments: list[Segment] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    speakers: list[Speaker] | None = None

    def to_dict(self) -> dict:
        """The JSON shape the API serves (``warnings`` travel on the job, not here)."""
        diarized = self.speakers is not None

        def word(w: Word) -> dict:
            data = asdict(w)
            if not diarized:
                del data["speaker"]
            return data

        def segment(s: Segment) -> dict:
            data = {
                "start_ms": s.start_ms,
                "end_ms": s.end_ms,
                "text": s.text,
                "punc": s.punc,
                "words": [word(w) for w in s.words],
                "tokens": [list(t) for t in s.tokens],
            }
            if diarized:
                data["speaker"] = s.speaker
            return data

        data = {
            "text": self.text,
            "language": self.language,
            "duration_ms": self.duration_ms,
            "segments": [segment(s) for s in self.segments],
        }
        if diarized:
            data["speakers"] = [asdict(p) for p in self.speakers]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Transcript":
        return cls(
            text=data["text"],
            language=data["language"],
            duration_ms=data["duration_ms"],
            segments=[
                Segment(
                    start_ms=s["start_ms"],
                    end_ms=s["end_ms"],
                    text=s["text"],
                    punc=s.get("punc", ""),
                    words=tuple(Word(**w) for w in s.get("words", [])),
                    tokens=tuple(tuple(t) for t in s.get("tokens", [])),
                    speaker=s.get("speaker"),
                )
                for s in data.get("segments", [])
            ],
            speakers=None if data.get("speakers") is None else [Speaker(**p) for p in data["speakers"]],
        )


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
    The speaker counts need ``diarize``; a bad combination raises SpeakerOptionsError.
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


def check_speaker_options(
    diarize: bool, num_speakers: int | None, min_speakers: int | None, max_speakers: int | None
) -> None:
    """Raise SpeakerOptionsError unless the counts are positive whole numbers, ``min <= max``,
    ``num_speakers`` comes alone, and any of them comes with ``diarize``. A door may call it to
    answer a 400 before the job is queued."""
    from pipeline.errors import SpeakerOptionsError

    counts = {"num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers}
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SpeakerOptionsError(f"{name} must be a whole number of at least 1, not {value!r}.")
    given = [name for name, value in counts.items() if value is not None]
    if given and not diarize:
        raise SpeakerOptionsError(f"{' and '.join(given)} need diarize=true (speaker labels are off).")
    if num_speakers is not None and (min_speakers is not None or max_speakers is not None):
        raise SpeakerOptionsError("Give num_speakers, or min_speakers/max_speakers, not both.")
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise SpeakerOptionsError(
            f"min_speakers ({min_speakers}) is more than max_speakers ({max_speakers})."
        )


class Stage(StrEnum):
    """The pipeline's stages, in the order they run; each compares equal to its name as a string
    (what the job record and the events carry)."""

    DECODE = "decode"
    VAD = "vad"
    ASR = "asr"
    DIARIZE = "diarize"  # only when the job asks for speakers
    PUNC = "punc"
    ITN = "itn"


@dataclass(frozen=True)
class Progress:
    """Reported by the pipeline while it runs: ``fraction`` is 0..1 over the whole job."""

    stage: Stage
    fraction: float
