"""Sentences and their words after ITN."""
from __future__ import annotations

from pipeline.sentences import realign_words
from pipeline.types import Word


def test_realign_merges_only_rewritten_words():
    words = [Word(i * 100, i * 100 + 90, t) for i, t in enumerate("第二十三号")]
    out = realign_words(words, "第二十三号", "第23号")
    assert out == [Word(0, 90, "第"), Word(100, 390, "23"), Word(400, 490, "号")]
    english = [Word(i * 100, i * 100 + 90, t) for i, t in enumerate(["on", "March", "fifth."])]
    assert realign_words(english, "on March fifth.", "on March 5th.") == [
        Word(0, 90, "on"), Word(100, 190, "March"), Word(200, 290, "5th.")]
