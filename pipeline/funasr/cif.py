"""Continuous integrate-and-fire (CIF) arithmetic for Paraformer batches, without a loop of
tensor ops per frame.

funasr's CIF walks a batch frame by frame with about a dozen tensor ops per frame, which on a GPU
is a kernel launch each (tens of thousands per batch). The fire decisions are only a scalar scan
over B x T floats, so here the scan runs once on the CPU (numba), in float32 exactly as torch
computes it: fires, token counts and timestamp peaks are bit-identical to funasr's. The acoustic
embeddings are then summed on the model's device in the same order as funasr's loop adds them,
with one op per position within a token rather than a dozen per frame.

Facts taken from funasr (``cif``/``cif_wo_hidden`` in models/bicif_paraformer/cif_predictor.py,
``ts_prediction_lfr6_standard`` in utils/timestamp_tools.py):

- the integral adds each frame's alpha; when it reaches ``threshold`` the frame fires and the
  integral drops by ``reset`` (1.0 in ``cif``, ``threshold`` in ``cif_wo_hidden``);
- a firing frame gives the token being built ``1 - integral_before`` of its hidden vector and
  starts the next token with the rest (``alpha - that``); other frames give ``alpha``;
- a token's time is the stretch between two peaks of the 3x upsampled second CIF head, shifted
  by 1.5 upsampled frames, 20 ms each.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

# Timestamp rule of funasr's LFR-6 Paraformers (ts_prediction_lfr6_standard).
TIMESTAMP_THRESHOLD = 1.0 - 1e-4  # the second head fires a little below 1
_UPSAMPLED_FRAME_S = 10.0 * 6 / 1000 / 3  # 60 ms LFR frames, upsampled 3x (same float as funasr's)
_TIME_SHIFT_FRAMES = -1.5
_EDGE_SILENCE_FRAMES = 5  # more than this before the first / after the last peak is silence
_MAX_TOKEN_FRAMES = 12  # a longer gap between peaks is the token, then silence
_SILENCE = "<sil>"

@functools.cache
def _kernel():
    """:func:`_scan` compiled by numba, once per process and cached on disk, as
    :mod:`pipeline.funasr.detect` compiles its detector."""
    # numba (the funasr extra, slow to import) only when the kernel is first compiled
    from numba import njit

    return njit(cache=True, nogil=True)(_scan)


def _scan(alphas, threshold, reset, out):
    """The integral after each frame, per row, dropping by ``reset`` where it reaches
    ``threshold``; float32 throughout. Plain Python in numba's subset: compiled by :func:`_kernel`."""
    rows, frames = alphas.shape
    for b in range(rows):
        acc = np.float32(0.0)
        for t in range(frames):
            acc = acc + alphas[b, t]
            out[b, t] = acc
            if acc >= threshold:
                acc = acc - reset


def integrate(alphas: np.ndarray, threshold: float, reset: float) -> np.ndarray:
    """The integral at each frame after adding its alpha (funasr's ``fires``/``peaks``), per row.

    ``alphas``: float32 ``(B, T)``. A frame fires when its value is ``>= threshold`` (compared in
    float32, as torch compares a float32 tensor with a Python float).
    """
    if alphas.dtype != np.float32 or alphas.ndim != 2:
        raise ValueError(f"CIF alphas must be a float32 (B, T) array, not {alphas.dtype} {alphas.shape}")
    alphas = np.ascontiguousarray(alphas)
    out = np.empty_like(alphas)
    _kernel()(alphas, np.float32(threshold), np.float32(reset), out)
    return out


@dataclass(frozen=True)
class TokenSums:
    """Which weighted frames make each token's acoustic embedding, in funasr's summation order.

    Contributions are listed position by position within a token: block ``j`` (``steps[j]``
    rows) holds the ``j``-th contribution of the ``steps[j]`` longest tokens, longest first, so
    each block extends a prefix of the tokens built by the blocks before it.
    """

    frame_rows: np.ndarray  # int64 (C,): row of the (B*T, D) hidden matrix
    weights: np.ndarray  # float32 (C,)
    steps: tuple[int, ...]  # block sizes, non-increasing; steps[0] = number of tokens
    token_rows: np.ndarray  # int64 (steps[0],): row of the (B*max_tokens, D) output per token


