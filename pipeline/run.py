"""One transcription, stage by stage: decode -> VAD -> ASR -> (speakers) -> punctuation -> ITN -> sentences;
ASR starts on the first spans of a VAD that hands them out as it goes (FSMN-VAD), beside it.

The engine's models do the recognising; everything between them is here, the same for every
profile: the PCM file on disk, batching segments by seconds of audio, putting word times on the
file's timeline, cutting sentences, and progress. Memory holds one ASR batch of audio plus the
words found so far, so it does not grow with the file beyond those small records.
"""
from __future__ import annotations

import bisect
import difflib
import queue
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

from pipeline.audio import PcmFile, decode_to_pcm, find_ffmpeg, probe
from pipeline.diarize import diarize
from pipeline.stages import Engine, SpeechSpan, StreamingVad
from pipeline.text import PUNCTUATION, SENTENCE_END, join_words
from pipeline.types import Progress, Segment, Speaker, TranscribeOptions, Transcript, Word

# Share of the progress bar each stage owns (ASR dominates the time).
_STAGE_SPAN = {"decode": (0.0, 0.08), "vad": (0.08, 0.12), "asr": (0.12, 0.96), "punc": (0.96, 0.98), "itn": (0.98, 1.0)}
# With speaker labels: embedding the speech takes a few seconds per minute of it on a CPU.
_DIARIZED_STAGE_SPAN = {**_STAGE_SPAN, "asr": (0.12, 0.88), "diarize": (0.88, 0.96)}

# While VAD is still reading the file, an ASR batch is formed once this many batches' worth of
# spans is waiting, so that sorting by length still has spans to choose from.
LOOKAHEAD_BATCHES = 2

# A pause this long between two words ends a sentence even without a full stop.
SENTENCE_GAP_MS = 1500
# Sentences longer than this are cut at their next comma-like mark, else at the next word.
MAX_SENTENCE_MS = 30_000

# Speech the first ASR pass left without words is read again when it lasts at least this long.
MIN_RETRY_MS = 1000
# A speech part counts as read when words lie over at least this share of it.
MIN_COVERED_SHARE = 0.3

# Decoding less than this share of the declared duration (but enough to go on) gives a warning.
_PARTIAL_DECODE_WARN = 0.98


@dataclass
class _TimedWord:
    """A word on the file's timeline while sentences are being built."""

    start_ms: int
    end_ms: int
    text: str
    language: str
    speaker: str | None = None


class _Reporter:
    """Progress through the job, never going back: once ASR runs beside VAD, VAD's own steps
    (which lie below ASR's share of the bar) are not reported."""

    def __init__(self, callback: Callable[[Progress], None] | None, spans: dict = _STAGE_SPAN):
        self._callback = callback
        self._spans = spans
        self._last = -1.0

    def __call__(self, stage: str, within: float) -> None:
        if self._callback is None:
            return
        lo, hi = self._spans[stage]
        fraction = round(lo + (hi - lo) * min(1.0, max(0.0, within)), 4)
        if fraction < self._last:
            return
        self._last = fraction
        self._callback(Progress(stage=stage, fraction=fraction))


