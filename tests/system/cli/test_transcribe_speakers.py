"""``tingxie transcribe --diarize`` as a user runs it: a real process, real models, two real voices."""
from __future__ import annotations

import json

import pytest

from tests.support import speaker_turns


@pytest.mark.slow
def test_diarize_labels_each_sentence(transcribe_cli, speech_dir, tmp_path):
    from media import find_ffmpeg
    from pipeline.errors import EngineMissingError
    from pipeline.speaker_ge2e import require_packages

    try:
        require_packages()
    except EngineMissingError as exc:
        pytest.skip(exc.message)
    path = tmp_path / "two_voices.wav"
    speaker_turns.build(speech_dir, path, find_ffmpeg())
    done = transcribe_cli(str(path), "--diarize", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["speakers"] == [{"id": "S1", "name": None}, {"id": "S2", "name": None}]
    assert [s["speaker"] for s in data["segments"]][:2] == ["S1", "S2"]
    assert all(w["speaker"] == s["speaker"] for s in data["segments"] for w in s["words"])
    # That a count implies --diarize: tests/cli/test_transcribe_flags.py; each count on this file:
    # tests/pipeline/test_diarize.py.


@pytest.mark.parametrize(
    "args, says",
    [
        (["--min-speakers", "3", "--max-speakers", "2"], "min_speakers (3) is more than max_speakers (2)"),
        (["--num-speakers", "0"], "num_speakers must be a whole number from 1 to 32"),
        (["--diarize", "--num-speakers", "2", "--max-speakers", "3"], "not both"),
    ],
)
def test_bad_speaker_counts_are_refused_before_loading_models(transcribe_cli, speech_dir, args, says):
    done = transcribe_cli(str(speech_dir / "jfk.flac"), *args)
    assert done.returncode == 2
    assert says in done.stderr and done.stdout == ""
