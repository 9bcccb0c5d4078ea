"""FSMN-VAD: tingxie's detector (pipeline.funasr.detect) gives exactly the spans of funasr's own
``FsmnVADStreaming.inference``, run over the file a minute at a time as FsmnVad used to run it.

Two models: the tiny one from ``build_fsmn_vad`` (the network calls every frame speech, so frame
energy decides) and one whose network tracks the energy of the low mel bands (silence
probabilities from 1e-4 to 0.99998), so the network's verdict, the noise level and the SNR path
all take part. Real speech: asr_example.wav, jfk.flac, and two and a half minutes of the
recordings with pauses of 0.3 to 3 s, some digital silence and some low noise, whose spans
cross the one-minute chunks.
"""
from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.support.requires import require_funasr

require_funasr()

from pipeline.audio import PcmFile, decode  # noqa: E402
from pipeline.funasr.vad import CHUNK_MS, FsmnVad  # noqa: E402
from tests.support.funasr_models import funasr_vad_segments  # noqa: E402

pytestmark = pytest.mark.funasr

RATE_HZ = 16_000
CHUNK_SAMPLES = CHUNK_MS * RATE_HZ // 1000


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One torch thread, as the VAD helpers run it (and as the timings in bench/funasr_vad.py are taken)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def _funasr_model(model_dir: Path):
    import torch
    from funasr import AutoModel

    model, kwargs = AutoModel.build_model(
        model=str(model_dir), device="cpu", disable_update=True, ncpu=torch.get_num_threads(), log_level="ERROR"
    )
    return model, kwargs["frontend"]


def funasr_segments(model_dir: Path, pcm: PcmFile) -> list[tuple[int, int]]:
    """The reference: funasr's own streaming inference (tests.support.funasr_models.funasr_vad_segments)."""
    return funasr_vad_segments(*_funasr_model(model_dir), pcm)


def build_energy_vad(model_dir: Path) -> Path:
    """An FSMN-VAD whose silence output follows the energy of the low mel bands: channel 0 of
    every layer carries the mean of the centre frame's bins 0-29 (after CMVN, floored at -1),
    each FSMN memory smooths it over its 20 frames, and the silence logit falls with it. The
    other channels and logits keep build_fsmn_vad's random weights."""
    import torch

    from tests.support.funasr_models import build_fsmn_vad

    build_fsmn_vad(model_dir, seed=1)
    state = torch.load(model_dir / "model.pt")

    def only(name: str, column: int, value: float, bias: float | None = None) -> None:
        weight = state[f"encoder.{name}.weight"]
        weight[0].zero_()
        weight[0, column] = value
        if bias is not None:
            state[f"encoder.{name}.bias"][0] = bias

    weight = state["encoder.in_linear1.linear.weight"]
    weight[0].zero_()
    weight[0, 160:190] = 1 / 30  # LFR frame = 5 fbank frames of 80 bins; the centre one starts at 160
    state["encoder.in_linear1.linear.bias"][0] = 1.0
    only("in_linear2.linear", 0, 1.0, 0.0)
    for layer in range(4):
        only(f"fsmn.{layer}.linear.linear", 0, 1.0)
        state[f"encoder.fsmn.{layer}.fsmn_block.conv_left.weight"][0] = 0.01
        only(f"fsmn.{layer}.affine.linear", 0, 1 / 1.2, 0.0)
    only("out_linear1.linear", 0, 1.0, 0.0)
    # Silence logit 4.1 (P(silence) ~ 0.2, the speech threshold) where the bands' mean is 2.0.
    only("out_linear2.linear", 0, -4.0, 4.1 + 4.0 * 3.0)
    torch.save(state, model_dir / "model.pt")
    return model_dir


@pytest.fixture(scope="session")
def vad_dirs(tmp_path_factory) -> dict[str, Path]:
    from tests.support.funasr_models import build_fsmn_vad

    root = tmp_path_factory.mktemp("fsmn-vad")
    return {"tiny": build_fsmn_vad(root / "tiny"), "energy": build_energy_vad(root / "energy")}


@pytest.fixture(scope="session")
def tiny_vads(vad_dirs) -> dict[str, FsmnVad]:
    return {name: FsmnVad(path) for name, path in vad_dirs.items()}


@pytest.fixture(scope="session")
def recordings(speech_dir, tmp_path_factory) -> dict[str, np.ndarray]:
    """The real recordings as 16 kHz int16 samples."""
    out = tmp_path_factory.mktemp("recordings")
    samples = {}
    for name in ("asr_example.wav", "jfk.flac", "hotwords.mp3"):
        pcm_path = out / f"{name}.s16le"
        decode(speech_dir / name, pcm_path)
        samples[name] = np.fromfile(pcm_path, dtype="<i2")
    return samples


