"""Subtitle cues cut from word timestamps: limits, line breaks, timing, speakers, bad limits.

The transcripts here are written by hand in the stored shape (words and times as the pipeline
writes them, read as the contract's Transcript) to reach cases the shared recordings do not: hour-long sentences without a mark,
words longer than a line, speakers. tests/pipeline/test_subtitles_speech.py checks the same
rules on real transcripts of the shared speech.
"""
from __future__ import annotations

import dataclasses
import math

import pytest

from contract import Transcript
from core.export import (
    CJK_LINE_CHARS,
    LATIN_LINE_CHARS,
    SubtitleLimits,
    SubtitleLimitsError,
    build_cues,
    is_wide_script,
    render,
)
from pipeline.text import join_words
from tests.support.subtitles import assert_readable


def transcript(*sentences: list[tuple[str, int, int]], speakers: list[str] | None = None, duration_ms=None) -> Transcript:
    """A transcript from sentences given as (word, start_ms, end_ms) lists, through its stored form."""
    segments = []
    for n, words in enumerate(sentences):
        segment = {
            "start_ms": words[0][1], "end_ms": words[-1][2], "text": join_words(w for w, _, _ in words),
            "punc": "", "tokens": [], "words": [{"start_ms": s, "end_ms": e, "text": w} for w, s, e in words],
        }
        if speakers:
            segment["speaker"] = speakers[n]
            for word in segment["words"]:
                word["speaker"] = speakers[n]
        segments.append(segment)
    text = join_words(s["text"] for s in segments)
    end = duration_ms if duration_ms is not None else segments[-1]["end_ms"] + 500
    return Transcript.from_dict({"text": text, "language": "en", "duration_ms": end, "segments": segments})


def spoken(text: str, start_ms: int = 0, ms_per_char: int = 60, pause_after: dict | None = None) -> list:
    """Words of ``text`` (split on spaces, or per character for CJK) at a steady pace."""
    pause_after = pause_after or {}
    pieces = list(text) if is_wide_script(text) else text.split()
    words, t = [], start_ms
    for piece in pieces:
        end = t + ms_per_char * max(2, len(piece))
        words.append((piece, t, end))
        t = end + pause_after.get(piece, 0)
    return words


JFK_WORDS = [  # Whisper-base's words for jfk.flac, as the offline profile stores them
    ("And", 120, 520), ("so", 520, 840), ("my", 840, 1200), ("fellow", 1200, 1560), ("Americans,", 1560, 2100),
    ("ask", 3180, 3740), ("not", 3740, 4240), ("what", 4240, 5520), ("your", 5520, 5780), ("country", 5780, 6240),
    ("can", 6240, 6620), ("do", 6620, 6820), ("for", 6820, 7080), ("you,", 7080, 7380), ("ask", 7960, 8480),
    ("what", 8480, 8740), ("you", 8740, 9040), ("can", 9040, 9320), ("do", 9320, 9560), ("for", 9560, 9780),
    ("your", 9780, 9960), ("country.", 9960, 10360),
]


def test_a_long_latin_sentence_is_cut_at_its_commas_and_pauses():
    data = transcript(JFK_WORDS, duration_ms=11_000)
    cues = assert_readable(data)
    assert [cue.lines for cue in cues] == [
        ("And so my fellow Americans,",),
        ("ask not what your country can do for you,",),
        ("ask what you can do for your country.",),
    ]
    assert [(c.start_ms, c.end_ms) for c in cues] == [(120, 2100), (3180, 7380), (7960, 10360)]


def test_explicit_limits_apply_as_given():
    data = transcript(JFK_WORDS, duration_ms=11_000)
    limits = SubtitleLimits(max_line_chars=20, max_lines=2, max_cue_s=3.0)
    cues = assert_readable(data, limits)
    assert max(len(line) for cue in cues for line in cue.lines) <= 20
    assert any(len(cue.lines) == 2 for cue in cues)
    one_line = assert_readable(data, SubtitleLimits(max_line_chars=12, max_lines=1, max_cue_s=2.0))
    assert len(one_line) > len(cues) and all(len(c.lines) == 1 for c in one_line)


def test_two_lines_break_at_a_comma_near_the_middle():
    words = spoken("We walked along the river for an hour, and then we sat down by the bridge")
    cues = assert_readable(transcript(words), SubtitleLimits(max_cue_s=60))
    assert [c.lines for c in cues] == [("We walked along the river for an hour,", "and then we sat down by the bridge")]
    # Without the comma the lines come out even.
    words = spoken("We walked along the river for an hour and then we sat down by the bridge")
    cues = assert_readable(transcript(words), SubtitleLimits(max_cue_s=60))
    assert [c.lines for c in cues] == [("We walked along the river for an hour", "and then we sat down by the bridge")]


def test_cjk_lines_default_to_sixteen_characters():
    words = spoken("欢迎大家来体验达摩院推出的语音识别模型，今天我们一起来看一看它在会议记录里的表现。", ms_per_char=100)
    data = transcript(words)
    assert SubtitleLimits().line_chars(data.segments[0].text) == CJK_LINE_CHARS
    cues = assert_readable(data)
    assert all(len(line) <= CJK_LINE_CHARS for cue in cues for line in cue.lines)
    assert cues[0].lines[-1].endswith("，")  # the comma is the cut, not the middle of a word run
    assert "".join(line for cue in cues for line in cue.lines) == data.text


