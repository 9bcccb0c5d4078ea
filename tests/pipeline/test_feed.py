"""pipeline.feed: where VAD runs for the ASR side, and the offline engine's rule for it."""
from __future__ import annotations

import os
import threading

from pipeline.feed import SpanFeed
from pipeline.offline import _core_to_spare
from pipeline.stages import SpeechSpan

SPANS = [SpeechSpan(0, 1_000), SpeechSpan(2_000, 4_000), SpeechSpan(5_000, 5_500)]


class ThreadNotingVad:
    """A streaming VAD over fixed spans that notes which thread read the file."""

    def __init__(self):
        self.readers: list[int] = []

    def speech_spans(self, pcm, on_progress=None):
        self.readers.append(threading.get_ident())
        if on_progress is not None:
            on_progress(1.0)
        return list(SPANS)

    def iter_speech_spans(self, pcm, on_progress=None, stop=None):
        self.readers.append(threading.get_ident())
        yield from SPANS
        if on_progress is not None:
            on_progress(1.0)


def _taken(feed: SpanFeed) -> list[SpeechSpan]:
    taken = []
    while (span := feed.next()) is not None:
        taken.append(span)
    return taken


def test_a_streaming_vad_reads_beside_asr_or_first_as_the_engine_says():
    progress: list[float] = []
    beside = ThreadNotingVad()
    with SpanFeed(beside, pcm=None, on_progress=progress.append) as feed:
        assert not feed.whole
        assert _taken(feed) == SPANS
    assert beside.readers != [threading.get_ident()]  # its own thread

    first = ThreadNotingVad()
    with SpanFeed(first, pcm=None, on_progress=progress.append, beside=False) as feed:
        assert feed.whole and first.readers == [threading.get_ident()]  # read before the first span is taken
        assert _taken(feed) == SPANS and feed.finished
    assert progress[-1] == 1.0


def test_silero_goes_beside_whisper_only_where_a_core_is_left_for_it():
    cores = len(os.sched_getaffinity(0))
    assert _core_to_spare("cuda", 0) and _core_to_spare("cuda:1", cores)
    assert not _core_to_spare("cpu", cores)  # CTranslate2 takes every core
    assert _core_to_spare("cpu", 0) == (cores > 4)  # its default: a thread per core, up to 4
    if cores > 1:
        assert _core_to_spare("cpu", cores - 1)