@pytest.fixture(scope="session")
def mixed_speech(recordings) -> np.ndarray:
    """About 2.3 minutes: the recordings in turn, each followed by a pause of 0.3 to 3 s,
    alternately digital silence and noise at about -24 dB (loud enough that the network decides).
    The pauses are ordered so that speech runs across both minute boundaries for both models."""
    rng = np.random.default_rng(7)
    clips = [recordings[name] for name in ("asr_example.wav", "jfk.flac", "hotwords.mp3")]
    pauses_s = (0.3, 0.6, 0.9, 3.0, 2.0, 1.5, 1.1, 0.45)
    parts = []
    for i in range(17):
        parts.append(clips[i % len(clips)])
        pause = int(pauses_s[i % len(pauses_s)] * RATE_HZ)
        noise = rng.normal(0.0, 100.0, pause) if i % 2 else np.zeros(pause)
        parts.append(noise.astype("<i2"))
    return np.concatenate(parts)


def write_pcm(path: Path, samples: np.ndarray) -> PcmFile:
    np.asarray(samples, dtype="<i2").tofile(path)
    return PcmFile(path)


@pytest.mark.parametrize("model", ["tiny", "energy"])
@pytest.mark.parametrize("recording", ["asr_example.wav", "jfk.flac"])
def test_spans_equal_funasr_on_real_speech(tiny_vads, vad_dirs, recordings, tmp_path, model, recording):
    pcm = write_pcm(tmp_path / "speech.s16le", recordings[recording])

    expected = funasr_segments(vad_dirs[model], pcm)
    assert expected  # speech is found
    assert tiny_vads[model].segments_ms(pcm) == expected


@pytest.mark.parametrize("model", ["tiny", "energy"])
def test_spans_equal_funasr_across_minute_chunks(tiny_vads, vad_dirs, mixed_speech, tmp_path, model):
    pcm = write_pcm(tmp_path / "mixed.s16le", mixed_speech)
    progress: list[float] = []

    expected = funasr_segments(vad_dirs[model], pcm)
    assert tiny_vads[model].segments_ms(pcm, on_progress=progress.append) == expected
    assert len(expected) >= 10
    for boundary_ms in (60_000, 120_000):  # spans run across the chunks, not just up to them
        assert any(start < boundary_ms < end for start, end in expected)
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) == 3


def test_energy_model_hears_the_pauses_the_tiny_one_does_not(vad_dirs, tiny_vads, mixed_speech, tmp_path):
    """The noisy pauses are above the energy threshold: only a network that calls them silence
    splits there, so the two models' spans differ and the network's verdict is exercised."""
    pcm = write_pcm(tmp_path / "mixed.s16le", mixed_speech)
    tiny, energy = tiny_vads["tiny"].segments_ms(pcm), tiny_vads["energy"].segments_ms(pcm)
    assert len(energy) > len(tiny)


def test_exact_multiple_of_the_chunk(tiny_vads, vad_dirs, mixed_speech, tmp_path):
    """Two minutes to the sample, ending in speech: the last frame closes the open span."""
    samples = mixed_speech[:2 * CHUNK_SAMPLES]
    pcm = write_pcm(tmp_path / "two-minutes.s16le", samples)
    assert pcm.num_samples == 2 * CHUNK_SAMPLES
    for model in ("tiny", "energy"):
        expected = funasr_segments(vad_dirs[model], pcm)
        assert tiny_vads[model].segments_ms(pcm) == expected
    assert expected[-1][1] >= 119_000


@pytest.mark.parametrize("num_samples", [0, 1, 399, 400, 1_000, 4_000])
def test_empty_and_very_short_files(tiny_vads, vad_dirs, recordings, tmp_path, num_samples):
    speech = recordings["jfk.flac"]
    pcm = write_pcm(tmp_path / "short.s16le", speech[RATE_HZ:RATE_HZ + num_samples])
    for model in ("tiny", "energy"):
        expected = funasr_segments(vad_dirs[model], pcm)
        assert tiny_vads[model].segments_ms(pcm) == expected
        if num_samples < 400:  # not one 25 ms frame
            assert expected == []


def test_pure_silence(tiny_vads, vad_dirs, tmp_path):
    pcm = write_pcm(tmp_path / "silence.s16le", np.zeros(75 * RATE_HZ, dtype="<i2"))
    for model in ("tiny", "energy"):
        assert funasr_segments(vad_dirs[model], pcm) == []
        assert tiny_vads[model].segments_ms(pcm) == []


