"""The transcript: what the pipeline produces, core stores and every renderer reads.

Times are integers in milliseconds on the input file's timeline. Each word carries where it sits
in its sentence's text (``start_char``, ``end_char``: ``segment.text[start_char:end_char]`` is the
word), so a renderer cuts, highlights or spaces words from the text itself and never works out
again where a word is; the text between two words (a space, a comma, nothing) is the spacing.

Stored form (:meth:`Transcript.to_dict`), version :data:`STORED_VERSION`::

    {"v": 2, "text", "language", "duration_ms",
     "segments": [{"start_ms", "end_ms", "text", "punc",
                   "words": [{"start_ms", "end_ms", "text", "start_char", "end_char"}, ...],
                   "tokens": [[start_ms, end_ms], ...]}, ...]}

``speaker`` on segments and words and a ``speakers`` list only when the job was diarized;
``channel`` on a segment only when it has one. Version 1 (no ``v``, no character spans) is read
by :meth:`Transcript.from_dict`, which places each word in its sentence's text once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# 1: no "v" key, words without character spans. 2: "v", and start_char/end_char on every word.
STORED_VERSION = 2


@dataclass(frozen=True)
class Word:
    """``speaker``: the speaker's id (``S1``, ``S2``...) when the job was diarized, else None.
    ``start_char``/``end_char``: the word's place in its segment's text (None only for a word of a
    version 1 transcript that does not spell its sentence's text)."""

    start_ms: int
    end_ms: int
    text: str
    speaker: str | None = None
    start_char: int | None = None
    end_char: int | None = None

    @property
    def placed(self) -> bool:
        return self.start_char is not None and self.end_char is not None


@dataclass(frozen=True)
class Segment:
    """One sentence: its text (punctuated, after ITN), its span and its words, in order.

    ``punc`` is the closing punctuation mark and ``tokens`` the per-token spans as FunASR's
    ``stamp_sents`` carries them (``ts_list``); both may be empty. ``channel``: the audio channel
    the sentence was heard on, when the job keeps channels apart (None otherwise).
    """

    start_ms: int
    end_ms: int
    text: str
    words: tuple[Word, ...] = ()
    punc: str = ""
    tokens: tuple[tuple[int, int], ...] = ()
    speaker: str | None = None
    channel: int | None = None

    def __post_init__(self) -> None:
        at = 0
        for w in self.words:
            if w.placed and not at <= w.start_char <= w.end_char <= len(self.text):
                raise ValueError(f"word {w.text!r} at {w.start_char}..{w.end_char} is not in order inside {self.text!r}")
            at = w.end_char if w.placed else at

    @property
    def placed(self) -> bool:
        """Whether every word with text has its place in the text (always, but in some version 1 rows)."""
        return all(w.placed for w in self.words if w.text.strip())


@dataclass(frozen=True)
class Speaker:
    """A voice diarization found: ``id`` is ``S1``, ``S2``... in order of first appearance;
    ``name`` is what a person called it (None until someone does)."""

    id: str
    name: str | None = None


@dataclass
class Transcript:
    """``speakers`` is None when the job was not diarized (then no segment or word carries a
    speaker, and the stored form has no ``speaker``/``speakers`` keys at all), else every speaker
    found. ``warnings`` travel on the job, not in the stored form."""

    text: str
    language: str
    duration_ms: int
    segments: list[Segment] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    speakers: list[Speaker] | None = None

    def to_dict(self) -> dict:
        """The stored form (also the API's JSON)."""
        diarized = self.speakers is not None

        def word(w: Word) -> dict:
            data = {"start_ms": w.start_ms, "end_ms": w.end_ms, "text": w.text,
                    "start_char": w.start_char, "end_char": w.end_char}
            if diarized:
                data["speaker"] = w.speaker
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
            if s.channel is not None:
                data["channel"] = s.channel
            return data

        data = {
            "v": STORED_VERSION,
            "text": self.text,
            "language": self.language,
            "duration_ms": self.duration_ms,
            "segments": [segment(s) for s in self.segments],
        }
        if diarized:
            data["speakers"] = [{"id": p.id, "name": p.name} for p in self.speakers]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Transcript":
        """A stored transcript of any version up to :data:`STORED_VERSION`; ValueError for a later one."""
        version = data.get("v", 1)
        if not isinstance(version, int) or not 1 <= version <= STORED_VERSION:
            raise ValueError(f"transcript version {version!r} is not one this release reads (1..{STORED_VERSION})")
        segments = []
        for s in data.get("segments", []):
            words = [Word(start_ms=w["start_ms"], end_ms=w["end_ms"], text=w["text"], speaker=w.get("speaker"),
                          start_char=w.get("start_char"), end_char=w.get("end_char"))
                     for w in s.get("words", [])]
            if version == 1:
                words = place_words(s["text"], words)
            segments.append(Segment(
                start_ms=s["start_ms"],
                end_ms=s["end_ms"],
                text=s["text"],
                punc=s.get("punc", ""),
                words=tuple(words),
                tokens=tuple(tuple(t) for t in s.get("tokens", [])),
                speaker=s.get("speaker"),
                channel=s.get("channel"),
            ))
        return cls(
            text=data["text"],
            language=data["language"],
            duration_ms=data["duration_ms"],
            segments=segments,
            speakers=None if data.get("speakers") is None else [Speaker(p["id"], p.get("name")) for p in data["speakers"]],
        )


def place_words(text: str, words: list[Word]) -> list[Word]:
    """``words`` with their places in ``text``, found in order (each without its surrounding
    spaces; only spaces and marks may lie between two words). For version 1 rows, written before
    words carried their places; when the words do not spell the text, none is placed."""
    placed: list[Word] = []
    at = 0
    for w in words:
        piece = w.text.strip()
        if not piece:
            placed.append(Word(w.start_ms, w.end_ms, w.text, w.speaker))
            continue
        found = text.find(piece, at)
        if found < 0 or any(ch.isalnum() for ch in text[at:found]):
            return [Word(w.start_ms, w.end_ms, w.text, w.speaker) for w in words]
        placed.append(Word(w.start_ms, w.end_ms, w.text, w.speaker, found, found + len(piece)))
        at = found + len(piece)
    return placed
