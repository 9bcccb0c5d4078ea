"""The CIF scans (pipeline/funasr/cif.py) bit for bit against funasr's ``cif`` / ``cif_wo_hidden``
and its timestamp rule."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.requires import require_funasr

require_funasr()


def _alphas_cases():
    """(B, T) float32 alphas: random batches with padding, and the edges of the fire rule."""
    rng = np.random.default_rng(0)
    cases = []
    for frames, scale in ((1, 1.0), (7, 0.6), (50, 0.3), (333, 0.6), (200, 1.0)):
        alphas = (rng.random((4, frames)) * scale).astype(np.float32)
        alphas[1, frames // 2:] = 0  # a padded row
        if frames > 2:
            alphas[1, frames // 2] = 0.45  # with a tail weight after its last frame
        alphas[2] = 0  # a row that never fires
        cases.append(alphas)
    exact = np.array([[0.25] * 8, [0.5, 0.5, 1.0, 0.0, 0.75, 0.25, 0.5, 0.5], [1.0] * 8], dtype=np.float32)
    cases.append(exact)  # the integral reaches 1.0 exactly, or every frame fires
    cases.append(np.zeros((3, 5), dtype=np.float32))  # nothing fires anywhere
    cases.append(np.full((2, 9), np.float32(1.0 - 1e-4)))  # exactly the timestamp threshold
    return cases


@pytest.mark.parametrize("module", ["bicif_paraformer", "paraformer"])
@pytest.mark.parametrize("case", range(len(_alphas_cases())))
def test_cif_matches_funasr(module, case):
    import importlib

    import torch

    from pipeline.funasr.cif import acoustic_embeds, plan_tokens

    funasr_cif = importlib.import_module(f"funasr.models.{module}.cif_predictor").cif
    alphas = _alphas_cases()[case]
    hidden = torch.randn(alphas.shape[0], alphas.shape[1], 6, generator=torch.Generator().manual_seed(case))
    ref_embeds, ref_fires = funasr_cif(hidden, torch.from_numpy(alphas), 1.0)

    max_tokens = ref_embeds.shape[1]  # funasr pads to the largest rounded alpha sum
    fires, sums = plan_tokens(alphas, 1.0, max_tokens)
    assert np.array_equal(fires, ref_fires.numpy())
    embeds = acoustic_embeds(hidden, sums, max_tokens)
    assert embeds.shape == ref_embeds.shape and torch.equal(embeds, ref_embeds)  # bit for bit


@pytest.mark.parametrize("case", range(len(_alphas_cases())))
def test_timestamp_scan_matches_funasr(case):
    import torch
    from funasr.models.bicif_paraformer.cif_predictor import cif_wo_hidden
    from funasr.utils.timestamp_tools import cif_wo_hidden as ts_cif_wo_hidden

    from pipeline.funasr.cif import TIMESTAMP_THRESHOLD, integrate

    alphas = _alphas_cases()[case]
    ours = integrate(alphas, TIMESTAMP_THRESHOLD, TIMESTAMP_THRESHOLD)
    for reference in (cif_wo_hidden, ts_cif_wo_hidden):
        assert np.array_equal(ours, reference(torch.from_numpy(alphas), TIMESTAMP_THRESHOLD).numpy())


def test_token_times_match_funasr_rule():
    """Leading and trailing silence, gaps longer than a token, adjacent peaks: the ms funasr gives."""
    import torch
    from funasr.utils.timestamp_tools import ts_prediction_lfr6_standard

    from pipeline.funasr.cif import TIMESTAMP_THRESHOLD, fire_frames, integrate, token_times_ms

    rng = np.random.default_rng(1)
    checked = 0
    for trial in range(40):
        frames = int(rng.integers(3, 400))
        alphas = (rng.random(frames) * rng.choice([0.3, 0.9])).astype(np.float32)
        for _ in range(int(rng.integers(0, 4))):  # silent stretches
            start = int(rng.integers(0, frames))
            alphas[start: start + int(rng.integers(1, 40))] = 0
        peaks = integrate(alphas[None, :], TIMESTAMP_THRESHOLD, TIMESTAMP_THRESHOLD)[0]
        fires = fire_frames(peaks)
        if len(fires) < 2:
            continue
        tokens = [f"t{i}" for i in range(len(fires) - 1)]
        _, expected = ts_prediction_lfr6_standard(
            torch.from_numpy(alphas.copy()), torch.from_numpy(peaks), list(tokens)
        )
        assert token_times_ms(fires, frames, tokens) == expected
        checked += 1
    assert checked > 20