def test_script_decides_the_default_width():
    limits = SubtitleLimits()
    assert limits.line_chars("And so my fellow Americans") == LATIN_LINE_CHARS
    assert limits.line_chars("使用ComfyUI的时候") == CJK_LINE_CHARS
    assert limits.line_chars("これはペンです") == CJK_LINE_CHARS
    assert limits.line_chars("안녕하세요 여러분") == CJK_LINE_CHARS
    assert limits.line_chars("Bonjour à tous") == LATIN_LINE_CHARS
    assert SubtitleLimits(max_line_chars=30).line_chars("欢迎大家") == 30


def test_a_sentence_of_many_minutes_without_a_mark():
    words = spoken(" ".join(["word"] * 1500) + " end.", ms_per_char=70)
    data = transcript(words)
    for limits in (SubtitleLimits(), SubtitleLimits(max_line_chars=10, max_lines=3, max_cue_s=1.5)):
        cues = assert_readable(data, limits)
        assert len(cues) > 50


def test_short_cues_stay_up_a_second_when_the_silence_allows():
    data = transcript([("Yes.", 1000, 1200)], [("No.", 1500, 1700)], [("Maybe.", 5000, 5300)], duration_ms=5600)
    cues = assert_readable(data)
    assert [(c.start_ms, c.end_ms) for c in cues] == [(1000, 1500), (1500, 2500), (5000, 5600)]


def test_a_word_longer_than_a_line_or_a_cue_stands_alone_and_is_never_cut():
    url = "https://example.com/a/very/long/address/that/does/not/fit/on/one/line"
    data = transcript([("see", 0, 300), (url, 300, 9_000), ("now.", 9_000, 9_400)], duration_ms=10_000)
    cues = build_cues(data)
    assert [c.lines for c in cues] == [("see",), (url,), ("now.",)]
    assert cues[1].end_ms - cues[1].start_ms == 7_000  # shown at most max_cue_s


def test_speakers_split_cues_and_label_every_format():
    data = transcript(spoken("Did you hear that?", 0), spoken("I did.", 1500), spoken("Good.", 3000),
                      speakers=["S1", "S2", "S1"])
    cues = assert_readable(data)
    assert [(c.speaker, c.lines) for c in cues] == [("S1", ("Did you hear that?",)), ("S2", ("I did.",)), ("S1", ("Good.",))]
    srt = render(data, "srt")
    assert "\n[S1] Did you hear that?\n" in srt and "\n[S2] I did.\n" in srt
    vtt = render(data, "vtt")
    assert "\n<v S1>Did you hear that?\n" in vtt and "\n<v S2>I did.\n" in vtt
    assert render(data, "txt") == "[S1] Did you hear that?\n[S2] I did.\n[S1] Good.\n"


def test_a_speaker_change_inside_a_sentence_ends_the_cue():
    data = transcript(spoken("so what do you think about it"))
    segment = data.segments[0]
    data.segments[0] = dataclasses.replace(segment, words=tuple(
        dataclasses.replace(word, speaker="S1" if n < 3 else "S2") for n, word in enumerate(segment.words)))
    cues = assert_readable(data)
    assert [(c.speaker, c.lines) for c in cues] == [("S1", ("so what do",)), ("S2", ("you think about it",))]


def test_the_speaker_label_counts_against_the_first_line():
    words = spoken("one two three four five six seven eight nine ten eleven twelve thirteen")
    data = transcript(words, speakers=["Speaker 12"])
    cues = assert_readable(data, SubtitleLimits(max_line_chars=30))
    first = render(data, "srt", SubtitleLimits(max_line_chars=30)).splitlines()[2]
    assert first.startswith("[Speaker 12] ") and len(first) <= 30
    assert len(cues[0].lines) == 2


def test_vtt_escapes_markup():
    data = transcript([("a<b", 0, 500), ("&", 500, 900), ("c>d", 900, 1300)])
    assert "a&lt;b &amp; c&gt;d" in render(data, "vtt")


def test_no_speech_gives_empty_subtitles():
    empty = Transcript(text="", language="", duration_ms=4000)
    assert render(empty, "srt") == "" and render(empty, "vtt") == "WEBVTT\n\n" and render(empty, "txt") == ""


@pytest.mark.parametrize("kwargs, name", [
    ({"max_line_chars": 0}, "max_line_chars"),
    ({"max_line_chars": 4}, "max_line_chars"),
    ({"max_line_chars": 201}, "max_line_chars"),
    ({"max_line_chars": 40.5}, "max_line_chars"),
    ({"max_lines": 0}, "max_lines"),
    ({"max_lines": 6}, "max_lines"),
    ({"max_lines": True}, "max_lines"),
    ({"max_cue_s": 0.5}, "max_cue_s"),
    ({"max_cue_s": 61}, "max_cue_s"),
    ({"max_cue_s": math.nan}, "max_cue_s"),
    ({"max_cue_s": "7"}, "max_cue_s"),
    ({"min_cue_s": -1}, "min_cue_s"),
    ({"max_cue_s": 2, "min_cue_s": 3}, "min_cue_s"),
])
def test_bad_limits_are_refused_naming_the_limit(kwargs, name):
    with pytest.raises(SubtitleLimitsError, match=name) as err:
        SubtitleLimits(**kwargs)
    assert isinstance(err.value, ValueError)
