"""tingxie's Paraformer batch path (pipeline/funasr/asr.py) against funasr's own code: the same
texts and the same millisecond timestamps as the model's ``inference`` on real speech (the CIF
scans themselves: test_cif.py)."""
from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from contract import Hotword
from tests.support.funasr_models import ASR_ID, build_timestamp_paraformer

HOTWORDS = (Hotword("达摩院"), Hotword("语音识别"), Hotword("Comfy UI"))


@pytest.fixture(scope="module")
def spans(speech_dir) -> list[np.ndarray]:
    """asr_example.wav cut into spans of different lengths (so the batch is padded), a 0.15 s
    span, and a second of silence."""
    with wave.open(str(speech_dir / "asr_example.wav"), "rb") as f:
        clip = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float32) / 32768
    cut = [(0.0, 5.55), (0.4, 2.9), (1.0, 5.0), (2.2, 4.1), (3.0, 5.55), (1.0, 1.15)]
    out = [clip[int(a * 16_000): int(b * 16_000)] for a, b in cut]
    out.append(np.zeros(16_000, dtype=np.float32))
    return out


@pytest.fixture(scope="module")
def seaco(funasr_model_dir):
    from pipeline.funasr.asr import ParaformerAsr

    return ParaformerAsr(funasr_model_dir / ASR_ID)


@pytest.fixture(scope="module")
def bicif(tmp_path_factory):
    from pipeline.funasr.asr import ParaformerAsr

    return ParaformerAsr(build_timestamp_paraformer(tmp_path_factory.mktemp("bicif") / "model"))


@pytest.fixture
def rescaled(monkeypatch) -> list[int]:
    """Rows whose timestamp alphas were rescaled (funasr's path when peaks and tokens disagree)."""
    import pipeline.funasr.asr as funasr_asr

    seen: list[int] = []
    original = funasr_asr._rescaled

    def spy(us_alphas, rows):
        seen.extend(i for i, _, _ in rows)
        return original(us_alphas, rows)

    monkeypatch.setattr(funasr_asr, "_rescaled", spy)
    return seen


def decode_both(asr, spans, hotwords=()) -> tuple[list, list]:
    """(funasr's inference, tingxie's batch path) on one batch: ``(text, timestamp)`` per span."""
    from pipeline.funasr.asr import _phrases

    phrases = _phrases(hotwords)
    old = asr._decode(spans, phrases, funasr=True)
    new = asr._decode(spans, phrases, funasr=False)
    return [(i.get("text"), i.get("timestamp")) for i in old], [(i.get("text"), i.get("timestamp")) for i in new]


