"""Transcript exports: JSON, TXT, SRT, VTT, rendered from the contract's :class:`~contract.Transcript`.

Subtitle cues are cut from the word timestamps so that a person can read them: a cue holds at
most ``max_lines`` lines of at most ``max_line_chars`` characters and lasts at most ``max_cue_s``
seconds, as subtitle style guides ask (Netflix's Timed Text Style Guide: 42 characters a line for
Latin scripts, 16 for Chinese, two lines, about 7 s). Cues end at word boundaries, by preference
after punctuation or at a pause; a cue shorter than ``min_cue_s`` stays up into the silence after
it. TXT and JSON keep one sentence per line / record.

Cues are cut at the words' places in their sentence's text (``start_char``, carried by the
transcript): the text between two words (a space, a mark, nothing) stays as the sentence has it.
Segments and words may carry a ``speaker`` label (``S1``, ``S2``, ...): a cue never holds two
speakers, SRT and TXT lines then start with ``[S1] `` and VTT cues with the voice tag ``<v S1>``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import unicodedata
from dataclasses import dataclass
from typing import Sequence

from contract import Segment, Transcript
from core.errors import BadOptionError

FORMATS = {
    "json": "application/json; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}

# Characters a line when the caller gives no max_line_chars, by the script of the cue's sentence.
LATIN_LINE_CHARS = 42
CJK_LINE_CHARS = 16

# What a caller may ask for: (lowest, highest) for each limit.
LINE_CHARS_RANGE = (5, 200)
LINES_RANGE = (1, 5)
CUE_S_RANGE = (1.0, 60.0)

# Marks after which a cue or a line ends well: a sentence end best, a clause end next.
_SENTENCE_END = frozenset(".?!。？！…")
_CLAUSE_END = frozenset(",;:，；：、—–")
# Pauses between two words (ms) that are as good a place to cut as a comma, or half as good.
_LONG_PAUSE_MS = 500
_SHORT_PAUSE_MS = 200
# How long a word of n letters takes to say, at most, before the rest is taken for a pause.
_WORD_MS = 150
_LETTER_MS = 100


class SubtitleLimitsError(BadOptionError):
    """A subtitle limit out of range or of the wrong type; the message names the limit and its range."""


@dataclass(frozen=True)
class SubtitleLimits:
    """How long subtitle cues and their lines may be.

    max_line_chars: characters a line (5-200); None (the default) picks by the script of each
        cue's sentence: 42 for Latin and other alphabetic scripts, 16 for Chinese, Japanese and
        Korean. An explicit value applies to every cue as given.
    max_lines: lines a cue (1-5, default 2).
    max_cue_s: seconds a cue stays up at most (1-60, default 7).
    min_cue_s: a shorter cue stays up this long where the silence after it allows, never over the
        next cue (0 to ``max_cue_s``, default 1).

    A single word longer than a line (a URL) still makes a cue of its own: words are never cut.
    """

    max_line_chars: int | None = None
    max_lines: int = 2
    max_cue_s: float = 7.0
    min_cue_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_line_chars is not None:
            _check_int("max_line_chars", self.max_line_chars, LINE_CHARS_RANGE)
        _check_int("max_lines", self.max_lines, LINES_RANGE)
        _check_seconds("max_cue_s", self.max_cue_s, *CUE_S_RANGE)
        _check_seconds("min_cue_s", self.min_cue_s, 0.0, float(self.max_cue_s))

    def line_chars(self, text: str) -> int:
        """The line length for a cue of ``text``'s sentence."""
        if self.max_line_chars is not None:
            return self.max_line_chars
        return CJK_LINE_CHARS if is_wide_script(text) else LATIN_LINE_CHARS


