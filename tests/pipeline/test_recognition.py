"""What ASR reads of a span and where its words land; the retry pass: which speech the first ASR
pass left without words is read again."""
from __future__ import annotations

from pipeline.recognition import _placed, uncovered
from pipeline.sentences import TimedWord
from pipeline.stages import AsrResult, AsrWord, SpeechSpan


def test_parts_left_without_words_are_read_again():
    span = SpeechSpan(0, 20_000, parts=((0, 4_000), (4_500, 9_000), (10_000, 20_000)))
    english = [TimedWord(t, t + 400, "word", "en") for t in range(10_000, 20_000, 500)]
    assert uncovered([span], english) == [SpeechSpan(0, 9_000)]
    assert uncovered([span], english)[0].parts == ((0, 4_000), (4_500, 9_000))
    everywhere = [TimedWord(t, t + 400, "word", "en") for t in range(0, 20_000, 500)]
    assert uncovered([span], everywhere) == []
    assert uncovered([span], []) == []  # nothing at all came back: reading it again would not help


def test_a_word_stretched_over_a_part_does_not_make_it_read():
    """The aligner stretches a word over speech its window skipped: one word counts for at most
    twice the median word of a part."""
    span = SpeechSpan(0, 12_000, parts=((0, 3_000), (3_200, 9_000), (9_200, 12_000)))
    words = [TimedWord(t, t + 300, "word", "en") for t in range(0, 3_000, 300)]
    words += [TimedWord(2_700, 9_400, "stretched", "en")]
    words += [TimedWord(t, t + 300, "word", "en") for t in range(9_400, 12_000, 300)]
    assert uncovered([span], words) == [SpeechSpan(3_200, 9_000)]


def test_a_span_with_cuts_reads_its_speech_and_puts_words_back_on_the_file():
    """Long pauses cut out of what ASR reads: the audio is the span less its cuts, and a time in
    that audio comes back on the file's timeline past the cuts before it."""
    span = SpeechSpan(500, 12_500, parts=((800, 3_200), (6_800, 9_200), (11_000, 12_200)),
                      cuts=((3_400, 6_600), (9_400, 10_800)))
    assert span.reads() == [(500, 3_400), (6_600, 9_400), (10_800, 12_500)]
    assert span.read_ms == 12_000 - 3_200 - 1_400 == sum(e - s for s, e in span.reads())
    assert span.file_ms(0) == 500
    assert span.file_ms(2_900) == 6_600  # a start on the cut: after it
    assert span.file_ms(2_900, ending=True) == 3_400  # an end on the cut: before it
    assert span.file_ms(3_000) == 6_700
    assert span.file_ms(5_700) == 10_800 and span.file_ms(6_000) == 11_100
    result = AsrResult(text="a b c", language="en", words=(
        AsrWord(400, 900, "a"), AsrWord(2_700, 3_100, "b"), AsrWord(6_100, 6_500, "c")), punctuated=True)
    assert [(w.start_ms, w.end_ms) for w in _placed(span, result)] == [(900, 1_400), (3_200, 6_800), (11_200, 11_600)]


def test_a_re_read_keeps_the_cuts_inside_it():
    span = SpeechSpan(0, 40_000, parts=((0, 9_000), (14_000, 24_000), (30_000, 40_000)),
                      cuts=((9_200, 13_800), (24_200, 29_800)))
    words = [TimedWord(t, t + 400, "word", "en") for t in range(0, 9_000, 500)]
    again = uncovered([span], words)
    assert again == [SpeechSpan(14_000, 40_000)]
    assert again[0].parts == ((14_000, 24_000), (30_000, 40_000)) and again[0].cuts == ((24_200, 29_800),)
    assert again[0].read_ms == 26_000 - 5_600
