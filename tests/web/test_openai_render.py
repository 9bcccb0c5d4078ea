"""The OpenAI door's rendering rules, as pure functions: words without punctuation, and the
stream's deltas, which put together are the transcript's text."""
from __future__ import annotations

from contract import Segment, Transcript
from web.openai import _bare, deltas


def _transcript(text: str, sentences: list[str]) -> Transcript:
    return Transcript(text=text, language="en", duration_ms=1000,
                      segments=[Segment(start_ms=0, end_ms=1000, text=t) for t in sentences])


def test_a_word_loses_the_punctuation_around_it_only():
    assert [_bare(w) for w in ("Americans,", "\u201cAsk", "not.", "U.S.", "50%", "你好。", "...")] == \
        ["Americans", "Ask", "not", "U.S", "50%", "你好", ""]


def test_deltas_are_the_text_cut_after_each_sentence():
    data = _transcript("And so, my fellow Americans, ask not. What your country can do for you.",
                       ["And so, my fellow Americans, ask not.", "What your country can do for you."])
    assert deltas(data) == ["And so, my fellow Americans, ask not.", " What your country can do for you."]
    chinese = _transcript("欢迎大家。来体验达摩院。", ["欢迎大家。", "来体验达摩院。"])
    assert deltas(chinese) == ["欢迎大家。", "来体验达摩院。"]
    assert deltas(_transcript("", [])) == []
