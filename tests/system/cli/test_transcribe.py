"""``tingxie transcribe`` as a user runs it: a real process, real models, real files."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_one_file_to_stdout(transcribe_cli, speech_dir):
    done = transcribe_cli(str(speech_dir / "jfk.flac"))
    assert done.returncode == 0, done.stderr
    assert "ask not what your country can do for you" in done.stdout


def test_several_files_into_a_directory_with_a_bad_one(transcribe_cli, speech_dir, tmp_path):
    (tmp_path / "broken.mp3").write_text("not audio")
    hotword_file = tmp_path / "hotwords.txt"
    hotword_file.write_text("达摩院 20\nComfyUI 20\n", encoding="utf-8")
    out = tmp_path / "out"
    done = transcribe_cli(str(speech_dir / "asr_example.mp3"), str(tmp_path / "broken.mp3"), str(speech_dir / "hotwords.mp3"),
                   "--format", "srt", "--hotwords", f"@{hotword_file}", "-o", str(out))
    assert done.returncode == 1  # one file failed, the others were written
    assert "broken.mp3" in done.stderr and "[bad_media]" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["asr_example.srt", "hotwords.srt"]
    srt = (out / "asr_example.srt").read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:00,") and "达摩院" in srt.replace("\n", "")  # a cue's lines may break inside it
    assert "ComfyUI" in (out / "hotwords.srt").read_text(encoding="utf-8")


def test_json_with_language_and_no_itn(transcribe_cli, speech_dir):
    done = transcribe_cli(str(speech_dir / "asr_example.wav"), "--format", "json", "--language", "zh", "--no-itn")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["language"] == "zh" and data["duration_ms"] == 5546
    assert data["segments"][0]["words"][0]["text"] == "欢"


def test_several_files_need_an_output_directory(transcribe_cli, speech_dir):
    done = transcribe_cli(str(speech_dir / "jfk.flac"), str(speech_dir / "asr_example.wav"))
    assert done.returncode == 2 and "-o DIR" in done.stderr
