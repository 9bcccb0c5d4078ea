"""tingxie's GE2E encoder against the resemblyzer package it takes its weights from: the same mel
spectrogram as the package's (librosa's), and the same embeddings as the package's own
``VoiceEncoder``, on real speech."""
from __future__ import annotations

import importlib
import subprocess
import sys
import types

import numpy as np
import pytest

from pipeline.errors import EngineMissingError
from pipeline.speaker_ge2e import Ge2eEncoder, mel_spectrogram, normalize_volume, require_packages

try:
    require_packages()
except EngineMissingError as exc:
    pytest.skip(exc.message, allow_module_level=True)


@pytest.fixture(scope="module")
def resemblyzer():
    """The package itself, as its README uses it. webrtcvad 2.0.10 imports ``pkg_resources``, which
    current setuptools no longer has; the package's ``__init__`` imports it for its own silence
    trimming, which neither side of these comparisons uses, so when that import fails an empty
    module stands in for webrtcvad while the package loads."""
    with pytest.MonkeyPatch.context() as patch:
        try:
            importlib.import_module("webrtcvad")
        except ImportError:
            patch.setitem(sys.modules, "webrtcvad", types.ModuleType("webrtcvad"))
        yield importlib.import_module("resemblyzer")


def _decode(path, ffmpeg) -> np.ndarray:
    raw = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar",
                          "16000", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768


@pytest.mark.parametrize("name", ["jfk.flac", "asr_example.wav", "hotwords.mp3"])
def test_mel_spectrogram_is_the_packages(resemblyzer, speech_path, ffmpeg, name):
    wav = _decode(speech_path(name), ffmpeg)
    theirs = resemblyzer.wav_to_mel_spectrogram(wav)
    ours = mel_spectrogram(wav)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() <= 1e-5 * theirs.max()


@pytest.mark.parametrize("name", ["jfk.flac", "asr_example.wav"])
def test_embeddings_are_the_packages(resemblyzer, speech_path, ffmpeg, name):
    """1.6 s windows every 0.8 s, a short last one, and a quiet copy (raised to -30 dBFS on
    both sides): the package's ``VoiceEncoder`` over its own mel and volume code, ours over ours."""
    import torch

    wav = _decode(speech_path(name), ffmpeg)
    clips = [wav[i:i + 25_600] for i in range(0, len(wav) - 25_600, 12_800)] + [wav[-9_000:], wav[:25_600] * 0.01]
    encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
    with torch.no_grad():
        theirs = np.stack([
            encoder(torch.from_numpy(resemblyzer.wav_to_mel_spectrogram(
                resemblyzer.normalize_volume(clip, -30, increase_only=True))[None]))[0].numpy()
            for clip in clips
        ])
    ours = Ge2eEncoder().embed(clips)
    assert ours.shape == theirs.shape == (len(clips), 256)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert (ours * theirs).sum(axis=1).min() >= 0.9999  # cosine similarity


def test_quiet_clips_are_raised_loud_ones_left():
    rng = np.random.default_rng(0)
    loud = rng.uniform(-0.5, 0.5, 16_000).astype(np.float32)
    assert normalize_volume(loud) is loud
    quiet = loud * 0.001
    raised = normalize_volume(quiet)
    assert 20 * np.log10(np.sqrt(np.mean(raised.astype(np.float64) ** 2))) == pytest.approx(-30.0, abs=0.01)
    silence = np.zeros(1600, dtype=np.float32)
    assert normalize_volume(silence) is silence
