"""Typed values passed between pipeline stages and returned to callers.

Times are integers in milliseconds on the input file's timeline.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Hotword:
    """A phrase to bias recognition towards; ``weight`` is the model's boost, None for its default."""

    text: str
    weight: float | None = None


@dataclass(frozen=True)
class Word:
    start_ms: int
    end_ms: int
    text: str


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


@dataclass
class Transcript:
    text: str
    language: str
    duration_ms: int
    segments: list[Segment] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON shape the API serves (``warnings`` travel on the job, not here)."""
        return {
            "text": self.text,
            "language": self.language,
            "duration_ms": self.duration_ms,
            "segments": [
                {
                    "start_ms": s.start_ms,
                    "end_ms": s.end_ms,
                    "text": s.text,
                    "punc": s.punc,
                    "words": [asdict(w) for w in s.words],
                    "tokens": [list(t) for t in s.tokens],
                }
                for s in self.segments
            ],
        }

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
                )
                for s in data.get("segments", [])
            ],
        )


@dataclass(frozen=True)
class TranscribeOptions:
    """Per-request options.

    language: ``auto`` or an ISO 639-1 code the profile transcribes (the engine's ``languages``);
        Chinese output is always simplified characters.
    itn: inverse text normalisation ("一百二十三" -> "123"), on by default.
    hotwords: phrases to bias towards.
    """

    language: str = "auto"
    itn: bool = True
    hotwords: tuple[Hotword, ...] = ()


class Stage(StrEnum):
    """The pipeline's stages, in the order they run; each compares equal to its name as a string
    (what the job record and the events carry)."""

    DECODE = "decode"
    VAD = "vad"
    ASR = "asr"
    PUNC = "punc"
    ITN = "itn"


@dataclass(frozen=True)
class Progress:
    """Reported by the pipeline while it runs: ``fraction`` is 0..1 over the whole job."""

    stage: Stage
    fraction: float
