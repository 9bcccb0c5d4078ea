"""FSMN-VAD's end-point detection (pipeline/funasr/detect.py) against funasr's own state machine,
over scripted frames; tests/pipeline/funasr/test_vad.py checks it on real speech through FsmnVad."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.requires import require_funasr

require_funasr()

pytestmark = pytest.mark.funasr


def _funasr_state_machine(options: dict, silence_scores: np.ndarray, decibel: np.ndarray, cuts: list[int]):
    """funasr's own FsmnVADStreaming.forward over scripted frames: the network returns
    ``silence_scores`` (frames, len(sil_pdf_ids)) in its silence outputs and the frames' energies
    are ``decibel``, chunk by chunk at ``cuts``; everything after that is funasr's code."""
    import torch
    from funasr.models.fsmn_vad_streaming.model import FsmnVADStreaming

    encoder_conf = {"input_dim": 4, "input_affine_dim": 4, "fsmn_layers": 1, "linear_dim": 4, "proj_dim": 4,
                    "lorder": 2, "rorder": 0, "lstride": 1, "rstride": 0, "output_affine_dim": 4, "output_dim": 4}
    model = FsmnVADStreaming(encoder="FSMN", encoder_conf=encoder_conf, **options)
    outputs = 1 + max(options["sil_pdf_ids"])
    position = {"frame": 0}

    class ScriptedNetwork(torch.nn.Module):
        def forward(self, feats, cache):
            first, frames = position["frame"], feats.shape[1]
            scores = torch.full((1, frames, outputs), 0.25)
            for column, pdf in enumerate(options["sil_pdf_ids"]):
                scores[0, :, pdf] = torch.from_numpy(silence_scores[first:first + frames, column])
            return scores

    def scripted_decibel(cache, frame_count):
        # funasr's bookkeeping of the waveform it keeps (zeros here), with the scripted energies.
        stats, shift = cache["stats"], 160
        new = torch.zeros(frame_count * shift + (240 if stats.data_buf_all is None else 0))
        stats.data_buf_all = new if stats.data_buf_all is None else torch.cat((stats.data_buf_all, new))
        stats.data_buf = stats.data_buf_all[max(stats.data_buf_start_frame - stats.last_drop_frames, 0) * shift:]
        first = position["frame"]
        stats.decibel.extend(decibel[first:first + frame_count].tolist())

    model.encoder = ScriptedNetwork()
    model.ComputeDecibel = scripted_decibel
    cache: dict = {}
    model.init_cache(cache)
    segments = []
    for first, last in zip([0, *cuts], [*cuts, len(decibel)]):
        position["frame"] = first
        feats = torch.zeros(1, last - first, 4)
        final = last == len(decibel)
        for batch in model.forward(feats=feats, waveform=None, cache=cache, is_final=final, is_streaming_input=False):
            segments += [(int(s), int(e)) for s, e in batch]
    return segments


_STATE_MACHINE_OPTIONS = {
    "funasr": {},
    "short segments, snr": {"max_single_segment_time": 3000, "snr_thres": 3.0, "max_end_silence_time": 500},
    "no extend, two silence outputs": {"do_extend": 0, "sil_pdf_ids": [0, 2], "silence_pdf_num": 2,
                                       "speech_2_noise_ratio": 0.8, "max_single_segment_time": 4000},
    "single utterance": {"detect_mode": 0, "max_start_silence_time": 1500, "max_single_segment_time": 2500},
    "small window": {"window_size_ms": 100, "sil_to_speech_time_thres": 50, "speech_to_sil_time_thres": 80,
                     "lookback_time_start_point": 300, "lookahead_time_end_point": 40, "max_end_silence_time": 300},
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("options", list(_STATE_MACHINE_OPTIONS))
def test_detector_matches_funasrs_state_machine(options, seed):
    """Random runs of speech-like and silence-like frames (scores and energies near every
    threshold), random chunks, several option sets: the same spans as funasr's state machine."""
    from funasr.models.fsmn_vad_streaming.model import VADXOptions

    from pipeline.funasr.detect import DetectOptions, FsmnDetector, silence_probability

    conf = {"decibel_thres": -30.0, "sil_pdf_ids": [0], "silence_pdf_num": 1, **_STATE_MACHINE_OPTIONS[options]}
    rng = np.random.default_rng(seed)
    frames = 4_000
    # Up to 3 s of silence, then alternating runs: speech of 1 to 600 frames, silence of 1 to
    # 150 (either may be short enough to flicker inside the window, or long enough to end a span
    # or outlast a segment).
    runs = np.column_stack([rng.integers(1, 600, 100), rng.integers(1, 150, 100)]).ravel()
    speechy = np.repeat(np.tile([True, False], 100), runs)
    speechy = np.concatenate([np.zeros(rng.integers(0, 300), dtype=bool), speechy])[:frames]
    columns = len(conf["sil_pdf_ids"])
    silence_scores = np.where(speechy, rng.uniform(0.0, 0.25, frames), rng.uniform(0.1, 1.0, frames))
    silence_scores = np.clip(silence_scores, 1e-4, 1 - 1e-4)[:, None].repeat(columns, 1) / columns
    silence_scores = silence_scores.astype(np.float32)
    decibel = np.where(speechy, rng.normal(0, 12, frames), rng.normal(-30, 10, frames)).astype(np.float32)
    cuts = sorted(int(c) for c in rng.choice(np.arange(1, frames), size=6, replace=False))

    expected = _funasr_state_machine(conf, silence_scores, decibel, cuts)
    detector = FsmnDetector(DetectOptions.from_vad_options(VADXOptions(**conf)))
    silence = silence_probability(silence_scores)
    spans = []
    for first, last in zip([0, *cuts], [*cuts, frames]):
        spans += detector.push(silence[first:last], decibel[first:last], final=last == frames)
    assert spans == expected
    assert expected or options == "single utterance"
