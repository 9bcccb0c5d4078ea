"""The ``funasr`` profile: FSMN-VAD, Paraformer-large (SeACo hotwords and timestamps by default),
CT-Transformer punctuation and wetext's FST ITN, the model set FunASR's offline runtime serves.

Models are named by ModelScope id or by local directory (:class:`FunasrOptions`: ``vad``,
``asr``, ``punc``) and looked up under ``EngineConfig.model_dir/<id>``, the layout
``tingxie models download --profile funasr`` writes. Nothing is ever downloaded here: a missing
model is a :class:`~pipeline.errors.ModelNotReadyError` naming that command.

Importing this module loads neither torch nor funasr (``tingxie models list`` uses the catalog
below, the registry the options); :func:`load_funasr_engine` does.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from contract import PROFILES, Stage
from pipeline.errors import EngineMissingError, ModelNotReadyError
from pipeline.funasr.asr import ParaformerAsr
from pipeline.funasr.pool import CpuHelpers
from pipeline.funasr.punc import CtPunc
from pipeline.funasr.speaker import CampPlusSpeaker
from pipeline.funasr.vad import FsmnVad
from pipeline.itn import WetextItn
from pipeline.options import require
from pipeline.stages import Engine, EngineConfig, LazyModel, Profile

DOWNLOAD_COMMAND = "tingxie models download --profile funasr"


@dataclass(frozen=True)
class ModelChoice:
    """A model FunASR's runtime accepts for a stage, and what it can do."""

    model_id: str
    stage: Stage  # VAD, ASR, PUNC, or DIARIZE (the speaker model)
    backend: str  # pytorch | onnx
    note: str


CATALOG: tuple[ModelChoice, ...] = (
    ModelChoice("iic/speech_fsmn_vad_zh-cn-16k-common-pytorch", Stage.VAD, "pytorch", "FSMN-VAD (default)"),
    ModelChoice("damo/speech_fsmn_vad_zh-cn-16k-common-onnx", Stage.VAD, "onnx", "FSMN-VAD, ONNX export"),
    ModelChoice(
        "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
        Stage.ASR, "pytorch", "SeACo-Paraformer-large: hotwords and timestamps (default)",
    ),
    ModelChoice(
        "damo/speech_paraformer-large-vad-punc_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
        Stage.ASR, "pytorch", "Paraformer-large: timestamps, no hotwords",
    ),
    ModelChoice(
        "damo/speech_paraformer-large-contextual_asr_nat-zh-cn-16k-common-vocab8404",
        Stage.ASR, "pytorch", "Paraformer-large contextual: hotwords, estimated timestamps",
    ),
    ModelChoice(
        "iic/punc_ct-transformer_cn-en-common-vocab471067-large", Stage.PUNC, "pytorch",
        "CT-Transformer large, zh+en (default)",
    ),
    ModelChoice(
        "damo/punc_ct-transformer_cn-en-common-vocab471067-large-onnx", Stage.PUNC, "onnx",
        "CT-Transformer large, ONNX export",
    ),
    ModelChoice(
        "iic/speech_campplus_sv_zh-cn_16k-common", Stage.DIARIZE, "pytorch",
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

# What Paraformer reads (the contract's catalogue): Mandarin, with the English words people say
# in it. A job asking for any other language fails (``unsupported_language``) rather than being
# read as Chinese.
LANGUAGES = PROFILES["funasr"].languages

# ModelScope moved the ``damo`` models to ``iic``; a directory under either owner is the same model.
_OWNER_ALIASES = {"damo": "iic", "iic": "damo"}


@dataclass(frozen=True)
class FunasrOptions:
    """The funasr profile's options, each read from a string by :func:`pipeline.options.parse_options`.

    vad, asr, punc: the model for that stage, a ModelScope id (looked up under the model
        directory, as ``tingxie models download`` lays it out) or a local directory; default:
        the models FunASR's runtime serves (:data:`DEFAULTS`; others in :data:`CATALOG`).
    fp16: float16 autocast for ASR on CUDA, features staying float32 (default True; no effect
        on the CPU).
    max_span_ms: longest VAD span in ms; longer speech is cut (default 60000).
    max_batch_s: padded seconds of audio in one ASR forward; a larger batch is split (default 600.0).
    cpu_workers: helper processes running VAD and ITN (and punctuation on a CPU-only host), for a
        worker running jobs concurrently (default 0: all in this process).
    spk: the speaker model for jobs that ask for speakers, a ModelScope id or a local directory
        (default :data:`SPEAKER_MODEL`, CAM++); looked for on the first such job only.
    """

    vad: str = DEFAULTS["vad"]
    asr: str = DEFAULTS["asr"]
    punc: str = DEFAULTS["punc"]
    fp16: bool = True
    max_span_ms: int = 60_000
    max_batch_s: float = 600.0
    cpu_workers: int = 0
    spk: str = SPEAKER_MODEL

    def __post_init__(self) -> None:
        require(self, "max_span_ms", self.max_span_ms >= 1, "a whole number of ms, at least 1")
        require(self, "max_batch_s", self.max_batch_s > 0, "a number of seconds above 0")
        require(self, "cpu_workers", self.cpu_workers >= 0, "a whole number of at least 0")


def model_ids(options: FunasrOptions | None = None) -> dict[str, str]:
    """The model (id or directory) each stage uses."""
    options = options or FunasrOptions()
    return {stage: getattr(options, stage) for stage in DEFAULTS}


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


def load_funasr_engine(config: EngineConfig) -> Engine:
    """Load VAD, ASR, punctuation and ITN once (``config.options``: :class:`FunasrOptions`); the
    worker keeps the engine for every job."""
    _require_engines()
    options: FunasrOptions = config.options
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

    device = config.device or "cpu"
    # VAD stays on the CPU, as in FunASR's runtime: its network is tiny and its detection state
    # machine reads one score per 10 ms frame, which on a GPU would be one sync per frame.
    if options.cpu_workers > 0:
        helpers = CpuHelpers(dirs["vad"], dirs["punc"], processes=options.cpu_workers,
                             max_span_ms=options.max_span_ms)
        vad = helpers.vad
        # On a GPU the punctuation network is fast and stays here; on a CPU-only host the
        # helpers take it too (its window loop would hold this process's GIL).
        punc = CtPunc(dirs["punc"], device=device) if device.startswith("cuda") else helpers.punc
        itn = helpers.itn
    else:
        vad = FsmnVad(dirs["vad"], device="cpu", max_span_ms=options.max_span_ms)
        punc = CtPunc(dirs["punc"], device=device)
        itn = WetextItn()
    asr = ParaformerAsr(
        dirs["asr"],
        device=device,
        fp16=options.fp16,
        max_batch_s=options.max_batch_s,
    )
    return Engine(
        name="funasr",
        vad=vad,
        asr=asr,
        punc=punc,
        itn=itn,
        batch_seconds=config.batch_seconds,
        languages=LANGUAGES,
        speaker=LazyModel(partial(_load_speaker, options.spk, Path(config.model_dir), device)),
    )


def _load_speaker(model: str, model_dir: Path, device: str):
    """CAM++ for ``Engine.speaker``; the missing-model error names the one model to fetch."""
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


PROFILE = Profile(options=FunasrOptions, load=load_funasr_engine)
