"""Speaker labels on the funasr profile with a small random CAM++ (tests/support/campplus_model.py):
plumbing, not accuracy. The model is found by ModelScope id under the model directory or by
directory, loaded only when a job asks for speakers, and a missing one names the command that
fetches it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.requires import require_funasr, require_installed

require_funasr()
require_installed("sklearn", reason="speaker labels need scikit-learn")

from pipeline import transcribe  # noqa: E402
from pipeline.errors import ModelNotReadyError  # noqa: E402
from pipeline.funasr.profile import SPEAKER_MODEL, resolve_model  # noqa: E402
from contract import Transcript  # noqa: E402
from pipeline.types import TranscribeOptions  # noqa: E402
from tests.support import speaker_turns  # noqa: E402
from tests.support.campplus_model import CAMPP_ID, build_campplus  # noqa: E402
from tests.support.funasr_models import ASR_ID, PUNC_ID, VAD_ID  # noqa: E402

pytestmark = pytest.mark.funasr


@pytest.fixture(scope="module")
def speaker_root(tmp_path_factory) -> Path:
    """A model directory holding only CAM++, under its ModelScope id."""
    root = tmp_path_factory.mktemp("spk-models")
    build_campplus(root / CAMPP_ID)
    return root


def _by_directory(funasr_model_dir: Path) -> dict:
    """The other stages named by directory, so the model directory may hold CAM++ alone."""
    return {stage: str(funasr_model_dir / model_id) for stage, model_id in (("vad", VAD_ID), ("asr", ASR_ID), ("punc", PUNC_ID))}


def test_the_default_speaker_model_is_funasrs_campplus():
    assert SPEAKER_MODEL == CAMPP_ID == "iic/speech_campplus_sv_zh-cn_16k-common"


def test_campplus_is_found_by_id_or_directory(speaker_root, tmp_path):
    assert resolve_model("spk", CAMPP_ID, speaker_root) == speaker_root / CAMPP_ID
    assert resolve_model("spk", CAMPP_ID.replace("iic/", "damo/"), speaker_root) == speaker_root / CAMPP_ID
    elsewhere = tmp_path / "my-campplus"
    shutil.copytree(speaker_root / CAMPP_ID, elsewhere)
    assert resolve_model("spk", str(elsewhere), tmp_path / "nothing-here") == elsewhere
    (elsewhere / "campplus_cn_common.bin").unlink()  # configuration.json names a file that is gone
    with pytest.raises(ModelNotReadyError):
        resolve_model("spk", str(elsewhere), tmp_path / "nothing-here")


def test_diarization_runs_end_to_end(load_funasr, funasr_model_dir, speaker_root, two_voices, tmp_path):
    engine = load_funasr(model_dir=speaker_root, **_by_directory(funasr_model_dir))
    assert not engine.speaker.loaded
    for counts, expected in ((dict(num_speakers=2), ["S1", "S2"]), (dict(max_speakers=1), ["S1"])):
        transcript = transcribe(two_voices[0], TranscribeOptions(diarize=True, **counts), engine, work_dir=tmp_path)
        assert engine.speaker.loaded and type(engine.speaker_model()).__name__ == "CampPlusSpeaker"
        assert [s.id for s in transcript.speakers] == expected
        assert [s.id for s in transcript.speakers] == list(dict.fromkeys(s.speaker for s in transcript.segments))
        for segment in transcript.segments:
            assert {w.speaker for w in segment.words} == {segment.speaker}
        data = json.loads(json.dumps(transcript.to_dict()))
        assert data["speakers"] == [{"id": s, "name": None} for s in expected]
        assert Transcript.from_dict(data) == transcript


def test_campplus_named_by_directory(load_funasr, speaker_root, two_voices, tmp_path):
    engine = load_funasr(spk=str(speaker_root / CAMPP_ID))
    transcript = transcribe(two_voices[0], TranscribeOptions(diarize=True, num_speakers=1), engine, work_dir=tmp_path)
    assert [s.id for s in transcript.speakers] == ["S1"]


def test_a_missing_speaker_model_fails_only_the_jobs_that_ask(load_funasr, speech_path, tmp_path):
    """The default model set holds no CAM++: the engine loads and transcribes; a diarized job
    fails with model_missing naming the download of the one model, before any work."""
    engine = load_funasr()
    plain = transcribe(speech_path("asr_example.wav"), TranscribeOptions(), engine, work_dir=tmp_path)
    assert plain.speakers is None and "speakers" not in plain.to_dict()
    assert not engine.speaker.loaded
    with pytest.raises(ModelNotReadyError) as missing:
        transcribe(speech_path("asr_example.wav"), TranscribeOptions(diarize=True), engine, work_dir=tmp_path)
    assert missing.value.code == "model_missing"
    assert f"tingxie models download --profile funasr --model {CAMPP_ID}" in missing.value.message
    assert not engine.speaker.loaded
