"""The profile registry and the offline profile's weights."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

import contract
from pipeline import profiles, whisper
from pipeline.errors import EngineMissingError, ModelNotReadyError, UnknownProfileError
from pipeline.profiles import EngineConfig, Profile, available_profiles, load_engine, register_profile
from pipeline.stages import Engine


def test_known_profiles(tmp_path):
    assert {"offline", "funasr"} <= set(available_profiles())
    with pytest.raises(UnknownProfileError, match="offline"):
        load_engine("nope", EngineConfig(model_dir=tmp_path, cache_dir=tmp_path))


def test_missing_engine_package_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(contract.PROFILES, "elsewhere",
                        contract.ProfileInfo("elsewhere", "pipeline.no_such_module", "pip install 'tingxie[x]'", ("en",)))
    with pytest.raises(EngineMissingError, match=r"pip install 'tingxie\[x\]'"):
        load_engine("elsewhere", EngineConfig(model_dir=tmp_path, cache_dir=tmp_path))


@dataclass(frozen=True)
class MineOptions:
    depth: int = 2


def test_a_registered_profile_loads_through_the_registry(monkeypatch, tmp_path):
    monkeypatch.setattr(profiles, "_REGISTERED", {})
    configs = []

    def load(config):
        configs.append(config)
        return Engine(name="mine", vad=None, asr=None)

    register_profile("mine", Profile(options=MineOptions, load=load))
    assert "mine" in available_profiles()
    config = EngineConfig(model_dir=tmp_path, cache_dir=tmp_path, device="cuda:1", options=MineOptions(depth=3))
    assert load_engine("mine", config).name == "mine"
    assert configs == [config]
    load_engine("mine", EngineConfig(model_dir=tmp_path, cache_dir=tmp_path))  # no options: the defaults
    assert configs[-1].options == MineOptions(depth=2)
    with pytest.raises(TypeError, match="MineOptions"):
        load_engine("mine", EngineConfig(model_dir=tmp_path, cache_dir=tmp_path, options={"depth": "3"}))


def test_weights_are_joined_once_and_verified(tmp_path):
    model_dir = whisper.prepare_whisper_base(tmp_path)
    assert model_dir == tmp_path / "whisper-base"
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.json"]
    assert (model_dir / "model.bin").stat().st_size == 94_371_840 + 50_845_767
    stamp = (model_dir / "model.bin").stat().st_mtime_ns
    assert whisper.prepare_whisper_base(tmp_path) == model_dir
    assert (model_dir / "model.bin").stat().st_mtime_ns == stamp  # not joined again
    assert [p.name for p in tmp_path.iterdir()] == ["whisper-base"]  # no temporary left


def test_checksum_mismatch_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(whisper.WHISPER_BASE_SHA256, "model.bin", "0" * 64)
    with pytest.raises(ModelNotReadyError, match="does not match its checksum"):
        whisper.prepare_whisper_base(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.subprocess
def test_two_processes_preparing_at_once_agree(tmp_path):
    code = "import sys; from pathlib import Path; from pipeline.whisper import prepare_whisper_base; " \
           "print(prepare_whisper_base(Path(sys.argv[1])))"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outputs == {str(tmp_path / "whisper-base")}
    assert [p.name for p in tmp_path.iterdir()] == ["whisper-base"]
    assert (tmp_path / "whisper-base" / "model.bin").stat().st_size == 94_371_840 + 50_845_767


@pytest.mark.subprocess
def test_importing_the_pipeline_loads_no_model_runtime():
    code = "import sys, pipeline, pipeline.profiles, pipeline.stages, pipeline.run, pipeline.feed, pipeline.batching, " \
           "pipeline.recognition, pipeline.sentences; " \
           "print(sorted(m for m in ('numpy', 'ctranslate2', 'onnxruntime', 'torch', 'faster_whisper') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.subprocess
def test_the_registry_imports_a_profile_only_when_asked():
    """No import cycle between the registry and the profiles: a profile's module is named, not imported."""
    code = "import sys, pipeline.profiles as p; print(sorted(m for m in sys.modules if m.startswith(('pipeline.offline', " \
           "'pipeline.funasr')))); p.get_profile('funasr'); print('pipeline.funasr.profile' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "True"]