def test_span_longer_than_max_single_segment_time(tiny_vads, vad_dirs, mixed_speech, tmp_path):
    """Speech over a noise floor for 150 s never pauses for the tiny model: the model cuts its
    span at max_single_segment_time (60 s), and speech_spans at max_span_ms."""
    rng = np.random.default_rng(3)
    samples = np.resize(mixed_speech, 150 * RATE_HZ).astype(np.float64) + rng.normal(0.0, 300.0, 150 * RATE_HZ)
    pcm = write_pcm(tmp_path / "noisy.s16le", np.clip(samples, -32768, 32767))

    expected = funasr_segments(vad_dirs["tiny"], pcm)
    assert tiny_vads["tiny"].segments_ms(pcm) == expected
    assert max(end - start for start, end in expected) >= 59_000
    assert len(expected) >= 3

    short = FsmnVad(vad_dirs["tiny"], max_span_ms=25_000)
    spans = short.speech_spans(pcm)
    assert max(s.duration_ms for s in spans) <= 25_000
    assert spans[0].start_ms == expected[0][0] and spans[-1].end_ms == expected[-1][1]


def test_onnx_backend_gives_the_same_spans(vad_dirs, mixed_speech, tmp_path):
    pytest.importorskip("onnxscript", reason="exporting the tiny ONNX models needs onnxscript")
    from tests.support.funasr_models import export_onnx

    pcm = write_pcm(tmp_path / "mixed.s16le", mixed_speech)
    for model in ("tiny", "energy"):
        onnx_vad = FsmnVad(export_onnx(vad_dirs[model], tmp_path / f"{model}-onnx"))
        assert onnx_vad.backend == "onnx"
        assert onnx_vad.segments_ms(pcm) == funasr_segments(vad_dirs[model], pcm)


def test_threads_share_one_model(tiny_vads, mixed_speech, recordings, tmp_path):
    """No per-file state on the model: files detected at once give their own spans."""
    files = [write_pcm(tmp_path / "mixed.s16le", mixed_speech),
             write_pcm(tmp_path / "jfk.s16le", recordings["jfk.flac"])]
    vad = tiny_vads["energy"]
    alone = [vad.segments_ms(pcm) for pcm in files]
    together: list = [None, None]

    def run(i: int) -> None:
        together[i] = vad.segments_ms(files[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone


def test_detector_carries_its_state_across_any_chunking(tiny_vads, vad_dirs, mixed_speech):
    """The same frames pushed in one piece or in pieces of random sizes give the same spans."""
    import torch
    from funasr.utils.load_utils import extract_fbank

    from pipeline.funasr.detect import FrameEnergy, FsmnDetector, silence_probability

    vad = tiny_vads["energy"]
    samples = mixed_speech[:90 * RATE_HZ].astype(np.float32) / 32768
    with torch.inference_mode():
        feats, _ = extract_fbank([torch.from_numpy(samples)], frontend=vad._frontend, cache={}, is_final=True)
        silence = silence_probability(vad._network.scores(feats, vad._network.new_cache(), vad.options.sil_pdf_ids))
    energy = FrameEnergy(vad.options.frame_samples, vad.options.shift_samples)
    energy.add(samples)
    decibel = energy.take(len(silence))

    whole = FsmnDetector(vad.options).push(silence, decibel, final=True)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, len(silence)), size=40, replace=False))
    pieces = FsmnDetector(vad.options)
    spans = []
    for first, last in zip([0, *cuts], [*cuts, len(silence)]):
        spans += pieces.push(silence[first:last], decibel[first:last], final=last == len(silence))
    assert spans == whole and len(whole) >= 10


def test_frame_energy_is_funasrs(vad_dirs, recordings):
    """FrameEnergy's dB values are bit-for-bit those funasr's ComputeDecibel keeps."""
    import torch

    from pipeline.funasr.detect import FrameEnergy

    model, _ = _funasr_model(vad_dirs["tiny"])
    samples = recordings["jfk.flac"].astype(np.float32) / 32768
    frames = (len(samples) - 400) // 160 + 1
    cache: dict = {}
    model.init_cache(cache)
    cache["stats"].waveform = torch.from_numpy(samples[: (frames - 1) * 160 + 400])[None]
    model.ComputeDecibel(cache=cache, frame_count=frames)

    energy = FrameEnergy(400, 160)
    energy.add(samples[:50_000])
    first = energy.take(200)
    energy.add(samples[50_000:])
    ours = np.concatenate([first, energy.take(frames - 200)])
    assert ours.tolist() == cache["stats"].decibel
