"""FSMN-VAD (FunASR's ``FsmnVADStreaming``) streamed over a PCM file, on PyTorch or onnxruntime.

The file is fed to the model a minute at a time with its streaming cache carried across calls,
so memory stays flat whatever the file's length and spans come out on the file's timeline. The
end-of-speech silence is the model's configured one (800 ms for FunASR's model), fixed as in
FunASR's runtime servers, rather than the shrinking schedule ``AutoModel.generate`` uses.

Both backends share funasr's detection state machine; the ONNX one swaps only the network
(``model.onnx``, FunASR's export: ``speech`` + four FSMN caches in, ``logits`` + caches out).
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pipeline.stages import SpeechSpan

if TYPE_CHECKING:
    from pipeline.audio import PcmFile

CHUNK_MS = 60_000  # audio per model call; also funasr's own offline chunk


class FsmnVad:
    """:class:`~pipeline.stages.VadModel` for an FSMN-VAD directory (``model.pt`` or ``model.onnx``).

    ``max_span_ms``: spans longer than this are cut into equal parts (the model already cuts at
    its ``max_single_segment_time``, 60 s); default 60000 ms.
    """

    def __init__(self, model_dir: Path, *, device: str = "cpu", max_span_ms: int = 60_000):
        self.model_dir = Path(model_dir)
        self.max_span_ms = max_span_ms
        self._lock = threading.Lock()  # the model keeps detection options on itself
        onnx_file = _onnx_file(self.model_dir)
        if (self.model_dir / "model.pt").exists() or onnx_file is None:
            import torch
            from funasr import AutoModel

            # ncpu: funasr sets torch's process-wide thread count from it; keep the current one.
            model, kwargs = AutoModel.build_model(
                model=str(self.model_dir), device=device, disable_update=True,
                ncpu=torch.get_num_threads(), log_level="ERROR",
            )
            self._model, self._frontend, self._device = model, kwargs["frontend"], kwargs["device"]
            self.backend = "pytorch"
        else:
            self._model, self._frontend = _build_onnx_vad(self.model_dir, onnx_file, device)
            self._device = "cpu"  # the ONNX network returns CPU tensors; the state machine is Python
            self.backend = "onnx"
        self._end_silence_ms = int(self._model.vad_opts.max_end_silence_time)

    def speech_spans(
        self, pcm: "PcmFile", on_progress: Callable[[float], None] | None = None
    ) -> list[SpeechSpan]:
        import torch

        total = pcm.num_samples
        stride = pcm.ms_to_sample(CHUNK_MS)
        raw: list[tuple[int, int]] = []
        with self._lock, torch.inference_mode():
            cache: dict = {}
            start = 0
            while start < total or (total == 0 and start == 0):
                end = min(total, start + stride)
                final = end >= total
                if final and end - start == stride and end > 0:
                    end -= 1  # funasr would run an empty extra chunk on an exact multiple
                audio = torch.from_numpy(pcm.read_samples(start, end))
                if audio.numel() == 0:
                    break
                results, _ = self._model.inference(
                    data_in=[audio],
                    key=["pcm"],
                    frontend=self._frontend,
                    cache=cache,
                    is_final=final,
                    chunk_size=CHUNK_MS,
                    max_end_silence_time=self._end_silence_ms,
                    device=self._device,
                )
                raw.extend((int(s), int(e)) for s, e in results[0]["value"])
                start = end if not final else total
                if on_progress is not None:
                    on_progress(min(1.0, start / total) if total else 1.0)
        return self._shape(raw, pcm.duration_ms)

    def _shape(self, raw: list[tuple[int, int]], duration_ms: int) -> list[SpeechSpan]:
        """Clip to the file, order, drop overlaps, and cut spans longer than ``max_span_ms``."""
        spans: list[SpeechSpan] = []
        last_end = 0
        for start_ms, end_ms in sorted(raw):
            start_ms = max(start_ms, last_end, 0)
            end_ms = min(end_ms, duration_ms)
            if end_ms - start_ms < 10:
                continue
            parts = max(1, -(-(end_ms - start_ms) // self.max_span_ms))
            step = (end_ms - start_ms) / parts
            for k in range(parts):
                spans.append(SpeechSpan(int(start_ms + k * step), int(start_ms + (k + 1) * step) if k < parts - 1 else end_ms))
            last_end = end_ms
        return spans


def _onnx_file(model_dir: Path) -> Path | None:
    for name in ("model.onnx", "model_quant.onnx"):
        if (model_dir / name).exists():
            return model_dir / name
    return None


def onnx_providers(device: str) -> list:
    """CUDA execution provider first when asked for a GPU and onnxruntime-gpu offers it."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _build_onnx_vad(model_dir: Path, onnx_file: Path, device: str):
    """funasr's FsmnVADStreaming state machine with its network replaced by the ONNX export."""
    import onnxruntime
    import torch
    from omegaconf import OmegaConf
    from funasr.register import tables
    import funasr.models.fsmn_vad_streaming.model  # noqa: F401
    import funasr.frontends.wav_frontend  # noqa: F401

    config = OmegaConf.to_container(OmegaConf.load(model_dir / "config.yaml"), resolve=True)
    frontend = tables.frontend_classes.get(config["frontend"])(
        cmvn_file=str(model_dir / "am.mvn"), **config.get("frontend_conf", {})
    )
    encoder_conf = config["encoder_conf"]
    model = tables.model_classes.get(config["model"])(
        encoder=config["encoder"], encoder_conf=encoder_conf, **config.get("model_conf", {})
    )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=onnx_providers(device))
    model.encoder = _onnx_fsmn(session, encoder_conf)
    model.eval()
    return model, frontend


def _onnx_fsmn(session, encoder_conf: dict):
    """Stands in for funasr's FSMN encoder: ``(feats, cache) -> scores``, FSMN caches kept in
    ``cache`` under the keys funasr's own encoder uses."""
    import numpy as np
    import torch

    layers = int(encoder_conf["fsmn_layers"])
    cache_shape = (1, int(encoder_conf["proj_dim"]), int(encoder_conf["lorder"]) - 1, 1)

    class OnnxFsmn(torch.nn.Module):
        def forward(self, feats, cache: dict):
            inputs = {"speech": feats.detach().cpu().numpy().astype(np.float32)}
            for i in range(layers):
                state = cache.get(f"cache_layer_{i}")
                inputs[f"in_cache{i}"] = np.zeros(cache_shape, dtype=np.float32) if state is None else state
            outputs = session.run(None, inputs)
            for i in range(layers):
                cache[f"cache_layer_{i}"] = outputs[1 + i]
            return torch.from_numpy(outputs[0])

    return OnnxFsmn()
