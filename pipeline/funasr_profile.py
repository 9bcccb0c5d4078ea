"""The ``funasr`` profile: FSMN-VAD, Paraformer-large (SeACo hotwords and timestamps by default),
CT-Transformer punctuation and wetext's FST ITN, the model set FunASR's offline runtime serves.

Models are named by ModelScope id or by local directory (``EngineConfig.options``: ``vad``,
``asr``, ``punc``) and looked up under ``EngineConfig.model_dir/<id>``, the layout
``tingxie models download --profile funasr`` writes. Nothing is ever downloaded here: a missing
model is a :class:`~pipeline.errors.ModelNotReadyError` naming that command.

Importing this module loads neither torch nor funasr (``tingxie models list`` uses the catalog
below); :func:`load_funasr_engine` does.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pipeline.errors import EngineMissingError, ModelNotReadyError
from pipeline.profiles import EngineConfig, register_profile
from pipeline.stages import Engine, LazyModel

DOWNLOAD_COMMAND = "tingxie models download --profile funasr"


@dataclass(frozen=True)
class ModelChoice:
    """A model FunASR's runtime accepts for a stage, and what it can do."""

    model_id: str
    stage: str  # vad | asr | punc | spk
    backend: str  # pytorch | onnx
    note: str


CATALOG: tuple[ModelChoice, ...] = (
    ModelChoice("iic/speech_fsmn_vad_zh-cn-16k-common-pytorch", "vad", "pytorch", "FSMN-VAD (default)"),
    ModelChoice("damo/speech_fsmn_vad_zh-cn-16k-common-onnx", "vad", "onnx", "FSMN-VAD, ONNX export"),
    ModelChoice(
        "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
        "asr", "pytorch", "SeACo-Paraformer-large: hotwords and timestamps (default)",
    ),
    ModelChoice(
        "damo/speech_paraformer-large-vad-punc_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
        "asr", "pytorch", "Paraformer-large: timestamps, no hotwords",
    ),
    ModelChoice(
        "damo/speech_paraformer-large-contextual_asr_nat-zh-cn-16k-common-vocab8404",
        "asr", "pytorch", "Paraformer-large contextual: hotwords, estimated timestamps",
    ),
    ModelChoice(
        "iic/punc_ct-transformer_cn-en-common-vocab471067-large", "punc", "pytorch",
        "CT-Transformer large, zh+en (default)",
    ),
    ModelChoice(
        "damo/punc_ct-transformer_cn-en-common-vocab471067-large-onnx", "punc", "onnx",
        "CT-Transformer large, ONNX export",
    ),
    ModelChoice(
        "iic/speech_campplus_sv_zh-cn_16k-common", "spk", "pytorch",
        "CAM++ speaker embeddings, for diarize=true (loaded on the first such job)",
    ),
)

DEFAULTS = {
    "vad": "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
    "asr": "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    "punc": "iic/punc_ct-transformer_cn-en-common-vocab471067-large",
}

# The speaker model (``spk`` option, TINGXIE_MODEL_SPK) is looked for only when a job asks for
# speakers, so a worker without it serves every other job; it is not among DEFAULTS for that reason.
SPEAKER_MODEL = "iic/speech_campplus_sv_zh-cn_16k-common"

# ModelScope moved the ``damo`` models to ``iic``; a directory under either owner is the same model.
_OWNER_ALIASES = {"damo": "iic", "iic": "damo"}


def model_ids(options: dict | None = None) -> dict[str, str]:
    """The model (id or directory) each stage uses: ``options`` over :data:`DEFAULTS`."""
    options = options or {}
    return {stage: str(options.get(stage) or default) for stage, default in DEFAULTS.items()}


def candidate_dirs(model: str, model_dir: Path) -> list[Path]:
    """Where ``model`` (an id or a directory) may lie, in the order they are tried."""
    path = Path(model).expanduser()
    if path.is_absolute() or model.startswith((".", "~")):
        return [path]
    candidates = [Path(model_dir) / model]
    owner, _, name = model.partition("/")
    if owner in _OWNER_ALIASES and name:
        candidates.append(Path(model_dir) / _OWNER_ALIASES[owner] / name)
    if path.is_dir() and path not in candidates:
        candidates.append(path)  # a relative directory given on the command line
    return candidates


def is_ready(directory: Path) -> bool:
    """A model directory is usable when it has its config and weights (PyTorch or ONNX, or the
    file ``configuration.json`` names, as CAM++'s ``campplus_cn_common.bin``)."""
    return (directory / "config.yaml").is_file() and any(
        (directory / name).is_file()
        for name in ("model.pt", "model.onnx", "model_quant.onnx", *_named_weights(directory))
    )


def _named_weights(directory: Path) -> list[str]:
    try:
        metas = json.loads((directory / "configuration.json").read_text(encoding="utf-8")).get("file_path_metas", {})
    except (OSError, ValueError, AttributeError):
        return []
    init_param = metas.get("init_param") if isinstance(metas, dict) else None
    return [init_param] if isinstance(init_param, str) else []