def transcribe(
    path: str | Path,
    options: TranscribeOptions,
    engine: Engine,
    *,
    work_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
    max_duration_ms: int | None = None,
    ffmpeg: str | None = None,
) -> Transcript:
    """Transcribe one media file. Raises MediaError subclasses for input a person must fix.

    ``work_dir`` receives the decoded PCM (32 kB per second of audio) for the duration of the
    call. ``on_progress`` is called from this thread, often (per ASR batch); an exception it
    raises (e.g. the job was cancelled) stops the transcription and propagates.
    """
    report = _Reporter(on_progress, _DIARIZED_STAGE_SPAN if options.diarize else _STAGE_SPAN)
    # Loaded (once per engine) before any work, so that a missing model fails the job at once.
    speaker_model = engine.speaker_model() if options.diarize else None
    ffmpeg = find_ffmpeg(ffmpeg)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    pcm_path = work_dir / f"decoded-{uuid.uuid4().hex}.s16le"
    warnings: list[str] = []
    try:
        report("decode", 0.0)
        info = probe(path, ffmpeg)
        duration_ms = decode_to_pcm(
            path, pcm_path, ffmpeg, max_duration_ms, info=info, on_progress=lambda f: report("decode", f)
        )
        if info.duration_ms and duration_ms < _PARTIAL_DECODE_WARN * info.duration_ms - 1000:
            warnings.append(
                f"Only {duration_ms / 1000:.1f} s of the {info.duration_ms / 1000:.1f} s the file declares "
                "could be decoded; the file may be cut short."
            )
        pcm = PcmFile(pcm_path)
        if options.hotwords and not engine.supports_hotwords:
            warnings.append(f"The {engine.name!r} model cannot use hotwords; they were ignored.")
        report("vad", 0.0)
        with _SpanFeed(engine.vad, pcm, lambda f: report("vad", f)) as feed:
            words = _recognize(pcm, feed, options, engine, report)
        if speaker_model is not None:
            report("diarize", 0.0)
            labels = diarize(pcm, feed.spans, [(w.start_ms, w.end_ms) for w in words], speaker_model, options,
                             lambda f: report("diarize", f))
            for w, speaker in zip(words, labels):
                w.speaker = speaker
    finally:
        pcm_path.unlink(missing_ok=True)

    report("punc", 0.0)
    words = _punctuate(words, engine)
    report("punc", 1.0)
    sentences = _sentences(words)
    report("itn", 0.0)
    if options.itn and engine.itn is None:
        warnings.append(f"The {engine.name!r} profile has no inverse text normalisation; ITN was skipped.")
    texts = [join_words(w.text for w in sentence) for _, sentence in sentences]
    written = texts
    if options.itn and engine.itn is not None and sentences:
        written = engine.itn.normalize_many([(text, language) for text, (language, _) in zip(texts, sentences)])
    segments = [_segment(sentence, text, new) for (_, sentence), text, new in zip(sentences, texts, written)]
    report("itn", 1.0)

    return Transcript(
        text=join_words(s.text for s in segments),
        language=_dominant_language(words, options.language),
        duration_ms=duration_ms,
        segments=segments,
        warnings=warnings,
        speakers=[Speaker(sid) for sid in dict.fromkeys(seg.speaker for seg in segments)] if options.diarize else None,
    )


class _SpanFeed:
    """VAD's spans as they come. A :class:`~pipeline.stages.StreamingVad` runs in a thread of
    its own, so ASR starts on the first spans while VAD reads the rest of the file; any other VAD
    runs to the end first (``whole``). Progress and errors reach the job's thread through :meth:`next`;
    leaving the ``with`` block stops the VAD and waits for it (the PCM file is removed next)."""

    def __init__(self, vad, pcm: PcmFile, on_progress: Callable[[float], None]):
        self.spans: list[SpeechSpan] = []  # every span taken so far, in time order
        self.finished = False
        self.progress = 0.0  # VAD's position in the file, 0..1
        self._on_progress = on_progress
        self._queue: queue.Queue = queue.Queue()  # unbounded: the producer never blocks on it
        self._stop = threading.Event()
        self._producer: Future | None = None
        self.whole = not isinstance(vad, StreamingVad)  # every span known before the first is taken
        if not self.whole:
            self._producer = _vad_threads().submit(self._produce, vad, pcm)
        else:
            for span in vad.speech_spans(pcm, on_progress=self._progressed):
                self._queue.put(("span", span))
            self._queue.put(("end", None))

    def _produce(self, vad: StreamingVad, pcm: PcmFile) -> None:
        try:
            for span in vad.iter_speech_spans(pcm, lambda f: self._queue.put(("progress", f)), self._stop):
                self._queue.put(("span", span))
            self._queue.put(("end", None))
        except BaseException as exc:  # handed to the job's thread, raised there
            self._queue.put(("error", exc))

    def _progressed(self, fraction: float) -> None:
        self.progress = fraction
        self._on_progress(fraction)

    def next(self) -> SpeechSpan | None:
        """The next span, waiting for VAD to find it; None once VAD has finished."""
        while not self.finished:
            kind, value = self._queue.get()
            if kind == "span":
                self.spans.append(value)
                return value
            if kind == "progress":
                self._progressed(value)
            elif kind == "end":
                self.finished = True
                if self.progress < 1.0:
                    self._progressed(1.0)
            else:
                raise value
        return None

    def __enter__(self) -> "_SpanFeed":
        return self

    def __exit__(self, *exc) -> None:
        if self._producer is not None:
            self._stop.set()
            wait([self._producer])


_VAD_THREADS: ThreadPoolExecutor | None = None
_VAD_THREADS_LOCK = threading.Lock()


def _vad_threads() -> ThreadPoolExecutor:
    """The threads streaming VADs run in, one per job at a time, kept for the next jobs: a fresh
    thread per job left about half a MiB behind each time (tests/pipeline/funasr/test_funasr_memory.py),
    a kept one leaves nothing."""
    global _VAD_THREADS
    with _VAD_THREADS_LOCK:
        if _VAD_THREADS is None:
            _VAD_THREADS = ThreadPoolExecutor(max_workers=256, thread_name_prefix="tingxie-vad")
        return _VAD_THREADS


