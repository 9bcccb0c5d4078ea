"""ASR over VAD's spans, batch by batch, with the words put on the file's timeline; then a retry
pass over speech the first pass left without words."""
from __future__ import annotations

import bisect
from typing import Callable, Iterator, Mapping, Sequence

from pipeline.audio import PcmFile
from pipeline.batching import plan_batches
from pipeline.checkpoint import BatchResult, Checkpoint, batch_key
from pipeline.feed import ListedVad, SpanFeed
from pipeline.sentences import TimedWord, make_monotonic
from pipeline.stages import AsrResult, Engine, SpeechSpan
from pipeline.types import TranscribeOptions

# Speech an ASR pass left without words is read again when it lasts at least this long.
MIN_RETRY_MS = 1000
# A speech part counts as read when words lie over at least this share of it.
MIN_COVERED_SHARE = 0.3
# What one word counts for towards that share, at most: twice the file's median word, the median
# taken at most this long (faster-whisper's own cut for a too-long word). The aligner stretches a
# word over speech the decoder skipped (seconds of it), which must not make that speech look read.
MAX_MEDIAN_WORD_MS = 700


def recognize(
    pcm: PcmFile, feed: SpanFeed, options: TranscribeOptions, engine: Engine, on_progress: Callable[[float], None],
    checkpoint: Checkpoint | None = None,
) -> list[TimedWord]:
    """ASR over the spans as VAD finds them, then again over speech a pass left without words, until
    a pass leaves none that a re-read could help (Whisper, prompted, may write only a window's first
    sentence). ``on_progress`` gets 0..1 through the speech, never going back. With ``checkpoint``, a
    batch it already holds is taken from it instead of being recognised, and each batch
    recognised is handed to it."""
    done_ms = reported = 0.0
    kept = _Kept(checkpoint, engine, options)

    def progress(ms: int, total_ms: float) -> None:
        nonlocal done_ms, reported
        done_ms += ms
        reported = max(reported, min(1.0, done_ms / max(total_ms, 1.0)))  # a second pass grows the total: never go back
        on_progress(reported)

    def first_pass_progress(ms: int) -> None:
        known_ms = sum(s.duration_ms for s in feed.spans)
        # While VAD runs, the speech still to come is guessed from how far into the file it is.
        progress(ms, known_ms if feed.finished else max(known_ms, known_ms / max(feed.progress, 0.01)))

    words = _recognize_spans(pcm, plan_batches(feed, engine), options, engine, first_pass_progress, kept, 1)
    spans = feed.spans
    total_ms = sum(s.duration_ms for s in spans)
    retry = uncovered(spans, words)
    pass_number = 1
    # Again over what the last pass read and still left without words: each pass reads fewer parts
    # than the one before (``uncovered`` never returns a whole span), so this ends.
    while retry:
        pass_number += 1
        total_ms += sum(s.duration_ms for s in retry)
        again = SpanFeed(ListedVad(retry), pcm, lambda f: None)
        words += _recognize_spans(pcm, plan_batches(again, engine), options, engine,
                                  lambda ms: progress(ms, total_ms), kept, pass_number)
        words.sort(key=lambda w: (w.start_ms, w.end_ms))
        retry = uncovered(retry, words)
    make_monotonic(words)
    return words


class _Kept:
    """The checkpoint as the ASR passes use it: the batches it held when ASR started, by key."""

    def __init__(self, checkpoint: Checkpoint | None, engine: Engine, options: TranscribeOptions):
        self.checkpoint, self.engine, self.options = checkpoint, engine, options
        self.done: Mapping[str, BatchResult] = checkpoint.finished() if checkpoint is not None else {}

    def key(self, pass_number: int, batch: Sequence[SpeechSpan]) -> str | None:
        if self.checkpoint is None:
            return None
        return batch_key(self.checkpoint.scope, self.engine.name, self.options, pass_number, batch)


