"""CAM++ speaker embeddings for the funasr profile's diarization: the model FunASR's own
pipeline uses (``spk_model="cam++"``, ModelScope ``iic/speech_campplus_sv_zh-cn_16k-common``),
through funasr's model class and its feature code (80-band Kaldi fbank, mean-normalised per
clip, as ``funasr.models.campplus.utils.extract_feature`` computes it).

Clips of equal length go through the network together; clips of different lengths never share
a batch, so no clip's statistics pooling sees another's padding.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy as np

# FunASR cuts speech into 1.5 s chunks every 0.75 s for CAM++ (sv_chunk); the diarizer does the same.
WINDOW_MS = 1500
# Clips per forward pass.
BATCH_CLIPS = 64


class CampPlusSpeaker:
    """:class:`~pipeline.stages.SpeakerModel` for a CAM++ directory (``config.yaml`` naming
    ``CAMPPlus``, weights in the file ``configuration.json`` names, ``campplus_cn_common.bin``).

    ``same_speaker_distance``: FunASR merges two speakers whose centres are closer than cosine
    similarity 0.78 after its spectral clustering; between single 1.5 s chunks, as average linkage
    compares them, one voice scores lower than between centres, so the threshold here is set
    wider, 0.5 (similarity 0.5). It was not measured on the real weights, which are not on
    PyPI; ``min_speakers``/``max_speakers`` or ``num_speakers`` override the estimate.
    """

    window_ms = WINDOW_MS
    same_speaker_distance = 0.5

    def __init__(self, model_dir: Path, *, device: str = "cpu"):
        # torch and funasr only in the worker that runs this model (web and an offline worker never load them)
        import torch
        from funasr import AutoModel

        self.model_dir = Path(model_dir)
        model, kwargs = AutoModel.build_model(
            model=str(self.model_dir),
            device=device,
            disable_update=True,
            ncpu=max(1, torch.get_num_threads()),
            log_level="ERROR",
        )
        self._model = model.eval()
        self._device = kwargs["device"]  # funasr falls back to cpu when CUDA is absent
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        return str(self._device)

    def embed(self, clips: Sequence["np.ndarray"]) -> "np.ndarray":
        # numpy, torch and funasr only in the worker that runs this model (importing the pipeline loads none)
        import numpy as np
        import torch
        from funasr.models.campplus.utils import extract_feature

        out: list[np.ndarray | None] = [None] * len(clips)
        by_length: dict[int, list[int]] = {}
        for index, clip in enumerate(clips):
            by_length.setdefault(len(clip), []).append(index)
        for indices in by_length.values():
            for first in range(0, len(indices), BATCH_CLIPS):
                chosen = indices[first:first + BATCH_CLIPS]
                audio = [torch.from_numpy(np.asarray(clips[i], dtype=np.float32)) for i in chosen]
                features, _, _ = extract_feature(audio)
                with self._lock, torch.inference_mode():
                    embeddings = self._model(features.to(device=self._device, dtype=torch.float32))
                    embeddings = torch.nn.functional.normalize(embeddings.float(), dim=1)
                for i, row in zip(chosen, embeddings.cpu().numpy()):
                    out[i] = row
        if not clips:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(out).astype(np.float32)
