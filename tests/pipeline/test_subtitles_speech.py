"""Subtitles of real transcripts: the offline profile on the shared speech, every cue checked
against the limits (tests/support/subtitles.py), and the cues' words give back the transcript's text."""
from __future__ import annotations

import pytest

from contract import Transcript
from core.export import SubtitleLimits, render
from pipeline import transcribe
from pipeline.types import TranscribeOptions
from tests.support.subtitles import assert_readable

pytestmark = pytest.mark.slow

RECORDINGS = ("jfk.flac", "asr_example.wav", "asr_example.mp3", "hotwords.mp3")
ROUNDS = 2  # the recordings in turn, in the joined file
LIMITS = (
    SubtitleLimits(),
    SubtitleLimits(max_line_chars=20, max_lines=2, max_cue_s=3.0),
    SubtitleLimits(max_line_chars=10, max_lines=1, max_cue_s=1.5, min_cue_s=0.5),
    SubtitleLimits(max_line_chars=60, max_lines=3, max_cue_s=15.0),
)


@pytest.fixture(scope="module")
def transcripts(engine, speech_dir, tmp_path_factory) -> dict[str, Transcript]:
    """Each recording's transcript, and one of all of them in turn, twice, with pauses of 0.4 to
    2 s between them (each length of pause after Chinese and after English; about 53 s)."""
    import subprocess

    from media import find_ffmpeg

    work = tmp_path_factory.mktemp("subtitles")
    options = TranscribeOptions()
    out = {name: transcribe(speech_dir / name, options, engine, work_dir=work) for name in RECORDINGS}

    args, labels = [], []
    pauses = (0.4, 2.0, 0.8, 1.2)
    for round_ in range(ROUNDS):
        for n, name in enumerate(RECORDINGS):
            args += ["-i", str(speech_dir / name), "-f", "lavfi", "-t", str(pauses[(n + round_) % 4]),
                     "-i", "anullsrc=r=16000:cl=mono"]
    count = len(args) // 8
    graph = ";".join(f"[{2 * i}:a]aresample=16000,aformat=sample_fmts=s16:channel_layouts=mono[r{i}]"
                     for i in range(count))
    graph += ";" + "".join(f"[r{i}][{2 * i + 1}:a]" for i in range(count)) + f"concat=n={2 * count}:v=0:a=1[out]"
    joined = work / "joined.wav"
    subprocess.run([find_ffmpeg(), "-nostdin", "-v", "error", *args, "-filter_complex", graph, "-map", "[out]",
                    "-ar", "16000", "-ac", "1", "-y", str(joined)], check=True, stdin=subprocess.DEVNULL)
    out["joined"] = transcribe(joined, options, engine, work_dir=work)
    return out


@pytest.mark.parametrize("name", [*RECORDINGS, "joined"])
@pytest.mark.parametrize("limits", LIMITS, ids=["default", "20x2-3s", "10x1-1.5s", "60x3-15s"])
def test_every_cue_is_within_the_limits(transcripts, name, limits):
    data = transcripts[name]
    assert data.segments, data
    cues = assert_readable(data, limits)
    srt = render(data, "srt", limits)
    assert srt.count(" --> ") == len(cues)
    assert render(data, "vtt", limits).count(" --> ") == len(cues)


def test_jfk_default_cues(transcripts):
    """The one 10 s, 107-character sentence becomes a cue per clause, one line each."""
    data = transcripts["jfk.flac"]
    clauses = [c.strip() for c in data.text.replace(", ", ",\n").splitlines()]
    assert len(clauses) == 3, data.text  # Whisper-base writes both commas
    cues = assert_readable(data)
    assert [cue.lines for cue in cues] == [(clause,) for clause in clauses]


def test_chinese_default_cues_use_cjk_lines(transcripts):
    cues = assert_readable(transcripts["asr_example.wav"])
    assert all(len(line) <= 16 for cue in cues for line in cue.lines)
    assert "".join(line for cue in cues for line in cue.lines) == transcripts["asr_example.wav"].text


def test_the_long_file_has_many_cues_in_both_scripts(transcripts):
    data = transcripts["joined"]
    cues = assert_readable(data)
    assert data.duration_ms > 50_000
    widths = {SubtitleLimits().line_chars(data.segments[cue.segment].text) for cue in cues}
    assert widths == {16, 42}
    assert len(cues) >= ROUNDS * len(RECORDINGS)  # at least a cue per recording (a sentence may hold two)
    # No cue is stretched over speech that is not its own: a window's first words were once spread
    # over seconds of the other language's speech before them (cues 欢 0-3.8 s, 迎 3.8-10.8 s).
    assert all(cue.end_ms - cue.start_ms <= 1000 * len("".join(cue.lines)) for cue in cues), cues