class _Listed:
    """Spans already known, as a VAD that returns them."""

    def __init__(self, spans: Sequence[SpeechSpan]):
        self._spans = list(spans)

    def speech_spans(self, pcm: PcmFile, on_progress: Callable[[float], None] | None = None) -> list[SpeechSpan]:
        return self._spans


def _recognize(
    pcm: PcmFile, feed: _SpanFeed, options: TranscribeOptions, engine: Engine, report: _Reporter
) -> list[_TimedWord]:
    """ASR over the spans as VAD finds them, then once more over speech the first pass left without words."""
    done_ms = reported = 0.0

    def progress(ms: int, total_ms: float) -> None:
        nonlocal done_ms, reported
        done_ms += ms
        reported = max(reported, min(1.0, done_ms / max(total_ms, 1.0)))  # a second pass grows the total: never go back
        report("asr", reported)

    def first_pass_progress(ms: int) -> None:
        known_ms = sum(s.duration_ms for s in feed.spans)
        # While VAD runs, the speech still to come is guessed from how far into the file it is.
        progress(ms, known_ms if feed.finished else max(known_ms, known_ms / max(feed.progress, 0.01)))

    words = _recognize_spans(pcm, _batches(feed, engine), options, engine, first_pass_progress)
    spans = feed.spans
    total_ms = sum(s.duration_ms for s in spans)
    retry = _uncovered(spans, words)
    if retry:
        total_ms += sum(s.duration_ms for s in retry)
        again = _SpanFeed(_Listed(retry), pcm, lambda f: None)
        words += _recognize_spans(pcm, _batches(again, engine), options, engine, lambda ms: progress(ms, total_ms))
        words.sort(key=lambda w: (w.start_ms, w.end_ms))
    _make_monotonic(words)
    return words


def _batches(feed: _SpanFeed, engine: Engine) -> Iterator[list[SpeechSpan]]:
    """ASR batches of at most ``engine.batch_seconds`` of audio (each span counted as at least
    ``engine.asr_window_ms``), of spans of similar lengths (they pad least). Spans from a VAD
    that returns them all at once go longest first. From a streaming VAD, once
    ``LOOKAHEAD_BATCHES`` batches' worth of spans is waiting, the batch among them whose spans
    differ least in length is cut (:func:`_evenest`); what is left goes longest first once VAD has
    finished. Which spans share a batch depends on the spans alone, not on how fast VAD ran, so
    a file gives the same batches, and the same transcript, every time."""
    budget_ms = max(1, int(engine.batch_seconds * 1000))

    def cost_ms(span: SpeechSpan) -> int:
        return max(span.duration_ms, engine.asr_window_ms)

    pending: list[SpeechSpan] = []
    waiting_ms = 0
    while True:
        while not feed.finished and (feed.whole or waiting_ms < LOOKAHEAD_BATCHES * budget_ms):
            span = feed.next()
            if span is not None:
                pending.append(span)
                waiting_ms += cost_ms(span)
        if not pending:
            return
        pending.sort(key=lambda s: s.duration_ms, reverse=True)
        costs = [cost_ms(s) for s in pending]
        first, end = (0, _fill(costs, 0, budget_ms)) if feed.finished else _evenest(costs, budget_ms)
        batch, pending = pending[first:end], pending[:first] + pending[end:]
        waiting_ms -= sum(costs[first:end])
        yield batch


# While VAD runs, a batch is cut only where it is at least this full.
MIN_FILL = 0.75


def _fill(costs: Sequence[int], first: int, budget_ms: int) -> int:
    """End of the batch that starts at ``first`` and takes spans in order while they fit."""
    end, used = first + 1, costs[first]
    while end < len(costs) and used + costs[end] <= budget_ms:
        used += costs[end]
        end += 1
    return end


def _evenest(costs: Sequence[int], budget_ms: int) -> tuple[int, int]:
    """Among batches of consecutive spans (``costs`` longest first) at least ``MIN_FILL`` full, the
    one whose spans differ least in length (the least padding), the longer on a tie; the batch of
    the longest spans when none is that full."""
    best, best_waste = (0, _fill(costs, 0, budget_ms)), None
    for first in range(len(costs)):
        end = _fill(costs, first, budget_ms)
        used = sum(costs[first:end])
        if used < MIN_FILL * budget_ms:
            continue
        waste = 1 - used / ((end - first) * costs[first])
        if best_waste is None or waste < best_waste:
            best, best_waste = (first, end), waste
    return best


