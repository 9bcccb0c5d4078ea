"""ASR batches cut from VAD's spans: similar lengths together (they pad least), within the engine's
budget of seconds, the same batches whatever VAD's speed."""
from __future__ import annotations

from typing import Iterator, Sequence

from pipeline.feed import SpanFeed
from pipeline.stages import Engine, SpeechSpan

# While VAD is still reading the file, an ASR batch is formed once this many batches' worth of
# spans is waiting, so that sorting by length still has spans to choose from.
LOOKAHEAD_BATCHES = 2

# While VAD runs, a batch is cut only where it is at least this full.
MIN_FILL = 0.75


def plan_batches(feed: SpanFeed, engine: Engine) -> Iterator[list[SpeechSpan]]:
    """ASR batches of at most ``engine.batch_seconds`` of audio (each span counted as at least
    ``engine.asr_window_ms``), of spans of similar lengths (they pad least). Spans from a VAD
    that returns them all at once go longest first. From a streaming VAD, once
    ``LOOKAHEAD_BATCHES`` batches' worth of spans is waiting (one batch's worth where every span
    costs a whole window), the batch among them whose spans differ least in length is cut
    (:func:`evenest`); what is left goes longest first once VAD has finished. Which spans share a
    batch depends on the spans alone, not on how fast VAD ran, so a file gives the same batches,
    and the same transcript, every time."""
    budget_ms = max(1, int(engine.batch_seconds * 1000))
    # Where every span costs at least a whole window (Whisper), spans shorter than it pad to the
    # same cost whatever their length: choosing among more of them saves nothing, so ASR starts
    # once one batch's worth is waiting, while VAD reads the rest.
    lookahead = 1 if engine.asr_window_ms else LOOKAHEAD_BATCHES

    def cost_ms(span: SpeechSpan) -> int:
        return max(span.read_ms, engine.asr_window_ms)

    pending: list[SpeechSpan] = []
    waiting_ms = 0
    while True:
        while not feed.finished and (feed.whole or waiting_ms < lookahead * budget_ms):
            span = feed.next()
            if span is not None:
                pending.append(span)
                waiting_ms += cost_ms(span)
        if not pending:
            return
        pending.sort(key=lambda s: s.read_ms, reverse=True)
        costs = [cost_ms(s) for s in pending]
        first, end = (0, _fill(costs, 0, budget_ms)) if feed.finished else evenest(costs, budget_ms)
        batch, pending = pending[first:end], pending[:first] + pending[end:]
        waiting_ms -= sum(costs[first:end])
        yield batch


def _fill(costs: Sequence[int], first: int, budget_ms: int) -> int:
    """End of the batch that starts at ``first`` and takes spans in order while they fit."""
    end, used = first + 1, costs[first]
    while end < len(costs) and used + costs[end] <= budget_ms:
        used += costs[end]
        end += 1
    return end


def evenest(costs: Sequence[int], budget_ms: int) -> tuple[int, int]:
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
