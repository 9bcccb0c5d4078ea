"""A CAM++ speaker-model directory with random weights, shaped like FunASR's
``iic/speech_campplus_sv_zh-cn_16k-common`` (``config.yaml`` naming ``CAMPPlus``,
``configuration.json`` whose ``file_path_metas`` name the config and the weights file
``campplus_cn_common.bin``), built with funasr's own model class, so the funasr profile loads it
through exactly the path it uses for the real model. Its embeddings tell no voices apart; shapes
and plumbing are real.

The network is CAM++'s (FCM head, three dense TDNN blocks of 12, 24 and 16 layers, statistics
pooling) at a fraction of the width: growth rate 8 and 32 initial channels instead of 32 and 128,
32-dimensional embeddings instead of 192.
"""
from __future__ import annotations

import json
from pathlib import Path

CAMPP_ID = "iic/speech_campplus_sv_zh-cn_16k-common"
WEIGHTS = "campplus_cn_common.bin"


def build_campplus(model_dir: Path, *, seed: int = 0) -> Path:
    """Write the directory (created if needed) and return it."""
    import torch
    from omegaconf import OmegaConf
    from funasr.register import tables
    import funasr.models.campplus.model  # noqa: F401  (registers CAMPPlus)

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model_conf = {
        "feat_dim": 80,
        "embedding_size": 32,
        "growth_rate": 8,
        "bn_size": 2,
        "init_channels": 32,
        "config_str": "batchnorm-relu",
        "memory_efficient": True,
        "output_level": "segment",
    }
    OmegaConf.save(OmegaConf.create({"model": "CAMPPlus", "model_conf": model_conf}), model_dir / "config.yaml")
    (model_dir / "configuration.json").write_text(
        json.dumps(
            {
                "framework": "pytorch",
                "task": "speaker-verification",
                "model": {"type": "funasr"},
                "pipeline": {"type": "funasr-pipeline"},
                "file_path_metas": {"init_param": WEIGHTS, "config": "config.yaml"},
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    torch.manual_seed(seed)
    model = tables.model_classes.get("CAMPPlus")(**model_conf)
    torch.save(model.state_dict(), model_dir / WEIGHTS)
    return model_dir
