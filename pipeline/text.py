"""Joining recognised words into text, the same way for every profile.

Chinese is written without spaces, English with them; mixed text puts no space next to a CJK
character (``使用ComfyUI``), which is how FunASR writes it too. Thai, Lao and Burmese pieces join
without spaces too (Whisper cuts them, as it cuts Chinese, into pieces that are not words).
"""
from __future__ import annotations

from typing import Iterable

SENTENCE_END = frozenset(".?!。？！")
PUNCTUATION = frozenset(".,?!;:。，？！；：、…\"'“”‘’()（）")


def is_cjk(ch: str) -> bool:
    """True for Han ideographs, kana and CJK punctuation (no space is written next to them)."""
    code = ord(ch)
    return (
        0x3000 <= code <= 0x30FF  # CJK punctuation, kana
        or 0x3400 <= code <= 0x4DBF
        or 0x4E00 <= code <= 0x9FFF
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF  # full-width forms: ，！？
        or 0x20000 <= code <= 0x2FA1F
    )


def is_unspaced(ch: str) -> bool:
    """True for Thai, Lao and Burmese letters: written without spaces between words, and
    recognised (like Chinese and Japanese) piece by piece, so two such pieces join with none."""
    code = ord(ch)
    return 0x0E00 <= code <= 0x0EFF or 0x1000 <= code <= 0x109F


def needs_space(left: str, right: str) -> bool:
    """Whether a space goes between two adjacent words ``left`` and ``right`` (both non-empty)."""
    if is_cjk(left[-1]) or is_cjk(right[0]):
        return False
    if is_unspaced(left[-1]) and is_unspaced(right[0]):
        return False
    return right[0] not in PUNCTUATION or right[0] in "\"“(（'‘"


def join_words(words: Iterable[str]) -> str:
    """Concatenate words, with spaces only between non-CJK neighbours."""
    out: list[str] = []
    for word in words:
        if not word:
            continue
        if out and needs_space(out[-1], word):
            out.append(" ")
        out.append(word)
    return "".join(out)
