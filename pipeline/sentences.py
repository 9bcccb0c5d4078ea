"""Sentences from the recognised words: cut at sentence-final marks, long pauses, language and
speaker changes, and length; each written as a :class:`contract.Segment`, with the words an ITN rewrite
touched merged into one, and each word's place in the sentence's text."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Sequence

from contract import Segment, Word
from pipeline.text import PUNCTUATION, SENTENCE_END

# A pause this long between two words ends a sentence even without a full stop.
SENTENCE_GAP_MS = 1500
# Sentences longer than this are cut at their next comma-like mark, else at the next word.
MAX_SENTENCE_MS = 30_000


@dataclass
class TimedWord:
    """A word on the file's timeline while sentences are being built."""

    start_ms: int
    end_ms: int
    text: str
    language: str
    speaker: str | None = None  # set by the diarize stage when the job asks for speakers


def make_monotonic(words: list[TimedWord]) -> None:
    """Aligners sometimes let a word start before the previous one ends; clamp, in place.

    A word that starts inside the one before, after that one's start, ends the one before: the
    overlap is the earlier word stretched over speech its window skipped (read again on its own
    since), not the later word late."""
    previous: TimedWord | None = None
    for w in words:
        if previous is not None and w.start_ms < previous.end_ms:
            if w.start_ms > previous.start_ms:
                previous.end_ms = w.start_ms
            else:
                w.start_ms = previous.end_ms
        w.end_ms = max(w.end_ms, w.start_ms)
        previous = w


def cut_sentences(words: list[TimedWord]) -> list[tuple[str, list[TimedWord]]]:
    """Cut the word stream into sentences: at sentence-final marks, long pauses, language and
    speaker changes, and when a sentence runs past MAX_SENTENCE_MS (at a comma if one comes)."""
    sentences: list[tuple[str, list[TimedWord]]] = []
    current: list[TimedWord] = []
    for w in words:
        if current and (
            w.language != current[-1].language
            or w.speaker != current[-1].speaker
            or w.start_ms - current[-1].end_ms >= SENTENCE_GAP_MS
            or (w.end_ms - current[0].start_ms > MAX_SENTENCE_MS * 1.5)
        ):
            sentences.append((current[0].language, current))
            current = []
        current.append(w)
        long_enough = w.end_ms - current[0].start_ms > MAX_SENTENCE_MS
        if w.text[-1] in SENTENCE_END or (long_enough and w.text[-1] in PUNCTUATION):
            sentences.append((current[0].language, current))
            current = []
    if current:
        sentences.append((current[0].language, current))
    return sentences


def to_segment(words: list[TimedWord], text: str, normalised: str) -> Segment:
    """A sentence record of ``words`` (whose join is ``text``) written as ``normalised`` (ITN's
    output, or ``text`` itself); words an ITN rewrite touched are re-aligned. Every word carries
    its place in the sentence's text."""
    speaker = words[0].speaker  # one per sentence: cut_sentences cuts where it changes
    items: list[Word] = []
    at = 0
    for w in words:  # ``text`` is their join: each word is found where the join put it
        start = text.index(w.text, at)
        at = start + len(w.text)
        items.append(Word(w.start_ms, w.end_ms, w.text, speaker, start, at))
    if normalised != text:
        items = [replace(w, speaker=speaker) for w in realign_words(items, text, normalised)]
        text = normalised
    punc = text[-1] if text and text[-1] in PUNCTUATION else ""
    return Segment(
        start_ms=items[0].start_ms if items else words[0].start_ms,
        end_ms=items[-1].end_ms if items else words[-1].end_ms,
        text=text,
        words=tuple(items),
        punc=punc,
        tokens=tuple((w.start_ms, w.end_ms) for w in items),
        speaker=speaker,
    )


def realign_words(words: Sequence[Word], before: str, after: str) -> list[Word]:
    """Words for ``after`` (ITN's output for ``before``, which is the join of ``words``).

    Words ITN left alone keep their text and times; the words one rewrite touched ("二" "十"
    "三" -> "23") become a single word spanning their times and carrying the rewritten text. Each
    word carries its place in ``after``.
    """
    bounds: list[tuple[int, int]] = []  # each word's [start, end) in ``before``
    at = 0
    for w in words:
        at = before.index(w.text, at)
        bounds.append((at, at + len(w.text)))
        at += len(w.text)
    opcodes = [op for op in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()]

    # Runs of consecutive words that one change touches become one group: group_last[n] is the
    # index of the last word in the group that starts at word n.
    group_last = list(range(len(words)))
    for tag, i1, i2, _, _ in opcodes:
        if tag == "equal":
            continue
        touched = [
            n for n, (a, b) in enumerate(bounds)
            if (a <= i1 <= b if i1 == i2 else a < i2 and b > i1)
        ]
        if touched:
            group_last[touched[0]] = max(group_last[touched[0]], touched[-1])

    def start_in_after(pos: int) -> int:
        for tag, i1, i2, j1, _ in opcodes:
            if i1 == i2 == pos or (i1 <= pos < i2):
                return j1 + (pos - i1) if tag == "equal" else j1
        return len(after)

    def end_in_after(pos: int) -> int:
        found = len(after)
        for tag, i1, i2, j1, j2 in opcodes:
            if i1 == i2 == pos or (i1 < pos <= i2):
                found = j1 + (pos - i1) if tag == "equal" else j2
        return found

    result: list[Word] = []
    n = 0
    while n < len(words):
        m = group_last[n]
        while m + 1 < len(words) and any(group_last[k] > m for k in range(n, m + 1)):
            m = max(group_last[k] for k in range(n, m + 1))
        start, end = start_in_after(bounds[n][0]), end_in_after(bounds[m][1])
        text = after[start:end].strip()
        if text:
            start = after.index(text, start)  # past the spaces strip() dropped
            result.append(Word(words[n].start_ms, words[m].end_ms, text, None, start, start + len(text)))
        n = m + 1
    return result


def dominant_language(words: Sequence[TimedWord], requested: str) -> str:
    """The language with the most speech time; the requested one when nothing was recognised."""
    totals: dict[str, int] = {}
    for w in words:
        totals[w.language] = totals.get(w.language, 0) + max(1, w.end_ms - w.start_ms)
    if totals:
        return max(totals, key=totals.__getitem__)
    return requested if requested != "auto" else ""