def plan_tokens(alphas: np.ndarray, threshold: float, max_tokens: int) -> tuple[np.ndarray, TokenSums]:
    """funasr's ``cif`` decisions for a batch: the fires, and how to sum each token's embedding.

    ``alphas``: float32 ``(B, T)`` as the predictor hands them to ``cif`` (tail included).
    Tokens past ``max_tokens`` in a row are dropped, as funasr's slice to the largest token
    count drops them. Returns ``(fires, sums)``; ``fires`` is funasr's ``cif_peak``.
    """
    fires = integrate(alphas, threshold, 1.0)
    rows, frames = alphas.shape
    one = np.float32(1.0)
    fired = fires >= np.float32(threshold)
    # The integral before each frame's alpha: 0, then the previous value less 1 where it fired.
    before = np.zeros_like(alphas)
    before[:, 1:] = np.where(fired[:, :-1], fires[:, :-1] - one, fires[:, :-1])
    taken = np.where(fired, one - before, alphas)  # what the frame gives the token it closes
    rest = alphas - taken  # what a firing frame gives the next token

    b_of, t_of = np.nonzero(fired)  # row-major: each row's fires in time order
    row_start = np.searchsorted(b_of, np.arange(rows))
    rank = np.arange(len(b_of)) - row_start[b_of]
    keep = rank < max_tokens
    b_of, t_of, rank = b_of[keep], t_of[keep], rank[keep]
    n_tokens = len(b_of)
    if n_tokens == 0:
        empty = np.zeros(0, dtype=np.int64)
        return fires, TokenSums(empty, np.zeros(0, dtype=np.float32), (), empty)

    # A token runs from the previous fire (its remainder) or frame 0, to its own fire.
    start = np.zeros(n_tokens, dtype=np.int64)
    later = rank > 0
    start[later] = t_of[np.flatnonzero(later) - 1]
    length = t_of - start + 1
    first_weight = np.where(later, rest[b_of, start], taken[b_of, start])

    order = np.argsort(-length, kind="stable")
    b_of, start, length, first_weight = b_of[order], start[order], length[order], first_weight[order]
    token_rows = b_of * max_tokens + rank[order]

    # Contributions (token i, position j < length[i]), ordered by j then i.
    token = np.repeat(np.arange(n_tokens), length)
    offsets = np.concatenate(([0], np.cumsum(length)[:-1]))
    position = np.arange(len(token)) - offsets[token]
    order = np.lexsort((token, position))
    token, position = token[order], position[order]
    frame = start[token] + position
    weights = np.where(position == 0, first_weight[token], taken[b_of[token], frame]).astype(np.float32)
    steps = np.bincount(position)
    return fires, TokenSums(
        frame_rows=b_of[token] * frames + frame,
        weights=weights,
        steps=tuple(int(s) for s in steps),
        token_rows=token_rows.astype(np.int64),
    )


def acoustic_embeds(hidden: "torch.Tensor", sums: TokenSums, max_tokens: int) -> "torch.Tensor":
    """``(B, max_tokens, D)`` embeddings on ``hidden``'s device: each token's weighted frames
    added one position at a time (one op per position), the order funasr's loop adds them in,
    so the sums are bit-identical; tokens a row does not have stay zero."""
    # torch only in the worker that runs this model (web and an offline worker never load it)
    import torch

    rows, frames, dim = hidden.shape
    device = hidden.device
    if not sums.steps:
        dtype = torch.promote_types(torch.float32, hidden.dtype)  # float32 weights times hidden
        return torch.zeros(rows, max_tokens, dim, dtype=dtype, device=device)
    index = torch.from_numpy(np.concatenate((sums.frame_rows, sums.token_rows))).to(device)
    weights = torch.from_numpy(sums.weights).to(device)
    n_contrib = len(sums.frame_rows)
    terms = hidden.reshape(rows * frames, dim).index_select(0, index[:n_contrib]) * weights[:, None]
    built = terms[: sums.steps[0]]
    offset = sums.steps[0]
    for size in sums.steps[1:]:
        built[:size] += terms[offset: offset + size]
        offset += size
    out = torch.zeros(rows * max_tokens, dim, dtype=terms.dtype, device=device)
    out.index_copy_(0, index[n_contrib:], built)
    return out.view(rows, max_tokens, dim)


def fire_frames(peaks: np.ndarray, threshold: float = TIMESTAMP_THRESHOLD) -> np.ndarray:
    """Indices of the frames whose integral reached ``threshold`` (one row of peaks)."""
    return np.flatnonzero(peaks >= np.float32(threshold))


def token_times_ms(fires: np.ndarray, num_frames: int, tokens: Sequence[str]) -> list[list[int]]:
    """funasr's LFR-6 timestamp rule: ``[start_ms, end_ms]`` per token from the second head's
    fire frames (``fires``, upsampled 3x) over ``num_frames`` frames.

    ``fires`` should hold one more frame than there are tokens (the caller rescales the alphas
    when it does not, as funasr does); with fewer the tail tokens get no time, and with none at
    all (where funasr raises) no token does.
    """
    if not len(tokens) or not len(fires):
        return []
    if tokens[-1] == "</s>":
        tokens = tokens[:-1]
    rate = _UPSAMPLED_FRAME_S
    places = [float(f) + _TIME_SHIFT_FRAMES for f in fires]
    spans: list[list] = []  # [label, start_s, end_s]
    if places[0] > _EDGE_SILENCE_FRAMES:
        spans.append([_SILENCE, 0.0, places[0] * rate])
    for label, here, following in zip(tokens, places, places[1:]):
        if following - here <= _MAX_TOKEN_FRAMES:
            spans.append([label, here * rate, following * rate])
        else:
            cut = here + _MAX_TOKEN_FRAMES
            spans.append([label, here * rate, cut * rate])
            spans.append([_SILENCE, cut * rate, following * rate])
    if not spans:  # a single peak, at the start: funasr raises here
        return []
    last = places[-1]
    if num_frames - last > _EDGE_SILENCE_FRAMES:
        end = (num_frames + last) * 0.5
        spans[-1][2] = end * rate
        spans.append([_SILENCE, end * rate, num_frames * rate])
    else:
        spans[-1][2] = num_frames * rate
    return [[int(start * 1000), int(end * 1000)] for label, start, end in spans if label != _SILENCE]
