"""Batch planning over span lengths (the batches a whole run gives: tests/pipeline/test_run.py)."""
from __future__ import annotations

from pipeline.batching import evenest


def test_a_streamed_batch_is_the_evenest_full_one():
    """While VAD runs, the batch cut from the waiting spans (longest first) is the one at least
    MIN_FILL full whose spans differ least in length; with none that full, the longest spans."""
    costs = [11, 11, 10, 6, 6, 6, 6, 5, 3]
    assert evenest(costs, 20) == (3, 6)  # 6+6+6: no padding; 10+6 pads, 11 alone is not full
    assert evenest([30, 12, 4], 20) == (0, 1)  # one span over the budget is a batch on its own
    assert evenest([9, 4], 20) == (0, 2)  # nothing 75% full: the longest spans