def resolve_model(stage: str, model: str, model_dir: Path) -> Path:
    """The directory holding ``model``; ModelNotReadyError when it is not there."""
    candidates = candidate_dirs(model, model_dir)
    for directory in candidates:
        if is_ready(directory):
            return directory
    raise ModelNotReadyError(
        f"The FunASR {stage} model {model!r} is not in {candidates[0]}: run `{DOWNLOAD_COMMAND}"
        f" --dir {Path(model_dir)}` to fetch it, or name a local model directory.",
        detail="looked in: " + ", ".join(str(c) for c in candidates),
    )


def _require_engines() -> None:
    missing = [name for name in ("torch", "funasr", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise EngineMissingError(
            f"The 'funasr' profile needs {', '.join(missing)}: install torch (the CUDA build on GPU hosts), "
            "then pip install 'tingxie[funasr]'."
        )


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return str(value).lower() not in ("0", "false", "no", "off")


@register_profile("funasr")
def load_funasr_engine(config: EngineConfig) -> Engine:
    """Load VAD, ASR, punctuation and ITN once; the worker keeps the engine for every job.

    Options (``EngineConfig.options``): ``vad``, ``asr``, ``punc`` (ModelScope id or directory),
    ``fp16`` (float16 autocast on CUDA, default on), ``max_span_ms`` (longest VAD span, default
    60000), ``max_batch_s`` (padded seconds per GPU forward, default 600), ``cpu_workers`` (VAD and
    ITN in that many helper processes, and punctuation too on a CPU-only host, for a worker running
    jobs concurrently; default 0: in this process), ``spk`` (the speaker model for diarization,
    ModelScope id or directory, default :data:`SPEAKER_MODEL`; looked for on the first job that
    asks for speakers).
    """
    _require_engines()
    options = dict(config.options)
    ids = model_ids(options)
    # Check every directory first, so one message names everything missing before any load.
    dirs: dict[str, Path] = {}
    problems: list[ModelNotReadyError] = []
    for stage, model in ids.items():
        try:
            dirs[stage] = resolve_model(stage, model, config.model_dir)
        except ModelNotReadyError as exc:
            problems.append(exc)
    if problems:
        if len(problems) == 1:
            raise problems[0]
        raise ModelNotReadyError(
            " ".join(p.message for p in problems), detail="; ".join(p.detail for p in problems)
        )

    from pipeline.funasr_asr import ParaformerAsr
    from pipeline.funasr_punc import CtPunc
    from pipeline.funasr_vad import FsmnVad
    from pipeline.itn import WetextItn

    device = config.device or "cpu"
    max_span_ms = int(options.get("max_span_ms", 60_000))
    cpu_workers = int(options.get("cpu_workers", 0))
    # VAD stays on the CPU, as in FunASR's runtime: its network is tiny and its detection state
    # machine reads one score per 10 ms frame, which on a GPU would be one sync per frame.
    if cpu_workers > 0:
        from pipeline.funasr_pool import CpuHelpers

        helpers = CpuHelpers(dirs["vad"], dirs["punc"], processes=cpu_workers, max_span_ms=max_span_ms)
        vad = helpers.vad
        # On a GPU the punctuation network is fast and stays here; on a CPU-only host the
        # helpers take it too (its window loop would hold this process's GIL).
        punc = CtPunc(dirs["punc"], device=device) if device.startswith("cuda") else helpers.punc
        itn = helpers.itn
    else:
        vad = FsmnVad(dirs["vad"], device="cpu", max_span_ms=max_span_ms)
        punc = CtPunc(dirs["punc"], device=device)
        itn = WetextItn()
    asr = ParaformerAsr(
        dirs["asr"],
        device=device,
        fp16=_flag(options.get("fp16"), True),
        max_batch_s=float(options.get("max_batch_s", 600.0)),
    )
    return Engine(
        name="funasr",
        vad=vad,
        asr=asr,
        punc=punc,
        itn=itn,
        batch_seconds=config.batch_seconds,
        speaker=LazyModel(partial(_load_speaker, str(options.get("spk") or SPEAKER_MODEL), Path(config.model_dir), device)),
    )


def _load_speaker(model: str, model_dir: Path, device: str):
    """CAM++ for ``Engine.speaker``; the missing-model error names the one model to fetch."""
    from pipeline.funasr_speaker import CampPlusSpeaker

    try:
        directory = resolve_model("spk", model, model_dir)
    except ModelNotReadyError as exc:
        where = candidate_dirs(model, model_dir)[0]
        if where == Path(model).expanduser():  # named by directory: nothing to download
            raise
        raise ModelNotReadyError(
            f"Speaker labels need the FunASR speaker model {model!r}, which is not in {where}: run"
            f" `{DOWNLOAD_COMMAND} --model {model} --dir {Path(model_dir)}` to fetch it, or name a local"
            " model directory (TINGXIE_MODEL_SPK).",
            detail=exc.detail,
        ) from exc
    return CampPlusSpeaker(directory, device=device)
