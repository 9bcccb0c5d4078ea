"""``tingxie transcribe``'s flags as a job's options, without running it (the run itself, with real
models and two voices: tests/system/cli/test_transcribe_speakers.py)."""
from __future__ import annotations

import argparse

import pytest

from cli import transcribe


def options_of(*argv: str, settings):
    parser = argparse.ArgumentParser()
    transcribe.add_parser(parser.add_subparsers())
    return transcribe._options(parser.parse_args(["transcribe", "a.wav", *argv]), settings)


@pytest.mark.parametrize(
    "argv, fields",
    [
        ([], dict(diarize=False, num_speakers=None)),
        (["--diarize"], dict(diarize=True, num_speakers=None)),
        (["--num-speakers", "1"], dict(diarize=True, num_speakers=1)),
        (["--min-speakers", "2"], dict(diarize=True, min_speakers=2)),
        (["--max-speakers", "3"], dict(diarize=True, max_speakers=3)),
    ],
)
def test_a_speaker_count_implies_diarize(argv, fields, tmp_path):
    from core.settings import Settings

    options = options_of(*argv, settings=Settings(data_dir=tmp_path))
    assert {name: getattr(options, name) for name in fields} == fields
