"""Text comparisons and transcript checks for recognition tests."""
from __future__ import annotations

import re


def words_of(text: str) -> list[str]:
    """Lower-case words without punctuation, for word error rates."""
    return re.findall(r"[a-z0-9']+", text.lower())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference length."""
    ref, hyp = words_of(reference), words_of(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def hanzi(text: str) -> str:
    """Only the Han characters of ``text`` (punctuation and spaces aside)."""
    return "".join(ch for ch in text if "\u4e00" <= ch <= "\u9fff")


def assert_timeline(transcript) -> None:
    """Words monotonic, inside the audio, inside their sentence; sentences in order."""
    previous_end = 0
    for segment in transcript.segments:
        assert 0 <= segment.start_ms <= segment.end_ms <= transcript.duration_ms
        assert segment.start_ms >= previous_end
        assert segment.words, segment
        for word in segment.words:
            assert segment.start_ms <= word.start_ms <= word.end_ms <= segment.end_ms
            assert word.start_ms >= previous_end
            previous_end = word.end_ms
