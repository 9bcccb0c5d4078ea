"""FSMN-VAD (FunASR's ``FsmnVADStreaming``) over a PCM file, on PyTorch or onnxruntime.

The file goes through funasr's streaming frontend (fbank, LFR, CMVN) a minute at a time and
through the FSMN network (funasr's module, or the ONNX export) in blocks of frames, with the
frontend's and the network's caches carried across calls, so memory stays flat whatever the
file's length. The detection is tingxie's own (:mod:`pipeline.funasr.detect`): funasr's state
machine compiled over whole chunks, giving exactly the spans funasr's ``inference`` gives at a
negligible cost, where funasr's per-frame Python loop took a quarter of the time (the fbank and
the network are what is left; bench/funasr_vad.py). The end-of-speech silence is the model's
configured one (800 ms for FunASR's model), fixed as in FunASR's runtime servers, rather than
the shrinking schedule ``AutoModel.generate`` uses.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from pipeline.stages import SpeechSpan

if TYPE_CHECKING:
    import threading

    import numpy as np
    import torch

    from pipeline.audio import PcmFile

CHUNK_MS = 60_000  # audio per frontend call; also funasr's own offline chunk
# Frames per network call and torch thread: on one core a 10 s block keeps the FSMN's
# activations in cache (about a quarter faster than a whole minute per call); more threads take
# proportionally more frames per call, so that each still gets a block to itself.
NETWORK_BLOCK_FRAMES = 1_000


class FsmnVad:
    """:class:`~pipeline.stages.VadModel` for an FSMN-VAD directory (``model.pt`` or ``model.onnx``).

    ``max_span_ms``: spans longer than this are cut into equal parts (the model already cuts at
    its ``max_single_segment_time``, 60 s); default 60000 ms. Holds no per-file state: calls
    from several threads may run at once.
    """

    def __init__(self, model_dir: Path, *, device: str = "cpu", max_span_ms: int = 60_000):
        # the detector imports numpy: only in the worker that runs this model (importing the pipeline loads no numpy)
        from pipeline.funasr.detect import DetectOptions

        self.model_dir = Path(model_dir)
        self.max_span_ms = max_span_ms
        onnx_file = _onnx_file(self.model_dir)
        if (self.model_dir / "model.pt").exists() or onnx_file is None:
            # torch and funasr only in the worker that runs this model (web and an offline worker never load them)
            import torch
            from funasr import AutoModel

            # ncpu: funasr sets torch's process-wide thread count from it; keep the current one.
            model, kwargs = AutoModel.build_model(
                model=str(self.model_dir), device=device, disable_update=True,
                ncpu=torch.get_num_threads(), log_level="ERROR",
            )
            vad_opts, self._frontend = model.vad_opts, kwargs["frontend"]
            self._network = _TorchFsmn(model.encoder, kwargs["device"])
            self.backend = "pytorch"
        else:
            vad_opts, self._frontend, self._network = _build_onnx_vad(self.model_dir, onnx_file, device)
            self.backend = "onnx"
        # The end silence as configured, passed to funasr as ``max_end_silence_time``.
        self.options = DetectOptions.from_vad_options(vad_opts, int(vad_opts.max_end_silence_time))
        frontend = self._frontend
        if (frontend.fs, frontend.frame_shift, frontend.frame_length, frontend.lfr_n) != (
            self.options.sample_rate_hz, self.options.frame_ms, self.options.frame_length_ms, 1
        ):
            raise ValueError(
                f"FSMN-VAD in {self.model_dir}: the detector reads one frame per {self.options.frame_ms} ms "
                f"at {self.options.sample_rate_hz} Hz; the frontend has fs={frontend.fs}, "
                f"frame_shift={frontend.frame_shift}, frame_length={frontend.frame_length}, lfr_n={frontend.lfr_n}"
            )

    def speech_spans(
        self, pcm: "PcmFile", on_progress: Callable[[float], None] | None = None
    ) -> list[SpeechSpan]:
        return list(self.iter_speech_spans(pcm, on_progress))

    def iter_speech_spans(
        self,
        pcm: "PcmFile",
        on_progress: Callable[[float], None] | None = None,
        stop: "threading.Event | None" = None,
    ) -> Iterator[SpeechSpan]:
        """:meth:`speech_spans` one at a time, each as soon as the detector has closed it;
        ``stop`` ends it at the next minute of audio."""
        return self._shape(self._segments(pcm, on_progress, stop), pcm.duration_ms)

    def segments_ms(
        self, pcm: "PcmFile", on_progress: Callable[[float], None] | None = None
    ) -> list[tuple[int, int]]:
        """The model's own segments ``(start_ms, end_ms)``, as funasr's ``inference`` returns them
        over the file in minute chunks (before :meth:`speech_spans` clips and cuts them)."""
        return list(self._segments(pcm, on_progress))

    def _segments(
        self, pcm: "PcmFile", on_progress: Callable[[float], None] | None, stop: "threading.Event | None" = None
    ) -> Iterator[tuple[int, int]]:
        # torch, funasr and the detector (numpy) only in the worker that runs this model (web loads none)
        import torch
        from funasr.utils.load_utils import extract_fbank

        from pipeline.funasr.detect import FrameEnergy, FsmnDetector, silence_probability

        if pcm.sample_rate_hz != self.options.sample_rate_hz:
            raise ValueError(f"FSMN-VAD takes {self.options.sample_rate_hz} Hz audio, not {pcm.sample_rate_hz} Hz")
        total = pcm.num_samples
        stride = CHUNK_MS * pcm.sample_rate_hz // 1000
        detector = FsmnDetector(self.options)
        energy = FrameEnergy(self.options.frame_samples, self.options.shift_samples)
        frontend_cache: dict = {}
        network_cache = self._network.new_cache()
        for start in range(0, total, stride):
            if stop is not None and stop.is_set():
                return
            end = min(total, start + stride)
            final = end == total
            samples = pcm.read_samples(start, end)
            energy.add(samples)
            with torch.inference_mode():
                feats, _ = extract_fbank(
                    [torch.from_numpy(samples)], frontend=self._frontend, cache=frontend_cache, is_final=final
                )
                frames = feats.shape[1] if feats.dim() == 3 else 0
                closed = []
                if frames:
                    silence = self._network.scores(feats, network_cache, self.options.sil_pdf_ids)
                    closed = detector.push(silence_probability(silence), energy.take(frames), final)
            yield from closed
            if on_progress is not None:
                on_progress(end / total)

    def _shape(self, raw: Iterable[tuple[int, int]], duration_ms: int) -> Iterator[SpeechSpan]:
        """Clip to the file, drop overlaps, and cut spans longer than ``max_span_ms``; the
        detector closes its segments in time order."""
        last_end = 0
        for start_ms, end_ms in raw:
            start_ms = max(start_ms, last_end, 0)
            end_ms = min(end_ms, duration_ms)
            if end_ms - start_ms < 10:
                continue
            parts = max(1, -(-(end_ms - start_ms) // self.max_span_ms))
            step = (end_ms - start_ms) / parts
            for k in range(parts):
                yield SpeechSpan(int(start_ms + k * step), int(start_ms + (k + 1) * step) if k < parts - 1 else end_ms)
            last_end = end_ms


class _TorchFsmn:
    """funasr's FSMN encoder, run in blocks of frames with its own cache dict carried along."""

    def __init__(self, encoder: "torch.nn.Module", device: str):
        self._encoder = encoder
        self._device = device

    def new_cache(self) -> dict:
        return {}

    def scores(self, feats: "torch.Tensor", cache: dict, columns: tuple[int, ...]) -> "np.ndarray":
        """The posteriors' ``columns`` for each frame of ``feats`` (1, frames, dim): (frames, k)."""
        # numpy and torch only in the worker that runs this model (importing the pipeline loads neither)
        import numpy as np

        import torch

        step = NETWORK_BLOCK_FRAMES * torch.get_num_threads()
        blocks = []
        for first in range(0, feats.shape[1], step):
            block = feats[:, first:first + step].to(self._device)
            posteriors = self._encoder(block, cache=cache)
            blocks.append(posteriors[0][:, list(columns)].float().cpu().numpy())
        return np.concatenate(blocks)