def _check_int(name: str, value, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SubtitleLimitsError(f"{name} must be a whole number from {low} to {high}, not {value!r}")


def _check_seconds(name: str, value, low: float, high: float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not low <= value <= high:
        raise SubtitleLimitsError(f"{name} must be a number of seconds from {low:g} to {high:g}, not {value!r}")


def is_wide_script(text: str) -> bool:
    """True when at least half of ``text``'s letters, by display width, are East Asian wide
    characters (Han, kana, Hangul): such lines are read by the character, not by the word."""
    wide = narrow = 0
    for ch in text:
        if not ch.isalnum():
            continue
        if unicodedata.east_asian_width(ch) in ("W", "F"):
            wide += 2
        else:
            narrow += 1
    return wide > 0 and wide >= narrow


@dataclass(frozen=True)
class Cue:
    """One subtitle: its time on the file's timeline, its lines (without a speaker label), its
    speaker (None when the transcript has no speakers) and the index of the sentence (segment)
    it was cut from."""

    start_ms: int
    end_ms: int
    lines: tuple[str, ...]
    speaker: str | None = None
    segment: int = 0


@dataclass(frozen=True)
class _Unit:
    """A word of a sentence, with where it starts in the sentence's text (a cut before it falls there)."""

    start_ms: int
    end_ms: int
    at: int  # index in the sentence text where this word (or what precedes it) begins
    speaker: str | None


def _label_width(speaker: str | None) -> int:
    return len(f"[{speaker}] ") if speaker else 0


def build_cues(transcript: Transcript, limits: SubtitleLimits = SubtitleLimits()) -> list[Cue]:
    """The transcript's subtitle cues, in time order, within ``limits``, not overlapping."""
    cues: list[Cue] = []
    for index, segment in enumerate(transcript.segments):
        text = segment.text
        if not text.strip():
            continue
        units = _units(segment)
        width = limits.line_chars(text)
        for first, end in _cut_cues(text, units, width, limits):
            cues.append(_make_cue(text, units, first, end, width, limits, index))
    return _settle_times(cues, limits, int(transcript.duration_ms or 0))


def _units(segment: Segment) -> list[_Unit]:
    """The sentence's words at their places in its text. A sentence without words (or with words
    that have no place: some transcripts stored before version 2) is one unit over its times."""
    words = [w for w in segment.words if w.text.strip()]
    if not words or not segment.placed:
        return [_Unit(segment.start_ms, segment.end_ms, 0, segment.speaker)]
    units: list[_Unit] = []
    previous_end = 0
    for word in words:
        at = previous_end + _cut_in_gap(segment.text[previous_end:word.start_char]) if units else 0
        units.append(_Unit(word.start_ms, word.end_ms, at, word.speaker if word.speaker is not None else segment.speaker))
        previous_end = word.end_char
    return units


_OPENERS = frozenset("\"'“‘(（[「『《")


def _cut_in_gap(gap: str) -> int:
    """Where, in the text between two words, a cut between them goes: at the first space, else
    before any opening mark (it belongs to the next word); marks before it stay with the word before."""
    for i, ch in enumerate(gap):
        if ch.isspace() or ch in _OPENERS:
            return i
    return len(gap)


def _span_text(text: str, units: Sequence[_Unit], first: int, end: int) -> str:
    """The sentence text of units ``first`` .. ``end - 1``."""
    stop = units[end].at if end < len(units) else len(text)
    return text[units[first].at:stop].strip()


def _break_cost(text: str, units: Sequence[_Unit], after: int) -> float:
    """How bad a cue or line break after unit ``after`` is: 0 after a sentence end (and at the
    end of the sentence), a little after a clause mark, less with a pause there, more at a pause
    alone, 2 between two words said together."""
    if after + 1 >= len(units):
        return 0.0
    word = _span_text(text, units, after, after + 1)
    last = word[-1:] if word else ""
    if last in _SENTENCE_END:
        return 0.0
    following = units[after + 1]
    letters = sum(ch.isalnum() for ch in _span_text(text, units, after + 1, after + 2))
    # Whisper's aligner often hands a pause to the word after it ("ask" lasting 1.6 s): time a
    # word holds beyond a generous reading of its letters counts as pause before it.
    stretch_ms = max(0, following.end_ms - following.start_ms - (_WORD_MS + _LETTER_MS * letters))
    gap_ms = following.start_ms - units[after].end_ms + stretch_ms
    if last in _CLAUSE_END or last in "\"”’)）":
        return 0.1 if gap_ms >= _SHORT_PAUSE_MS else 0.3
    if gap_ms >= _LONG_PAUSE_MS:
        return 0.8
    if gap_ms >= _SHORT_PAUSE_MS:
        return 1.4
    return 2.0


# A cue costs this much: a sentence that fits one cue is never cut, and one that must be cut
# takes a cue more where that moves a cut from a pause to a comma.
_CUE_COST = 0.5
# Added for a cue shorter than min_cue_s (it would have to borrow time from the silence after it).
_SHORT_CUE_COST = 0.5


def _cut_cues(text: str, units: Sequence[_Unit], width: int, limits: SubtitleLimits) -> list[tuple[int, int]]:
    """Cut the sentence's units into cues, ``(first, end)`` index ranges: the cheapest cutting
    (a shortest-path over cut points) where every cue fits ``max_lines`` lines of ``width``,
    lasts at most ``max_cue_s`` and holds one speaker. A word too long for any cue stands alone."""
    n = len(units)
    max_cue_ms = int(limits.max_cue_s * 1000)
    min_cue_ms = int(limits.min_cue_s * 1000)
    best = [math.inf] * (n + 1)
    back = [0] * (n + 1)
    best[0] = 0.0
    for first in range(n):
        if best[first] == math.inf:
            continue
        speaker = units[first].speaker
        lines, line_start = 1, first
        alone = len(_span_text(text, units, first, first + 1)) > width - _label_width(speaker)
        for end in range(first + 1, n + 1):
            last = end - 1
            if end > first + 1:
                if alone:  # a word longer than the first line: a cue of its own
                    break
                if units[last].speaker != speaker or units[last].end_ms - units[first].start_ms > max_cue_ms:
                    break
                budget = width - (_label_width(speaker) if lines == 1 else 0)
                if len(_span_text(text, units, line_start, end)) > budget:
                    lines, line_start = lines + 1, last
                    if lines > limits.max_lines or len(_span_text(text, units, last, end)) > width:
                        break
            cost = best[first] + _CUE_COST + _break_cost(text, units, last)
            if min(units[last].end_ms, units[first].start_ms + max_cue_ms) - units[first].start_ms < min_cue_ms:
                cost += _SHORT_CUE_COST
            if cost < best[end]:
                best[end], back[end] = cost, first
    cuts: list[tuple[int, int]] = []
    end = n
    while end > 0:
        cuts.append((back[end], end))
        end = back[end]
    return cuts[::-1]


def _make_cue(
    text: str, units: Sequence[_Unit], first: int, end: int, width: int, limits: SubtitleLimits, segment: int
) -> Cue:
    speaker = units[first].speaker
    start_ms = units[first].start_ms
    end_ms = min(max(units[end - 1].end_ms, start_ms + 1), start_ms + int(limits.max_cue_s * 1000))
    lines = _wrap(text, units, first, end, width, _label_width(speaker))
    return Cue(start_ms, end_ms, lines, speaker, segment)


def _wrap(text: str, units: Sequence[_Unit], first: int, end: int, width: int, label: int) -> tuple[str, ...]:
    """The cue's lines: one when it fits, else the fewest lines that fit, broken where the lines
    come out most even and the breaks fall after punctuation or at pauses."""
    whole = _span_text(text, units, first, end)
    if len(whole) + label <= width or end - first == 1:
        return (whole,)

    def fits(a: int, b: int, line: int) -> bool:
        return len(_span_text(text, units, a, b)) <= width - (label if line == 0 else 0) or b - a == 1

    # Fewest lines that fit (greedy), then the best breaks for that many (a small search).
    count, a = 0, first
    while a < end:
        b = a + 1
        while b < end and fits(a, b + 1, count):
            b += 1
        count, a = count + 1, b
    target = len(whole) / count

    memo: dict[tuple[int, int], tuple[float, tuple[int, ...]]] = {}

    def search(a: int, line: int) -> tuple[float, tuple[int, ...]]:
        """Cheapest breaks for units a..end-1 over lines line..count-1."""
        key = (a, line)
        if key in memo:
            return memo[key]
        if line == count - 1:
            result = (((len(_span_text(text, units, a, end)) - target) / width) ** 2, ()) if fits(a, end, line) else (math.inf, ())
        else:
            result = (math.inf, ())
            for b in range(a + 1, end - (count - 1 - line) + 1):
                if not fits(a, b, line):
                    break
                rest, breaks = search(b, line + 1)
                cost = ((len(_span_text(text, units, a, b)) - target) / width) ** 2 + 0.25 * _break_cost(text, units, b - 1) + rest
                if cost < result[0]:
                    result = (cost, (b, *breaks))
        memo[key] = result
        return result

    _, breaks = search(first, 0)
    bounds = [first, *breaks, end]
    return tuple(_span_text(text, units, a, b) for a, b in zip(bounds, bounds[1:]))


def _settle_times(cues: list[Cue], limits: SubtitleLimits, duration_ms: int) -> list[Cue]:
    """Stretch cues shorter than ``min_cue_s`` into the silence after them, never over the next
    cue nor past the end of the audio; a cue that would overlap the next is trimmed."""
    min_cue_ms = int(limits.min_cue_s * 1000)
    settled: list[Cue] = []
    for i, cue in enumerate(cues):
        end_ms = max(cue.end_ms, cue.start_ms + min_cue_ms)
        cap = cues[i + 1].start_ms if i + 1 < len(cues) else duration_ms
        if cap > cue.start_ms:
            end_ms = min(end_ms, cap)
        settled.append(dataclasses.replace(cue, end_ms=max(end_ms, cue.start_ms + 1)))
    return settled


def _clock(ms: int, sep: str) -> str:
    ms = max(0, int(ms))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{millis:03d}"


def _labelled(speaker: str | None, line: str) -> str:
    return f"[{speaker}] {line}" if speaker else line


def to_txt(transcript: Transcript) -> str:
    """One sentence a line, ``[S1] `` before it when the transcript has speakers."""
    lines = [_labelled(segment.speaker, segment.text.strip()) for segment in transcript.segments if segment.text.strip()]
    return "\n".join(lines) + ("\n" if lines else "")


def to_srt(transcript: Transcript, limits: SubtitleLimits = SubtitleLimits()) -> str:
    blocks = []
    for i, cue in enumerate(build_cues(transcript, limits), start=1):
        lines = [_labelled(cue.speaker, cue.lines[0]), *cue.lines[1:]]
        blocks.append(f"{i}\n{_clock(cue.start_ms, ',')} --> {_clock(cue.end_ms, ',')}\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(transcript: Transcript, limits: SubtitleLimits = SubtitleLimits()) -> str:
    blocks = []
    for cue in build_cues(transcript, limits):
        payload = "\n".join(_vtt_escape(line) for line in cue.lines)
        if cue.speaker:
            payload = f"<v {_vtt_escape(cue.speaker)}>{payload}"
        blocks.append(f"{_clock(cue.start_ms, '.')} --> {_clock(cue.end_ms, '.')}\n{payload}\n")
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_json(transcript: Transcript) -> str:
    """The stored form at the current version (a transcript stored by an earlier version is upgraded)."""
    return json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2) + "\n"


def with_names(transcript: Transcript) -> Transcript:
    """The transcript with each speaker's given name (PUT .../speakers) in place of its id on
    segments and words, so every text export shows names; the JSON keeps ids and the names list."""
    names = {s.id: s.name for s in transcript.speakers or () if s.name}
    if not names:
        return transcript

    def named(item):
        return dataclasses.replace(item, speaker=names.get(item.speaker, item.speaker)) if item.speaker else item

    segments = [dataclasses.replace(named(seg), words=tuple(named(w) for w in seg.words)) for seg in transcript.segments]
    return dataclasses.replace(transcript, segments=segments)


def render(transcript: Transcript, fmt: str, limits: SubtitleLimits | None = None) -> str:
    """``transcript`` as ``fmt``; ``limits`` shape SRT and VTT cues (defaults when None).
    Text formats label speakers by the names given to them, when given."""
    limits = limits or SubtitleLimits()
    if fmt != "json":
        transcript = with_names(transcript)
    if fmt == "srt":
        return to_srt(transcript, limits)
    if fmt == "vtt":
        return to_vtt(transcript, limits)
    if fmt == "txt":
        return to_txt(transcript)
    if fmt == "json":
        return to_json(transcript)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
