"""Joining recognised words into text, the same way for every profile.

Chinese is written without spaces, English with them; mixed text puts no space next to a CJK
character (``使用ComfyUI``), which is how FunASR writes it too. Thai, Lao and Burmese pieces join
without spaces too (Whisper cuts them, as it cuts Chinese, into pieces that are not words).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

from pipeline.errors import EngineMissingError

SENTENCE_END = frozenset(".?!。？！")
PUNCTUATION = frozenset(".,?!;:。，？！；：、…\"'“”‘’()（）")
# Written against the number before them, with no space: "50%", "25℃", "300元", "3万", "5亿".
UNITS_AFTER_NUMBER = "%‰℃元万亿"
# The marks that have a half-width and a full-width form, each way.
FULL_WIDTH = {",": "，", ".": "。", "?": "？", "!": "！", ":": "：", ";": "；"}
HALF_WIDTH = {full: half for half, full in FULL_WIDTH.items()}
# A job asks for Chinese in traditional characters with one of these codes; OpenCC's conversion.
TRADITIONAL_CHINESE = {"zh-hant": "s2t", "zh-tw": "s2tw"}

_SPACE_BEFORE_UNIT = re.compile(rf"(?<=\d)\s+(?=[{UNITS_AFTER_NUMBER}]|°C)")
_DEGREES_CELSIUS = re.compile(r"(?<=\d)\s*°C")
_YUAN = re.compile(r"[¥￥]\s*(\d+(?:,\d{3})*(?:\.\d+)?)(\s*[万亿])?")


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


def is_han(ch: str) -> bool:
    """True for Han ideographs and kana: letters of text written with full-width punctuation."""
    return is_cjk(ch) and not (0x3000 <= ord(ch) <= 0x303F or 0xFF00 <= ord(ch) <= 0xFFEF)


def needs_space(left: str, right: str) -> bool:
    """Whether a space goes between two adjacent words ``left`` and ``right`` (both non-empty)."""
    if is_cjk(left[-1]) or is_cjk(right[0]):
        return False
    if right[0] in UNITS_AFTER_NUMBER:  # Whisper's tokens "50" "%": one "50%"
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


def as_written(text: str, language: str) -> str:
    """``text`` (one sentence) as people write it: no space between a number and its unit
    ("50 %" -> "50%"); in Chinese, "¥300" -> "300元" and "25°C" -> "25℃"; each punctuation mark
    full-width after a clause with Chinese (or Japanese) characters in it and half-width after
    one without ("我用ComfyUI,很好." -> "我用ComfyUI，很好。", "OK。" -> "OK."), with a space after a
    half-width mark and none around a full-width one. Marks inside numbers ("3.5", "1,000",
    "10:30") are left alone."""
    text = _SPACE_BEFORE_UNIT.sub("", text)
    if language.startswith("zh"):
        text = _YUAN.sub(lambda m: f"{m[1]}{(m[2] or '').strip()}元", text)
        text = _DEGREES_CELSIUS.sub("℃", text)
    sentence_full = language.startswith(("zh", "ja"))
    out: list[str] = []
    clause_start = 0  # index in ``out`` where the current clause began
    after_mark: str | None = None  # the mark just written, until the next character
    for i, ch in enumerate(text):
        half = HALF_WIDTH.get(ch, ch)
        if half not in FULL_WIDTH or _inside_number(text, i):
            if ch.isspace() and after_mark is not None and after_mark in HALF_WIDTH:
                continue  # no space after a full-width mark
            if after_mark in FULL_WIDTH and not ch.isspace() and not is_cjk(ch) and ch not in PUNCTUATION:
                out.append(" ")  # "you,and" -> "you, and"
            out.append(ch)
            after_mark = None
            continue
        clause = "".join(out[clause_start:])
        if any(is_han(c) for c in clause):
            mark = FULL_WIDTH[half]
        elif len(clause.split()) >= 2:  # an English phrase, even inside a Chinese sentence
            mark = half
        elif any(c.isalnum() for c in clause):  # one word or number: the sentence's own width
            mark = FULL_WIDTH[half] if sentence_full else half
        else:  # "?!": the same width as the mark before
            mark = FULL_WIDTH[half] if after_mark in HALF_WIDTH else half
        while out and out[-1].isspace():
            out.pop()
        out.append(mark)
        after_mark = mark
        clause_start = len(out)
    return "".join(out).strip()


def _inside_number(text: str, i: int) -> bool:
    """Whether the mark at ``i`` sits between two digits ("3.5", "1,000", "10:30")."""
    return text[i] in ".,:" and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()


def to_traditional(text: str, language: str) -> str:
    """``text`` in traditional characters, for a job whose language is ``zh-hant`` or ``zh-tw``
    (Taiwan's standard forms); other text unchanged."""
    config = TRADITIONAL_CHINESE.get(language)
    return _opencc(config).convert(text) if config else text


@lru_cache(maxsize=None)
def _opencc(config: str):
    try:
        # opencc (an extra) only when a job asks for traditional characters: missing, it says what to install
        from opencc import OpenCC
    except ImportError as exc:
        raise EngineMissingError(
            "Traditional Chinese output needs OpenCC: pip install opencc-python-reimplemented"
        ) from exc
    return OpenCC(config)