def _recognize_spans(
    pcm: PcmFile, batches: Iterator[list[SpeechSpan]], options: TranscribeOptions, engine: Engine,
    progress: Callable[[int], None],
) -> list[_TimedWord]:
    """ASR over ``batches`` of spans; the words on the file's timeline, in the spans' time order.
    ``progress`` gets the milliseconds of speech each batch held, and 0 as the first one starts."""
    per_span: list[tuple[int, list[_TimedWord]]] = []
    for number, batch in enumerate(batches):
        if number == 0:
            progress(0)
        audio = [pcm.read(span.start_ms, span.end_ms) for span in batch]
        results = engine.asr.recognize(audio, language=options.language, hotwords=options.hotwords)
        del audio
        for span, result in zip(batch, results):
            per_span.append((span.start_ms, [
                _TimedWord(
                    start_ms=min(span.end_ms, span.start_ms + w.start_ms),
                    end_ms=min(span.end_ms, span.start_ms + w.end_ms),
                    text=w.text,
                    language=result.language,
                )
                for w in result.words
            ]))
        progress(sum(span.duration_ms for span in batch))
    per_span.sort(key=lambda item: item[0])
    return [w for _, span_words in per_span for w in span_words]


def _uncovered(spans: Sequence[SpeechSpan], words: Sequence[_TimedWord]) -> list[SpeechSpan]:
    """Runs of a span's speech parts that got (almost) no words, long enough to be worth reading again.

    Whisper reads a merged span as one window in one language; speech in the other language
    inside it may be skipped. Read on its own, it is recognised.
    """
    starts = [w.start_ms for w in words]
    retry: list[SpeechSpan] = []
    for span in spans:
        run: list[tuple[int, int]] = []
        for part in (*span.parts, None):
            if part is not None:
                lo = bisect.bisect_left(starts, part[0] - 5_000)
                overlap_ms = sum(
                    max(0, min(w.end_ms, part[1]) - max(w.start_ms, part[0]))
                    for w in words[lo:bisect.bisect_left(starts, part[1])]
                )
                covered = overlap_ms >= MIN_COVERED_SHARE * (part[1] - part[0])
                if not covered:
                    run.append(part)
                    continue
            if run and run[-1][1] - run[0][0] >= MIN_RETRY_MS and len(run) < len(span.parts):
                retry.append(SpeechSpan(run[0][0], run[-1][1], tuple(run)))
            run = []
    return retry


def _make_monotonic(words: list[_TimedWord]) -> None:
    """Aligners sometimes let a word start before the previous one ends; clamp, in place."""
    previous_end = 0
    for w in words:
        w.start_ms = max(w.start_ms, previous_end)
        w.end_ms = max(w.end_ms, w.start_ms)
        previous_end = w.end_ms


def _punctuate(words: list[_TimedWord], engine: Engine) -> list[_TimedWord]:
    """Run the profile's punctuation model over the whole text, when its ASR does not punctuate."""
    if engine.punc is None or not words:
        return words
    language = _dominant_language(words, "auto")
    marks = engine.punc.punctuate([w.text for w in words], language=language)
    for w, mark in zip(words, marks):
        if mark and not w.text.endswith(mark):
            w.text += mark
    return words


def _sentences(words: list[_TimedWord]) -> list[tuple[str, list[_TimedWord]]]:
    """Cut the word stream into sentences: at sentence-final marks, long pauses, language and
    speaker changes, and when a sentence runs past MAX_SENTENCE_MS (at a comma if one comes)."""
    sentences: list[tuple[str, list[_TimedWord]]] = []
    current: list[_TimedWord] = []
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


def _segment(words: list[_TimedWord], text: str, normalised: str) -> Segment:
    """A sentence record of ``words`` (whose join is ``text``) written as ``normalised`` (ITN's
    output, or ``text`` itself); words an ITN rewrite touched are re-aligned."""
    speaker = words[0].speaker  # one per sentence: _sentences cuts where it changes
    items = [Word(w.start_ms, w.end_ms, w.text, speaker) for w in words]
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
    "三" -> "23") become a single word spanning their times and carrying the rewritten text.
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
        text = after[start_in_after(bounds[n][0]):end_in_after(bounds[m][1])].strip()
        if text:
            result.append(Word(words[n].start_ms, words[m].end_ms, text))
        n = m + 1
    return result


def _dominant_language(words: Sequence[_TimedWord], requested: str) -> str:
    """The language with the most speech time; the requested one when nothing was recognised."""
    totals: dict[str, int] = {}
    for w in words:
        totals[w.language] = totals.get(w.language, 0) + max(1, w.end_ms - w.start_ms)
    if totals:
        return max(totals, key=totals.__getitem__)
    return requested if requested != "auto" else ""
