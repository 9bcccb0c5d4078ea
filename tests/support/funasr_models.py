"""FunASR model directories with random weights, for tests and benchmarks that download nothing.

Each directory is laid out like its ModelScope original (``config.yaml``, ``configuration.json``,
``model.pt``, ``am.mvn``, ``tokens.json``, ``seg_dict``; ``model.onnx`` for the ONNX exports) and
is built with funasr's own model classes, so tingxie loads it through exactly the loader it uses
for the real models. The text they produce is meaningless; shapes, timing and plumbing are real.

``size="large"`` gives the Paraformer-large architecture (50-layer SAN-M encoder, 16-layer
decoder, 512 wide, 8404 tokens): the same arithmetic as the real model, for GPU benchmarks.

Needs torch and funasr (the ``funasr`` extra); the VAD and punctuation ONNX exports need onnx.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

# ModelScope ids the fixtures stand in for (the profile's defaults).
ASR_ID = "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch"
VAD_ID = "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch"
VAD_ONNX_ID = "damo/speech_fsmn_vad_zh-cn-16k-common-onnx"
PUNC_ID = "iic/punc_ct-transformer_cn-en-common-vocab471067-large"
PUNC_ONNX_ID = "damo/punc_ct-transformer_cn-en-common-vocab471067-large-onnx"

# Characters of the reference texts in tests/data/speech, so hotwords such as 达摩院 map to
# known tokens rather than <unk>.
_SEED_TEXT = "欢迎大家来体验达摩院推出的语音识别模型一二三四五六七八九十百千万零点年月日号是了我你他们这个"
_SEED_WORDS = ["comfy@@", "ui", "and", "so", "my", "the", "you", "for", "what", "can", "do"]

_SIZES = {
    # encoder / decoder widths and depths
    "tiny": dict(d=32, heads=2, ffn=64, enc_blocks=2, dec_blocks=1, seaco_ffn=32, seaco_blocks=1),
    "large": dict(d=512, heads=4, ffn=2048, enc_blocks=50, dec_blocks=16, seaco_ffn=1024, seaco_blocks=6),
}


def build_tiny_models(root: Path) -> dict[str, Path]:
    """Build the profile's default model set under ``root`` in ModelScope's layout.

    Returns ``{"asr", "vad", "vad_onnx", "punc", "punc_onnx"}`` -> directory. ``root`` is what
    tingxie calls the model directory: ``root/<ModelScope id>`` holds each model.
    """
    root = Path(root)
    paths = {
        "asr": build_seaco_paraformer(root / ASR_ID, size="tiny"),
        "vad": build_fsmn_vad(root / VAD_ID),
        "punc": build_ct_transformer(root / PUNC_ID),
    }
    paths["vad_onnx"] = export_onnx(paths["vad"], root / VAD_ONNX_ID)
    paths["punc_onnx"] = export_onnx(paths["punc"], root / PUNC_ONNX_ID)
    return paths


CACHE_ROOT = Path(__file__).resolve().parents[1] / "artifacts"


def cached_tiny_models(cache_root: Path = CACHE_ROOT) -> Path:
    """The model directory of ``build_tiny_models``, built once per machine and reused while this
    file and funasr's version stay the same (the key of its folder under tests/artifacts/).
    Safe from several processes at once (pytest-xdist workers): a file lock, a build in a
    temporary folder, a rename."""
    import funasr
    from filelock import FileLock

    key = hashlib.sha256(Path(__file__).read_bytes() + funasr.__version__.encode()).hexdigest()[:16]
    target = cache_root / f"funasr-tiny-{key}"
    if target.is_dir():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not target.is_dir():
            building = cache_root / f".building-{key}-{os.getpid()}"
            shutil.rmtree(building, ignore_errors=True)
            build_tiny_models(building)
            os.replace(building, target)
    return target


def build_large_models(root: Path, *, jieba: bool = True) -> dict[str, Path]:
    """The default model set at full size, random weights, for benchmarks: Paraformer-large
    (SeACo), FSMN-VAD (its real size), CT-Transformer large-sized (see build_ct_transformer)."""
    root = Path(root)
    return {
        "asr": build_seaco_paraformer(root / ASR_ID, size="large"),
        "vad": build_fsmn_vad(root / VAD_ID),
        "punc": build_ct_transformer(root / PUNC_ID, size="large", jieba=jieba),
    }


def _write_cmvn(path: Path, dim: int, mean: float, scale: float) -> None:
    """Kaldi nnet-format global CMVN, as ``am.mvn`` files are written (shift, then rescale)."""
    shift = " ".join([f"{-mean:.6f}"] * dim)
    rescale = " ".join([f"{scale:.6f}"] * dim)
    path.write_text(
        "<Nnet>\n"
        f"<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {shift} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {rescale} ]\n"
        "</Nnet>\n",
        encoding="utf-8",
    )


def _write_configuration(model_dir: Path, task: str, file_path_metas: dict) -> None:
    (model_dir / "configuration.json").write_text(
        json.dumps(
            {
                "framework": "pytorch",
                "task": task,
                "model": {"type": "funasr"},
                "pipeline": {"type": "funasr-pipeline"},
                "file_path_metas": file_path_metas,
            },
            ensure_ascii=False,
            indent=2,
        ),
        encoding="utf-8",
    )


def _write_yaml(path: Path, config: dict) -> None:
    from omegaconf import OmegaConf

    OmegaConf.save(OmegaConf.create(config), path)


def _asr_vocab(size: str) -> list[str]:
    tokens = ["<blank>", "<s>", "</s>"]
    if size == "large":
        # 8404 entries like the real vocabulary: CJK characters, then <unk>.
        tokens += [chr(0x4E00 + i) for i in range(8404 - 4)]
    else:
        seen: set[str] = set()
        for ch in _SEED_TEXT:
            if ch not in seen:
                seen.add(ch)
                tokens.append(ch)
        tokens += _SEED_WORDS
    tokens.append("<unk>")
    return tokens


def build_seaco_paraformer(model_dir: Path, *, size: str = "tiny", seed: int = 0) -> Path:
    """A SeACo-Paraformer directory (``SeacoParaformer``, CIF-V3 predictor with timestamps)."""
    return _build_paraformer(model_dir, "SeacoParaformer", size=size, seed=seed)


def build_timestamp_paraformer(model_dir: Path, *, size: str = "tiny", seed: int = 0) -> Path:
    """A Paraformer-large-vad-punc-shaped directory (``BiCifParaformer``: timestamps, no hotwords)."""
    return _build_paraformer(model_dir, "BiCifParaformer", size=size, seed=seed)


def _build_paraformer(model_dir: Path, model_class: str, *, size: str, seed: int) -> Path:
    import torch
    from funasr.register import tables
    import funasr.models.seaco_paraformer.model  # noqa: F401  (registers the classes)

    s = _SIZES[size]
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    tokens = _asr_vocab(size)
    (model_dir / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    # seg_dict splits hotwords into model units (characters for Chinese), as the real one does.
    seg_lines = [f"{t} {t}" for t in tokens[3:-1] if not t.endswith("@@")]
    seg_lines.append("comfyui comfy@@ ui")
    (model_dir / "seg_dict").write_text("\n".join(seg_lines) + "\n", encoding="utf-8")
    _write_cmvn(model_dir / "am.mvn", 560, mean=8.0, scale=0.3)

    d = s["d"]
    config = {
        "model": model_class,
        "model_conf": {
            "ctc_weight": 0.0,
            "lsm_weight": 0.1,
            "length_normalized_loss": True,
            "predictor_weight": 1.0,
            "predictor_bias": 1,
            "sampling_ratio": 0.75,
            "inner_dim": d,
            "bias_encoder_type": "lstm",
            "bias_encoder_bid": False,
            "seaco_lsm_weight": 0.1,
            "seaco_length_normalized_loss": True,
            "train_decoder": True,
            "NO_BIAS": len(tokens) - 2,
        },
        "encoder": "SANMEncoder",
        "encoder_conf": {
            "output_size": d,
            "attention_heads": s["heads"],
            "linear_units": s["ffn"],
            "num_blocks": s["enc_blocks"],
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "attention_dropout_rate": 0.1,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 11,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
        },
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": {
            "attention_heads": s["heads"],
            "linear_units": s["ffn"],
            "num_blocks": s["dec_blocks"],
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "self_attention_dropout_rate": 0.1,
            "src_attention_dropout_rate": 0.1,
            "att_layer_num": s["dec_blocks"],
            "kernel_size": 11,
            "sanm_shfit": 0,
        },
        "seaco_decoder": "ParaformerSANMDecoder",
        "seaco_decoder_conf": {
            "attention_heads": s["heads"],
            "linear_units": s["seaco_ffn"],
            "num_blocks": s["seaco_blocks"],
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "self_attention_dropout_rate": 0.1,
            "src_attention_dropout_rate": 0.1,
            "att_layer_num": s["seaco_blocks"],
            "kernel_size": 21,
            "sanm_shfit": 0,
            "use_output_layer": False,
            "wo_input_layer": True,
        },
        "predictor": "CifPredictorV3",
        "predictor_conf": {
            "idim": d,
            "threshold": 1.0,
            "l_order": 1,
            "r_order": 1,
            "tail_threshold": 0.45,
            "smooth_factor2": 0.25,
            "noise_threshold2": 0.01,
            "upsample_times": 3,
            "use_cif1_cnn": False,
            "upsample_type": "cnn_blstm",
        },
        "frontend": "WavFrontend",
        "frontend_conf": {
            "fs": 16000,
            "window": "hamming",
            "n_mels": 80,
            "frame_length": 25,
            "frame_shift": 10,
            "lfr_m": 7,
            "lfr_n": 6,
            "dither": 0.0,
        },
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
    }
    if model_class != "SeacoParaformer":
        for key in ("seaco_decoder", "seaco_decoder_conf"):
            del config[key]
        for key in ("inner_dim", "bias_encoder_type", "bias_encoder_bid", "seaco_lsm_weight",
                    "seaco_length_normalized_loss", "train_decoder", "NO_BIAS"):
            del config["model_conf"][key]
    _write_yaml(model_dir / "config.yaml", config)
    _write_configuration(
        model_dir,
        "auto-speech-recognition",
        {
            "init_param": "model.pt",
            "config": "config.yaml",
            "tokenizer_conf": {"token_list": "tokens.json", "seg_dict_file": "seg_dict"},
            "frontend_conf": {"cmvn_file": "am.mvn"},
        },
    )

    torch.manual_seed(seed)
    model_conf = dict(config["model_conf"])
    for key in ("encoder", "encoder_conf", "decoder", "decoder_conf", "seaco_decoder",
                "seaco_decoder_conf", "predictor", "predictor_conf"):
        if key in config:
            model_conf[key] = config[key]
    model = tables.model_classes.get(model_class)(
        vocab_size=len(tokens), input_size=560, **model_conf
    )
    with torch.no_grad():
        # Random weights fire the CIF about every other frame; steer both CIF heads to about
        # four tokens a second, the rate of real Mandarin, so timestamps look like real ones.
        # The second head fires on frames upsampled three times, so at a third of the rate.
        rate = 0.25
        for head, head_rate in ((model.predictor.cif_output, rate), (model.predictor.cif_output2, rate / 3)):
            head.weight.mul_(0.01)
            head.bias.fill_(math.log(head_rate / (1 - head_rate)))
    torch.save(model.state_dict(), model_dir / "model.pt")
    return model_dir


def build_fsmn_vad(model_dir: Path, *, seed: int = 0) -> Path:
    """An FSMN-VAD directory with the real encoder shape.

    The random network is steered to call every frame speech; ``decibel_thres`` then makes the
    decision on frame energy, so the tiny VAD still finds the pauses in real recordings.
    """
    import torch
    from funasr.register import tables
    import funasr.models.fsmn_vad_streaming.model  # noqa: F401

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    _write_cmvn(model_dir / "am.mvn", 400, mean=8.0, scale=0.3)
    encoder_conf = {
        "input_dim": 400,
        "input_affine_dim": 140,
        "fsmn_layers": 4,
        "linear_dim": 250,
        "proj_dim": 128,
        "lorder": 20,
        "rorder": 0,
        "lstride": 1,
        "rstride": 0,
        "output_affine_dim": 140,
        "output_dim": 248,
    }
    model_conf = {
        "sample_rate": 16000,
        "detect_mode": 1,
        "snr_mode": 0,
        "max_end_silence_time": 800,
        "max_start_silence_time": 3000,
        "do_start_point_detection": True,
        "do_end_point_detection": True,
        "window_size_ms": 200,
        "sil_to_speech_time_thres": 150,
        "speech_to_sil_time_thres": 150,
        "speech_2_noise_ratio": 1.0,
        "do_extend": 1,
        "lookback_time_start_point": 200,
        "lookahead_time_end_point": 100,
        "max_single_segment_time": 60000,
        "snr_thres": -100.0,
        "noise_frame_num_used_for_snr": 100,
        "decibel_thres": -30.0,  # dB of the frame energy, samples in [-1, 1]
        "speech_noise_thres": 0.6,
        "fe_prior_thres": 0.0001,
        "silence_pdf_num": 1,
        "sil_pdf_ids": [0],
        "speech_noise_thresh_low": -0.1,
        "speech_noise_thresh_high": 0.3,
        "output_frame_probs": False,
        "frame_in_ms": 10,
        "frame_length_ms": 25,
    }
    config = {
        "frontend": "WavFrontendOnline",
        "frontend_conf": {
            "fs": 16000,
            "window": "hamming",
            "n_mels": 80,
            "frame_length": 25,
            "frame_shift": 10,
            "dither": 0.0,
            "lfr_m": 5,
            "lfr_n": 1,
        },
        "model": "FsmnVADStreaming",
        "model_conf": model_conf,
        "encoder": "FSMN",
        "encoder_conf": encoder_conf,
    }
    _write_yaml(model_dir / "config.yaml", config)
    _write_configuration(
        model_dir,
        "voice-activity-detection",
        {"init_param": "model.pt", "config": "config.yaml", "frontend_conf": {"cmvn_file": "am.mvn"}},
    )
    torch.manual_seed(seed)
    model = tables.model_classes.get("FsmnVADStreaming")(
        encoder="FSMN", encoder_conf=encoder_conf, **model_conf
    )
    with torch.no_grad():
        out = model.encoder.out_linear2.linear
        out.weight.mul_(0.01)
        out.bias.fill_(0.0)
        out.bias[0] = -8.0  # silence pdf almost never wins: energy decides
    torch.save(model.state_dict(), model_dir / "model.pt")
    return model_dir


def build_ct_transformer(model_dir: Path, *, size: str = "tiny", jieba: bool = True, seed: int = 0) -> Path:
    """A CT-Transformer punctuation directory shaped like the large cn-en model (jieba words).

    ``size="large"``: 516 wide, 12 SAN-M layers, 12 heads: our estimate of the large model from
    its 1.05 GB file, not its published config; the vocabulary stays small, which changes no
    arithmetic (an embedding lookup costs the same in any table).
    ``jieba=False`` leaves out the jieba user dictionary: the model then reads characters, as
    FunASR's zh-only CT-Transformer does (more, shorter units; no jieba needed).
    """
    import torch
    from funasr.register import tables
    import funasr.models.ct_transformer.model  # noqa: F401

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    words = ["欢迎", "大家", "体验", "达摩院", "推出", "语音", "识别", "模型"]
    chars = sorted(set(_SEED_TEXT))
    tokens = ["<blank>", "<s>", "</s>"] + words + chars + [w for w in _SEED_WORDS if not w.endswith("@@")]
    tokens.append("<unk>")
    (model_dir / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    if jieba:
        (model_dir / "jieba_usr_dict").write_text("".join(f"{w} 10\n" for w in words), encoding="utf-8")
    punc_list = ["<unk>", "_", "，", "。", "？", "、"]
    d, heads, ffn, blocks = (32, 2, 64, 2) if size == "tiny" else (516, 12, 2048, 12)
    model_conf = {
        "ignore_id": 0,
        "embed_unit": d,
        "att_unit": d,
        "dropout_rate": 0.1,
        "punc_list": punc_list,
        "punc_weight": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        "sentence_end_id": 3,
    }
    encoder_conf = {
        "input_size": d,
        "output_size": d,
        "attention_heads": heads,
        "linear_units": ffn,
        "num_blocks": blocks,
        "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1,
        "attention_dropout_rate": 0.0,
        "input_layer": "pe",
        "pos_enc_class": "SinusoidalPositionEncoder",
        "normalize_before": True,
        "kernel_size": 11,
        "sanm_shfit": 0,
        "selfattention_layer_type": "sanm",
        "padding_idx": 0,
    }
    config = {
        "model": "CTTransformer",
        "model_conf": model_conf,
        "encoder": "SANMEncoder",
        "encoder_conf": encoder_conf,
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>"},
    }
    _write_yaml(model_dir / "config.yaml", config)
    _write_configuration(
        model_dir,
        "punctuation",
        {"init_param": "model.pt", "config": "config.yaml",
         "tokenizer_conf": {"token_list": "tokens.json"}, "jieba_usr_dict": "jieba_usr_dict"},
    )
    torch.manual_seed(seed)
    model = tables.model_classes.get("CTTransformer")(
        encoder="SANMEncoder", encoder_conf=encoder_conf, vocab_size=len(tokens), **model_conf
    )
    with torch.no_grad():
        # Mostly "no mark", some commas and full stops, so sentences get cut.
        model.decoder.weight.mul_(3.0 if size == "tiny" else 4.0)
        bias = [-9.0, 1.5, 0.3, 0.6, -1.0, -2.0] if size == "tiny" else [-9.0, 2.0, -0.5, 1.2, -1.0, -2.0]
        model.decoder.bias.copy_(torch.tensor(bias))
    torch.save(model.state_dict(), model_dir / "model.pt")
    return model_dir


def export_onnx(pytorch_dir: Path, onnx_dir: Path) -> Path:
    """Export ``pytorch_dir`` into an ONNX directory of the ModelScope ``-onnx`` shape
    (``model.onnx`` beside ``config.yaml``, ``am.mvn``, tokens).

    The graph is funasr's own export wrapper (``model.export()``: its input/output names and
    dynamic axes, which FunASR's ONNX runtimes read); only the call into torch differs from
    funasr's ``AutoModel.export``: the TorchScript exporter (``dynamo=False``), since torch's
    newer default cannot take funasr's ``dynamic_axes``.
    """
    import copy
    import shutil
    import warnings

    import torch
    from funasr import AutoModel

    onnx_dir = Path(onnx_dir)
    onnx_dir.mkdir(parents=True, exist_ok=True)
    auto = AutoModel(model=str(pytorch_dir), device="cpu", disable_update=True, disable_pbar=True,
                     log_level="ERROR")
    kwargs = copy.deepcopy({k: v for k, v in auto.kwargs.items() if k not in ("model", "tokenizer", "frontend")})
    wrapped = auto.model.export(**kwargs)  # rebuilds in place: this AutoModel is thrown away
    wrapped.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # Expected here, and only here: tracing funasr's graph warns where it reads tensors as
        # constants (torch.jit.TracerWarning), torch 2.13 calls the TorchScript exporter legacy (two
        # DeprecationWarnings), and its constant folding skips funasr's Slice ops (a UserWarning).
        # Under the suite's filterwarnings = error they would fail the build.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            wrapped,
            wrapped.export_dummy_inputs(),
            str(onnx_dir / "model.onnx"),
            do_constant_folding=True,
            opset_version=14,
            input_names=wrapped.export_input_names(),
            output_names=wrapped.export_output_names(),
            dynamic_axes=wrapped.export_dynamic_axes(),
            dynamo=False,
        )
    for name in ("config.yaml", "am.mvn", "tokens.json", "jieba_usr_dict"):
        if (Path(pytorch_dir) / name).exists():
            shutil.copy(Path(pytorch_dir) / name, onnx_dir / name)
    return onnx_dir


def funasr_vad_segments(model, frontend, pcm) -> list[tuple[int, int]]:
    """The reference tingxie's FSMN-VAD is held to: funasr's streaming ``inference`` fed the PCM
    file a minute at a time with its cache and the model's own end silence, as FsmnVad ran it
    before it had its own detector. The final call's chunk size exceeds the audio, so that on a
    file of whole minutes funasr does not split off an empty last piece (which skips its
    end-of-file handling). ``model``, ``frontend``: from ``AutoModel.build_model``."""
    import torch

    from pipeline.funasr.vad import CHUNK_MS

    stride = CHUNK_MS * pcm.sample_rate_hz // 1000
    segments: list[tuple[int, int]] = []
    cache: dict = {}
    with torch.inference_mode():
        for start in range(0, pcm.num_samples, stride):
            end = min(pcm.num_samples, start + stride)
            final = end == pcm.num_samples
            results, _ = model.inference(
                data_in=[torch.from_numpy(pcm.read_samples(start, end))], key=["pcm"],
                frontend=frontend, cache=cache, is_final=final,
                chunk_size=2 * CHUNK_MS if final else CHUNK_MS,
                max_end_silence_time=int(model.vad_opts.max_end_silence_time), device="cpu",
            )
            segments += [(int(s), int(e)) for s, e in results[0]["value"]]
    return segments
