"""``tingxie models list`` and ``download`` as a user runs them (a real subprocess)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.settings import REPO

DOWNLOAD = "tingxie models download --profile funasr"


def tingxie(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    environment.update(TINGXIE_DATA_DIR=str(data_dir), **env)
    return subprocess.run([sys.executable, "-m", "cli", "models", *args], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_list_names_the_download_command_when_models_are_missing(tmp_path):
    result = tingxie("list", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    funasr = result.stdout[result.stdout.index("funasr "):]
    assert "not ready" in funasr.splitlines()[0]
    assert str(tmp_path / "models") in funasr
    assert funasr.count("missing") >= 3
    if "install" not in funasr.splitlines()[0]:  # engines present: the fix is the download
        assert DOWNLOAD in funasr
    assert result.stdout.startswith("offline ")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    pytest.importorskip("torch", reason="building the tiny FunASR models needs torch")
    pytest.importorskip("funasr", reason="building the tiny FunASR models needs funasr")
    pytest.importorskip("onnxscript", reason="exporting the tiny ONNX models needs onnxscript")
    from tests.support.funasr_models import cached_tiny_models

    return cached_tiny_models()  # read only


@pytest.mark.funasr
def test_list_finds_models_in_the_model_dir(tiny_model_dir, tmp_path):
    result = tingxie("list", data_dir=tmp_path, TINGXIE_MODEL_DIR=str(tiny_model_dir))
    assert result.returncode == 0, result.stderr
    funasr = result.stdout[result.stdout.index("funasr "):]
    assert funasr.splitlines()[0].split() == ["funasr", "ready"]
    for stage in ("vad", "asr", "punc"):
        assert any(line.split()[:2] == [stage, "ok"] for line in funasr.splitlines() if line.strip())
    # The ONNX twins are found too, as accepted alternatives.
    assert "ok       damo/speech_fsmn_vad_zh-cn-16k-common-onnx" in funasr


@pytest.mark.funasr
def test_list_follows_the_configured_model(tiny_model_dir, tmp_path):
    asr = tiny_model_dir / "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch"
    result = tingxie("list", data_dir=tmp_path, TINGXIE_MODEL_DIR=str(tmp_path / "empty"), TINGXIE_MODEL_ASR=str(asr))
    lines = result.stdout[result.stdout.index("funasr "):].splitlines()
    assert any(line.split()[:3] == ["asr", "ok", str(asr)] for line in lines)
    assert any(line.split()[:2] == ["vad", "missing"] for line in lines)


@pytest.mark.funasr
def test_download_skips_models_already_present(tiny_model_dir, tmp_path):
    """Present models are not fetched again (this runs with no route to ModelScope)."""
    result = tingxie("download", "--profile", "funasr", "--dir", str(tiny_model_dir), data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already in") == 3
    assert f"funasr models ready in {tiny_model_dir}" in result.stdout


def test_download_refuses_local_directories(tmp_path):
    result = tingxie("download", "--profile", "funasr", "--dir", str(tmp_path), "--model", "./mine", data_dir=tmp_path)
    assert result.returncode == 2
    assert "local directories are used as they are" in result.stderr
