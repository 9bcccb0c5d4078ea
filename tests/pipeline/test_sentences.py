"""Sentences and their words after ITN, each word with its place in the sentence's text."""
from __future__ import annotations

from contract import Word
from pipeline.sentences import TimedWord, make_monotonic, realign_words, to_segment


def test_realign_merges_only_rewritten_words():
    words = [Word(i * 100, i * 100 + 90, t) for i, t in enumerate("第二十三号")]
    out = realign_words(words, "第二十三号", "第23号")
    assert out == [Word(0, 90, "第", None, 0, 1), Word(100, 390, "23", None, 1, 3), Word(400, 490, "号", None, 3, 4)]
    english = [Word(i * 100, i * 100 + 90, t) for i, t in enumerate(["on", "March", "fifth."])]
    assert realign_words(english, "on March fifth.", "on March 5th.") == [
        Word(0, 90, "on", None, 0, 2), Word(100, 190, "March", None, 3, 8), Word(200, 290, "5th.", None, 9, 13)]


def test_every_word_knows_its_place_in_the_sentence():
    timed = [TimedWord(0, 300, "Hello,", "en"), TimedWord(300, 600, "使用", "zh"), TimedWord(600, 900, "ComfyUI", "zh")]
    segment = to_segment(timed, "Hello, 使用ComfyUI", "Hello，使用ComfyUI")
    assert [(w.text, segment.text[w.start_char:w.end_char]) for w in segment.words] == [
        ("Hello，", "Hello，"), ("使用", "使用"), ("ComfyUI", "ComfyUI")]
    plain = to_segment(timed, "Hello, 使用ComfyUI", "Hello, 使用ComfyUI")
    assert [(w.start_char, w.end_char) for w in plain.words] == [(0, 6), (7, 9), (9, 16)]


def test_a_word_starting_inside_the_one_before_ends_it():
    """An aligner's word stretched over skipped speech ends where the next word (read again) starts;
    a word starting with or before the one before it starts where that one ends."""
    words = [TimedWord(0, 10_000, "confu-i", "en"), TimedWord(1_000, 1_400, "And", "en"),
             TimedWord(1_000, 1_200, "so", "en"), TimedWord(1_500, 1_500, "my", "en")]
    make_monotonic(words)
    assert [(w.start_ms, w.end_ms) for w in words] == [(0, 1_000), (1_000, 1_400), (1_400, 1_400), (1_500, 1_500)]
