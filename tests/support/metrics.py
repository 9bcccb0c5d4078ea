"""Text comparisons for recognition tests."""
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
