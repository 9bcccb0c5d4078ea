"""Profile options: one typed object per profile, read from the strings settings pass, refusing
unknown keys and values a field cannot take."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from pipeline import profiles
from pipeline.errors import PipelineError, ProfileOptionsError
from pipeline.funasr.profile import DEFAULTS, FunasrOptions
from pipeline.offline import OfflineOptions
from pipeline.options import parse_options
from pipeline.profiles import Profile, options_type, register_profile, split_profile_options
from tests.support.settings import REPO


def test_every_field_converts():
    offline = parse_options(OfflineOptions, {"beam_size": "3", "cpu_threads": "4", "compute_type": "float32",
                                             "speaker_threads": "2"})
    assert offline == OfflineOptions(beam_size=3, cpu_threads=4, compute_type="float32", speaker_threads=2)
    funasr = parse_options(FunasrOptions, {
        "vad": "damo/speech_fsmn_vad_zh-cn-16k-common-onnx", "asr": "/models/my-paraformer", "punc": "./punc",
        "fp16": "off", "max_span_ms": "30000", "max_batch_s": "120.5", "cpu_workers": "2", "spk": "/models/campplus",
    })
    assert funasr == FunasrOptions(
        vad="damo/speech_fsmn_vad_zh-cn-16k-common-onnx", asr="/models/my-paraformer", punc="./punc",
        fp16=False, max_span_ms=30_000, max_batch_s=120.5, cpu_workers=2, spk="/models/campplus",
    )
    assert [type(getattr(funasr, f.name)) for f in dataclasses.fields(funasr)] == [str, str, str, bool, int, float, int, str]


def test_nothing_given_is_the_defaults():
    assert parse_options(OfflineOptions, {}) == OfflineOptions(beam_size=5, cpu_threads=0, compute_type=None)
    assert parse_options(FunasrOptions, {}) == FunasrOptions()
    assert (FunasrOptions().vad, FunasrOptions().asr, FunasrOptions().punc) == (DEFAULTS["vad"], DEFAULTS["asr"], DEFAULTS["punc"])
    assert (FunasrOptions().fp16, FunasrOptions().max_span_ms, FunasrOptions().max_batch_s, FunasrOptions().cpu_workers) == \
        (True, 60_000, 600.0, 0)


@pytest.mark.parametrize("text,expected", [
    ("1", True), ("true", True), ("Yes", True), ("ON", True), (" on ", True),
    ("0", False), ("false", False), ("no", False), ("Off", False),
])
def test_booleans_take_the_usual_words(text, expected):
    assert parse_options(FunasrOptions, {"fp16": text}).fp16 is expected


def test_the_message_shows_the_value_as_given():
    with pytest.raises(ProfileOptionsError) as caught:
        parse_options(OfflineOptions, {"beam_size": "five"})
    assert caught.value.message == "Bad profile option beam_size='five': expected a whole number."
    assert (caught.value.key, caught.value.value) == ("beam_size", "five")
    with pytest.raises(ProfileOptionsError) as caught:
        parse_options(OfflineOptions, {"beam_size": "0"})
    assert caught.value.message == "Bad profile option beam_size='0': expected a whole number of at least 1."


def test_an_empty_optional_is_none():
    assert parse_options(OfflineOptions, {"compute_type": ""}).compute_type is None


@pytest.mark.parametrize("key,value,allowed", [
    ("beam_size", "five", "a whole number"),
    ("beam_size", "5.0", "a whole number"),
    ("beam_size", "0", "at least 1"),
    ("cpu_threads", "-1", "at least 0"),
])
def test_a_bad_offline_value_names_key_value_and_what_is_allowed(key, value, allowed):
    with pytest.raises(ProfileOptionsError) as caught:
        parse_options(OfflineOptions, {key: value})
    message = caught.value.message
    assert message.startswith(f"Bad profile option {key}='") and allowed in message and "\n" not in message
    assert caught.value.key == key


@pytest.mark.parametrize("key,value,allowed", [
    ("fp16", "ture", "1/0, true/false, yes/no, on/off"),
    ("fp16", "2", "1/0, true/false, yes/no, on/off"),
    ("max_span_ms", "1m", "a whole number"),
    ("max_span_ms", "0", "at least 1"),
    ("max_batch_s", "ten", "a number"),
    ("max_batch_s", "nan", "a finite number"),
    ("max_batch_s", "0", "above 0"),
    ("cpu_workers", "-2", "at least 0"),
    ("asr", " ", "a non-empty text"),
])
def test_a_bad_funasr_value_names_key_value_and_what_is_allowed(key, value, allowed):
    with pytest.raises(ProfileOptionsError) as caught:
        parse_options(FunasrOptions, {key: value})
    message = caught.value.message
    assert message.startswith(f"Bad profile option {key}='") and allowed in message and "\n" not in message


def test_an_unknown_key_names_the_known_ones():
    with pytest.raises(ProfileOptionsError) as caught:
        parse_options(FunasrOptions, {"asr_model": "/models/x"})
    assert caught.value.message == (
        "Unknown profile option 'asr_model'; known: asr, cpu_workers, fp16, max_batch_s, max_span_ms, punc, spk, vad."
    )
    assert caught.value.key == "asr_model"


def test_the_error_is_a_value_error_and_a_pipeline_error():
    with pytest.raises(ValueError):
        parse_options(OfflineOptions, {"beam_size": "x"})
    assert issubclass(ProfileOptionsError, PipelineError) and ProfileOptionsError.code == "bad_profile_options"


def test_each_profile_declares_its_options_type():
    assert options_type("offline") is OfflineOptions
    assert options_type("funasr") is FunasrOptions


def test_one_mapping_is_split_across_the_profiles():
    split = split_profile_options({"beam_size": "3", "asr": "/models/my-paraformer", "cpu_workers": "2"})
    assert split == {
        "offline": OfflineOptions(beam_size=3),
        "funasr": FunasrOptions(asr="/models/my-paraformer", cpu_workers=2),
    }
    assert split_profile_options({}) == {"offline": OfflineOptions(), "funasr": FunasrOptions()}


def test_a_key_no_profile_declares_names_every_profiles_keys():
    with pytest.raises(ProfileOptionsError) as caught:
        split_profile_options({"asr_model": "/models/x", "beam": "3", "asr": "/models/y"})
    assert caught.value.message == (
        "Unknown profile options 'asr_model', 'beam'; known: "
        "funasr: asr, cpu_workers, fp16, max_batch_s, max_span_ms, punc, spk, vad; "
        "offline: beam_size, compute_type, cpu_threads, speaker_threads."
    )


def test_a_bad_value_in_the_mapping_is_an_error():
    with pytest.raises(ProfileOptionsError, match=r"fp16='maybe'"):
        split_profile_options({"fp16": "maybe"})


def test_a_key_goes_to_every_profile_that_declares_it(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class MineOptions:
        beam_size: int = 1
        depth: int = 2

    monkeypatch.setattr(profiles, "_REGISTERED", {})
    register_profile("mine", Profile(options=MineOptions, load=lambda config: None))
    split = split_profile_options({"beam_size": "4", "depth": "7"})
    assert split["mine"] == MineOptions(beam_size=4, depth=7)
    assert split["offline"] == OfflineOptions(beam_size=4)


def test_every_documented_option_is_a_real_key():
    """The README's TINGXIE_MODEL_<NAME> settings are keys some profile declares (and none is missing)."""
    documented = set(re.findall(r"TINGXIE_MODEL_([A-Z0-9_]+)", (REPO / "README.md").read_text())) - {"DIR"}
    declared = {f.name.upper() for cls in (OfflineOptions, FunasrOptions) for f in dataclasses.fields(cls)}
    assert documented == declared


@pytest.mark.subprocess
def test_reading_options_loads_no_model_runtime():
    code = (
        "import sys; import pipeline.profiles as p; p.split_profile_options({'beam_size': '3', 'asr': 'x'}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'funasr', 'faster_whisper', 'numpy', 'ctranslate2', 'onnxruntime')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
