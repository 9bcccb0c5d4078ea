"""``tingxie transcribe --language`` and ``--max-line-chars/--max-lines/--max-cue-s``, as a user runs it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest


def transcribe(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TINGXIE_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "cli", "transcribe", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow
def test_subtitle_limits_shape_the_srt(tmp_path, speech_dir):
    done = transcribe(tmp_path, str(speech_dir / "jfk.flac"), "--format", "srt",
                      "--max-line-chars", "20", "--max-lines", "1", "--max-cue-s", "2.5")
    assert done.returncode == 0, done.stderr
    blocks = done.stdout.strip().split("\n\n")
    assert len(blocks) >= 5
    for block in blocks:
        number, times, *lines = block.splitlines()
        start, end = (sum(float(x) * f for x, f in zip(re.split("[:,]", t), (3600, 60, 1, 0.001)))
                      for t in times.split(" --> "))
        assert len(lines) == 1 and len(lines[0]) <= 20 and 0 < end - start <= 2.5, block


@pytest.mark.parametrize("args, message", [
    (["--max-lines", "0"], "max_lines must be a whole number from 1 to 5, not 0"),
    (["--max-line-chars", "1000"], "max_line_chars must be a whole number from 5 to 200"),
    (["--max-cue-s", "0.2"], "max_cue_s must be a number of seconds from 1 to 60"),
])
def test_bad_limits_are_a_usage_error(tmp_path, speech_dir, args, message):
    done = transcribe(tmp_path, str(speech_dir / "jfk.flac"), "--format", "srt", *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stdout == ""


@pytest.mark.slow
def test_any_language_whisper_knows(tmp_path, speech_dir):
    done = transcribe(tmp_path, str(speech_dir / "jfk.flac"), "--format", "json", "--language", "JA")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["language"] == "ja"
    assert "warning: Numbers were left as spoken in the text recognised as 'ja'" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--language", "xx"], "argument --language: invalid choice: 'xx'"),
    (["--language", "ja", "--profile", "funasr"],
     "the 'funasr' profile does not transcribe language 'ja' (the offline profile's Whisper transcribes it); "
     "use one of: auto, zh, zh-hant, zh-tw, en"),
])
def test_a_language_the_profile_lacks_is_a_usage_error(tmp_path, speech_dir, args, message):
    done = transcribe(tmp_path, str(speech_dir / "jfk.flac"), *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