def test_seaco_batch_path_matches_funasr_inference(seaco, spans, rescaled):
    from pipeline.funasr.asr import _result

    assert seaco.fast_path and seaco.model_class == "SeacoParaformer"
    old, new = decode_both(seaco, spans)
    assert new == old
    assert all(text and stamps for text, stamps in new[:5])  # the speech spans have timed tokens
    assert rescaled  # some rows took funasr's rescaling path, on the device

    old_hot, new_hot = decode_both(seaco, spans, HOTWORDS)
    assert new_hot == old_hot
    assert new_hot != new  # the hotword bias decoder ran

    # The public call (lock, hotword file, sub-batches) gives the words funasr's output gives.
    results = seaco.recognize(spans, language="zh", hotwords=HOTWORDS)
    durations = [len(s) * 1000 // 16_000 for s in spans]
    expected = [_result({"text": t, "timestamp": s}, d) for (t, s), d in zip(old_hot, durations)]
    assert results == expected


def test_a_hotword_list_is_made_once_and_reused_across_batches(seaco, spans, monkeypatch, tmp_path):
    """funasr tokenises hotwords from a file: tingxie writes it once per distinct list, not on
    every ASR call, and the batches of a job (and later jobs with the same words) reuse the ids."""
    import tempfile

    from contract import Hotword

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    calls = []
    original = seaco._model.generate_hotwords_list
    monkeypatch.setattr(seaco._model, "generate_hotwords_list",
                        lambda path, **kw: calls.append(Path(path).read_text(encoding="utf-8")) or original(path, **kw))
    words = (Hotword("阿里巴巴", 20.0), Hotword("machine learning"))
    first = seaco.recognize(spans[:2], language="zh", hotwords=words)
    again = seaco.recognize(spans[:2], language="zh", hotwords=words)
    assert first == again
    assert calls == ["阿里巴巴\nmachine learning\n"]
    assert list(tmp_path.iterdir()) == []  # the one file was removed


def test_bicif_batch_path_matches_funasr_inference(bicif, spans, rescaled):
    assert bicif.fast_path and bicif.model_class == "BiCifParaformer"
    old, new = decode_both(bicif, spans)
    assert new == old
    assert all(text and stamps for text, stamps in new[:5])
    assert rescaled


def test_batch_without_a_token(seaco):
    """Where the CIF fires nowhere funasr returns nothing; both paths give empty results."""
    silence = [np.zeros(1_600, dtype=np.float32)] * 2
    old, new = decode_both(seaco, silence)
    assert new == old == [(None, None)] * 2
    assert [r.text for r in seaco.recognize(silence, language="zh")] == ["", ""]


def _paraformer_variant(root, model_class: str):
    """A tiny ``model_class`` directory (CIF-V2 predictor) built by funasr's classes, from the
    timestamp model's layout."""
    import torch
    from funasr.register import tables
    from omegaconf import OmegaConf
    import funasr.models.contextual_paraformer.model  # noqa: F401  (registers the class)

    model_dir = build_timestamp_paraformer(root)
    config = OmegaConf.to_container(OmegaConf.load(model_dir / "config.yaml"))
    config["model"] = model_class
    config["predictor"] = "CifPredictorV2"
    config["predictor_conf"] = {
        k: config["predictor_conf"][k] for k in ("idim", "threshold", "l_order", "r_order", "tail_threshold")
    }
    if model_class == "ContextualParaformer":
        config["decoder"] = "ContextualParaformerDecoder"
        config["decoder_conf"]["num_blocks"] = config["decoder_conf"]["att_layer_num"] = 2
        config["model_conf"]["inner_dim"] = config["encoder_conf"]["output_size"]
    OmegaConf.save(OmegaConf.create(config), model_dir / "config.yaml")
    model_conf = dict(config["model_conf"])
    for key in ("encoder", "encoder_conf", "decoder", "decoder_conf", "predictor", "predictor_conf"):
        model_conf[key] = config[key]
    vocab = json.loads((model_dir / "tokens.json").read_text(encoding="utf-8"))
    torch.manual_seed(0)
    model = tables.model_classes.get(model_class)(vocab_size=len(vocab), input_size=560, **model_conf)
    with torch.no_grad():  # about a token every 4 frames, as build_timestamp_paraformer steers it
        model.predictor.cif_output.weight.mul_(0.01)
        model.predictor.cif_output.bias.fill_(-1.1)
    torch.save(model.state_dict(), model_dir / "model.pt")
    return model_dir


def test_contextual_paraformer_batch_path_matches_funasr_inference(spans, tmp_path):
    from pipeline.funasr.asr import ParaformerAsr

    asr = ParaformerAsr(_paraformer_variant(tmp_path / "contextual", "ContextualParaformer"))
    assert asr.fast_path and asr.supports_hotwords
    for hotwords in ((), HOTWORDS):
        old, new = decode_both(asr, spans, hotwords)
        assert new == old
        assert all(text and stamps is None for text, stamps in new[:5])  # no timestamp head


def test_plain_paraformer_runs_through_funasr_inference(spans, tmp_path):
    """A class the batch path does not know (plain Paraformer times tokens its own way) falls back."""
    from pipeline.funasr.asr import ParaformerAsr

    asr = ParaformerAsr(_paraformer_variant(tmp_path / "paraformer", "Paraformer"))
    assert not asr.fast_path
    results = asr.recognize(spans[:2], language="zh")
    assert all(r.words and r.words[-1].end_ms <= len(s) * 1000 // 16_000 for r, s in zip(results, spans))