def _recognize_spans(
    pcm: PcmFile, batches: Iterator[list[SpeechSpan]], options: TranscribeOptions, engine: Engine,
    progress: Callable[[int], None], kept: _Kept, pass_number: int,
) -> list[TimedWord]:
    """ASR over ``batches`` of spans; the words on the file's timeline, in the spans' time order.
    ``progress`` gets the milliseconds of speech each batch held, and 0 as the first one starts.
    A batch ``kept`` holds is not recognised again."""
    per_span: list[tuple[int, list[TimedWord]]] = []
    for number, batch in enumerate(batches):
        if number == 0:
            progress(0)
        key = kept.key(pass_number, batch)
        result = kept.done.get(key) if key is not None else None
        if result is None:
            result = _recognize_batch(pcm, batch, options, engine)
            if key is not None:
                kept.checkpoint.save(key, result)
        per_span += result.per_span()
        progress(sum(span.duration_ms for span in batch))
    per_span.sort(key=lambda item: item[0])
    return [w for _, span_words in per_span for w in span_words]


def _recognize_batch(pcm: PcmFile, batch: Sequence[SpeechSpan], options: TranscribeOptions,
                     engine: Engine) -> BatchResult:
    audio = [_read(pcm, span) for span in batch]
    task = {"task": options.task} if options.task != "transcribe" else {}  # only a translating model takes it
    results = engine.asr.recognize(audio, language=options.language, hotwords=options.hotwords, **task)
    del audio
    return BatchResult.of([(span.start_ms, _placed(span, result)) for span, result in zip(batch, results)])


def _read(pcm: PcmFile, span: SpeechSpan):
    """The audio ASR reads for ``span``: the span less its cuts, joined end to end."""
    stretches = span.reads()
    if len(stretches) == 1:
        return pcm.read(*stretches[0])
    # numpy is loaded by the engine's models long before a span with cuts is read
    import numpy as np

    return np.concatenate([pcm.read(start, end) for start, end in stretches])


def _placed(span: SpeechSpan, result: AsrResult) -> list[TimedWord]:
    """The words of ``span`` on the file's timeline, inside its speech: ASR may read a span's audio
    from further out than its parts (Whisper reads a clip cut close to its first word worse), but
    a word's times stay where VAD found speech. Times in audio with cuts are taken past them."""
    lo, hi = (span.parts[0][0], span.parts[-1][1]) if span.parts else (span.start_ms, span.end_ms)
    placed = []
    for w in result.words:
        start = min(hi, max(lo, span.file_ms(w.start_ms)))
        end = min(hi, max(start, span.file_ms(w.end_ms, ending=True)))
        placed.append(TimedWord(start, end, w.text, result.language))
    return placed


def uncovered(spans: Sequence[SpeechSpan], words: Sequence[TimedWord]) -> list[SpeechSpan]:
    """Runs of a span's speech parts that got (almost) no words, long enough to be worth reading again.

    Whisper reads a merged span as one window in one language; speech in the other language
    inside it may be skipped. Read on its own, it is recognised. A word counts for at most twice
    the median word (``MAX_MEDIAN_WORD_MS``) of a part: the aligner stretches a word over what was
    skipped.
    """
    starts = [w.start_ms for w in words]
    lengths = sorted(w.end_ms - w.start_ms for w in words if w.end_ms > w.start_ms)
    cover_ms = 2 * min(MAX_MEDIAN_WORD_MS, lengths[len(lengths) // 2]) if lengths else 0
    retry: list[SpeechSpan] = []
    for span in spans:
        run: list[tuple[int, int]] = []
        for part in (*span.parts, None):
            if part is not None:
                lo = bisect.bisect_left(starts, part[0] - 5_000)
                overlap_ms = sum(
                    min(cover_ms, max(0, min(w.end_ms, part[1]) - max(w.start_ms, part[0])))
                    for w in words[lo:bisect.bisect_left(starts, part[1])]
                )
                covered = overlap_ms >= MIN_COVERED_SHARE * (part[1] - part[0])
                if not covered:
                    run.append(part)
                    continue
            if run and run[-1][1] - run[0][0] >= MIN_RETRY_MS and len(run) < len(span.parts):
                retry.append(span.within(run[0][0], run[-1][1]))
            run = []
    return retry
