"""The offline profile's speaker embeddings: the GE2E voice encoder whose trained weights ship
inside the ``resemblyzer`` wheel (``resemblyzer/pretrained.pt``, 17 MB, Apache-2.0), so nothing
is downloaded at run time.

The package is never imported, only its weights file read: its ``__init__`` imports librosa
(18 s and 340 MiB the first time, for numba) and webrtcvad (whose 2.0.10 release imports
``pkg_resources``, gone from current setuptools, so the import fails). What the encoder needs
besides its weights is its input, a 40-band mel power spectrogram of 25 ms frames every 10 ms;
:func:`mel_spectrogram` computes it with numpy as librosa does, and the tests hold it, and the
embeddings, to the package's own (tests/pipeline/test_speaker_ge2e.py).

The network, as the checkpoint's tensors lay it out: a 3-layer LSTM (40 -> 256), a linear layer
(256 -> 256) on the last layer's final state, ReLU, L2 norm. It needs torch: the ``diarize``
extra (``pip install 'tingxie[diarize]'``), never loaded by a worker that does not diarize.
"""
from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.errors import EngineMissingError
from pipeline.runtimes import import_torch

SAMPLE_RATE_HZ = 16_000
FFT_SAMPLES = 400  # 25 ms frames
HOP_SAMPLES = 160  # every 10 ms
MEL_BANDS = 40
# The encoder was trained on partial utterances of 160 frames; the diarizer cuts windows this long.
WINDOW_MS = 1600
# Quieter clips are raised to this level, as the package prepares its input; louder ones are left.
TARGET_DBFS = -30.0
# Clips per forward pass: bounds the LSTM's activations (about 40 MB at 128).
BATCH_CLIPS = 128

INSTALL = "pip install 'tingxie[diarize]'"


def require_packages() -> None:
    """EngineMissingError naming the extra when torch, scikit-learn or resemblyzer is absent."""
    missing = [name for name in ("torch", "sklearn", "resemblyzer") if importlib.util.find_spec(name) is None]
    if missing:
        names = {"sklearn": "scikit-learn"}
        raise EngineMissingError(
            "Speaker labels on the offline profile need "
            f"{', '.join(names.get(n, n) for n in missing)}: {INSTALL} "
            "(torch, scikit-learn, and resemblyzer, whose wheel carries the GE2E voice encoder's weights)."
        )


def weights_path() -> Path:
    """``pretrained.pt`` inside the installed resemblyzer package, found without importing it."""
    spec = importlib.util.find_spec("resemblyzer")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "pretrained.pt"
        if path.is_file():
            return path
    raise EngineMissingError(
        f"The GE2E voice encoder's weights (resemblyzer/pretrained.pt) are not installed: {INSTALL}",
        detail=f"looked in: {locations}",
    )


@lru_cache(maxsize=1)
def mel_filters() -> "np.ndarray":
    """Slaney-style mel filterbank (librosa's default: Slaney's mel scale, area-normalised
    triangles), ``MEL_BANDS`` x ``FFT_SAMPLES // 2 + 1``, 0 Hz to Nyquist."""
    def hz_to_mel(hz):
        hz = np.asarray(hz, dtype=np.float64)
        linear = hz / (200.0 / 3)
        return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27), linear)

    def mel_to_hz(mel):
        mel = np.asarray(mel, dtype=np.float64)
        linear = mel * (200.0 / 3)
        return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27) * (mel - 15.0)), linear)

    fft_hz = np.fft.rfftfreq(FFT_SAMPLES, 1.0 / SAMPLE_RATE_HZ)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE_HZ / 2), MEL_BANDS + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return filters.astype(np.float32)


@lru_cache(maxsize=1)
def _hann() -> "np.ndarray":
    n = np.arange(FFT_SAMPLES)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / FFT_SAMPLES)).astype(np.float32)  # periodic, as librosa's


