"""Resume: the seam through which a caller keeps finished ASR batches, so that a transcription
started again (after its worker died) skips what is done and continues.

The pipeline asks once which batches are done (:meth:`Checkpoint.finished`) and hands over each
batch it recognises (:meth:`Checkpoint.save`). A batch is named by :func:`batch_key`, which depends
only on what decides its words: the model set, the options that change recognition, the pass, and
the batch's VAD spans. Batches are cut from the spans alone (:mod:`pipeline.batching`), so a second
run over the same file cuts the same batches, finds them by the same keys, and the transcript it
writes is the one an uninterrupted run writes. How batches are kept (SQL, files) is the caller's.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence, runtime_checkable

from pipeline.sentences import TimedWord
from pipeline.stages import SpeechSpan
from pipeline.types import TranscribeOptions

# Bumped when the meaning of a stored batch changes, so that old batches are not read as new ones.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BatchResult:
    """What one ASR batch found: per span (by its start), the words on the file's timeline as
    ``(start_ms, end_ms, text, language)``."""

    spans: tuple[tuple[int, tuple[tuple[int, int, str, str], ...]], ...]

    @classmethod
    def of(cls, per_span: Sequence[tuple[int, Sequence[TimedWord]]]) -> "BatchResult":
        return cls(tuple(
            (start_ms, tuple((w.start_ms, w.end_ms, w.text, w.language) for w in words))
            for start_ms, words in per_span
        ))

    def per_span(self) -> list[tuple[int, list[TimedWord]]]:
        """Fresh words (the pipeline edits words in place later on)."""
        return [(start_ms, [TimedWord(*w) for w in words]) for start_ms, words in self.spans]

    def to_json(self) -> dict:
        return {"v": FORMAT_VERSION, "spans": [[start_ms, [list(w) for w in words]] for start_ms, words in self.spans]}

    @classmethod
    def from_json(cls, data: dict) -> "BatchResult":
        if data.get("v") != FORMAT_VERSION:
            raise ValueError(f"a stored batch of format {data.get('v')!r}, expected {FORMAT_VERSION}")
        return cls(tuple(
            (int(start_ms), tuple((int(a), int(b), str(text), str(language)) for a, b, text, language in words))
            for start_ms, words in data["spans"]
        ))


@runtime_checkable
class Checkpoint(Protocol):
    """Where a transcription keeps its finished ASR batches.

    ``scope``: what else decides a batch's words and the pipeline cannot see (for a worker, its
    profile's options: which model files, beam size); part of every key, so a batch recognised by
    another model set is never reused.
    """

    scope: str

    def finished(self) -> Mapping[str, BatchResult]:
        """Batches kept by an earlier run of the same job, by key; called once, before ASR starts."""
        ...

    def save(self, key: str, result: BatchResult) -> None:
        """Keep a batch just recognised. Called from the transcription's thread after each batch; a
        failure to keep it should be logged and swallowed (resume is an optimisation), while an
        exception raised on purpose (the job was canceled) stops the transcription."""
        ...


def batch_key(scope: str, engine_name: str, options: TranscribeOptions, pass_number: int,
              batch: Sequence[SpeechSpan]) -> str:
    """A batch's identity (64 hex characters), the same in every attempt at the job."""
    identity = {
        "v": FORMAT_VERSION,
        "scope": scope,
        "engine": engine_name,
        "language": options.language,
        "hotwords": [[h.text, h.weight] for h in options.hotwords],
        "pass": pass_number,
        "spans": [[s.start_ms, s.end_ms, *([[list(c) for c in s.cuts]] if s.cuts else [])] for s in batch],
        **({"task": options.task} if options.task != "transcribe" else {}),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
