"""The retry pass: which speech the first ASR pass left without words is read again."""
from __future__ import annotations

from pipeline.recognition import uncovered
from pipeline.sentences import TimedWord
from pipeline.stages import SpeechSpan


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