def mel_spectrogram(wav: "np.ndarray") -> "np.ndarray":
    """(frames, ``MEL_BANDS``) float32 mel power of a 16 kHz clip: frames centred every 10 ms
    on the zero-padded signal, one per hop and one more, as librosa's ``melspectrogram``."""
    wav = np.asarray(wav, dtype=np.float32)
    padded = np.pad(wav, FFT_SAMPLES // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, FFT_SAMPLES)[::HOP_SAMPLES]
    power = np.abs(np.fft.rfft(frames * _hann(), axis=1)) ** 2
    return (power.astype(np.float32) @ mel_filters().T).astype(np.float32)


def normalize_volume(wav: "np.ndarray") -> "np.ndarray":
    """Raise a quiet clip to ``TARGET_DBFS`` (RMS); a louder or silent one is returned as it is."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    if rms <= 0.0:
        return wav
    gain_db = TARGET_DBFS - 20 * np.log10(rms)
    return wav if gain_db <= 0 else (wav * np.float32(10 ** (gain_db / 20))).astype(np.float32)


class Ge2eEncoder:
    """:class:`~pipeline.stages.SpeakerModel` over resemblyzer's pretrained GE2E encoder.

    ``same_speaker_distance``: on the shared recordings (tests/support/speaker_turns.py), average
    linkage over 1.6 s windows merged one voice's windows at distances up to 0.35 and two voices'
    from 0.49 up; 0.42 lies between.
    """

    window_ms = WINDOW_MS
    same_speaker_distance = 0.42

    def __init__(self, *, device: str = "cpu", threads: int = 1, weights: Path | None = None):
        """``threads``: torch's CPU threads, set for the whole process (on the offline profile
        nothing else in it runs on torch). One by default: on a busy 2-core host two threads took
        19-33 s for what one did in 5.5-9.3 s (752 windows), spinning against other work."""
        require_packages()
        torch = import_torch()

        if threads > 0:
            torch.set_num_threads(threads)

        checkpoint = torch.load(weights or weights_path(), map_location="cpu", weights_only=True)
        state = checkpoint["model_state"]
        self._lstm = torch.nn.LSTM(MEL_BANDS, 256, num_layers=3, batch_first=True)
        self._linear = torch.nn.Linear(256, 256)
        self._lstm.load_state_dict({k[len("lstm."):]: v for k, v in state.items() if k.startswith("lstm.")})
        self._linear.load_state_dict({k[len("linear."):]: v for k, v in state.items() if k.startswith("linear.")})
        self._device = torch.device(device if device.startswith("cuda") and torch.cuda.is_available() else "cpu")
        self._lstm.to(self._device).eval()
        self._linear.to(self._device).eval()
        self._lock = threading.Lock()  # one forward at a time: jobs in threads share the weights

    def embed(self, clips: Sequence["np.ndarray"]) -> "np.ndarray":
        if not clips:
            return np.zeros((0, 256), dtype=np.float32)
        mels = [mel_spectrogram(normalize_volume(np.asarray(c, dtype=np.float32))) for c in clips]
        return np.concatenate([
            self.embed_mels(mels[i:i + BATCH_CLIPS]) for i in range(0, len(mels), BATCH_CLIPS)
        ])

    def embed_mels(self, mels: Sequence["np.ndarray"]) -> "np.ndarray":
        """Embeddings of mel spectrograms of any lengths (each the LSTM's final state at its own
        last frame: the batch is packed, not padded)."""
        # torch, loaded by import_torch() with the encoder (pipeline.runtimes), never at import: no speakers, no torch
        import torch
        from torch.nn.utils.rnn import pack_padded_sequence

        lengths = [len(m) for m in mels]
        batch = np.zeros((len(mels), max(lengths), MEL_BANDS), dtype=np.float32)
        for row, mel in zip(batch, mels):
            row[:len(mel)] = mel
        with self._lock, torch.inference_mode():
            packed = pack_padded_sequence(
                torch.from_numpy(batch).to(self._device), lengths, batch_first=True, enforce_sorted=False
            )
            _, (hidden, _) = self._lstm(packed)
            raw = torch.relu(self._linear(hidden[-1]))
            embeddings = raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return embeddings.cpu().numpy().astype(np.float32)


def load_ge2e(device: str = "cpu", threads: int = 1) -> Ge2eEncoder:
    """What the offline profile's ``Engine.speaker`` loads."""
    return Ge2eEncoder(device=device, threads=threads)