def _onnx_file(model_dir: Path) -> Path | None:
    for name in ("model.onnx", "model_quant.onnx"):
        if (model_dir / name).exists():
            return model_dir / name
    return None


def onnx_providers(device: str) -> list:
    """CUDA execution provider first when asked for a GPU and onnxruntime-gpu offers it."""
    # onnxruntime only in the worker that runs this model (web never loads it)
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _build_onnx_vad(model_dir: Path, onnx_file: Path, device: str):
    """funasr's detection options and frontend for an ONNX directory, and its network
    (``model.onnx``, FunASR's export: ``speech`` + four FSMN caches in, posteriors + caches out)."""
    # onnxruntime and funasr (and its omegaconf) only in the worker that runs this model (web never loads them)
    import onnxruntime
    from omegaconf import OmegaConf
    from funasr.register import tables
    from funasr.models.fsmn_vad_streaming.model import VADXOptions
    import funasr.frontends.wav_frontend  # noqa: F401

    config = OmegaConf.to_container(OmegaConf.load(model_dir / "config.yaml"), resolve=True)
    frontend = tables.frontend_classes.get(config["frontend"])(
        cmvn_file=str(model_dir / "am.mvn"), **config.get("frontend_conf", {})
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=onnx_providers(device))
    return VADXOptions(**config.get("model_conf", {})), frontend, _OnnxFsmn(session, config["encoder_conf"])


class _OnnxFsmn:
    """The ONNX export of the FSMN encoder, run in blocks of frames; its cache is the list of
    the layers' FSMN memories."""

    def __init__(self, session, encoder_conf: dict):
        self._session = session
        self._layers = int(encoder_conf["fsmn_layers"])
        self._cache_shape = (1, int(encoder_conf["proj_dim"]), int(encoder_conf["lorder"]) - 1, 1)

    def new_cache(self) -> list:
        # numpy only once audio is processed: importing the pipeline loads none (it comes with a profile's extra)
        import numpy as np

        return [np.zeros(self._cache_shape, dtype=np.float32) for _ in range(self._layers)]

    def scores(self, feats: "torch.Tensor", cache: list, columns: tuple[int, ...]) -> "np.ndarray":
        """The posteriors' ``columns`` for each frame of ``feats`` (1, frames, dim): (frames, k)."""
        # numpy only once audio is processed: importing the pipeline loads none (it comes with a profile's extra)
        import numpy as np

        speech = feats.detach().cpu().numpy().astype(np.float32, copy=False)
        blocks = []
        for first in range(0, speech.shape[1], NETWORK_BLOCK_FRAMES):
            inputs = {"speech": speech[:, first:first + NETWORK_BLOCK_FRAMES]}
            inputs.update({f"in_cache{i}": cache[i] for i in range(self._layers)})
            outputs = self._session.run(None, inputs)
            cache[:] = outputs[1:1 + self._layers]
            blocks.append(outputs[0][0][:, list(columns)])
        return np.concatenate(blocks)
