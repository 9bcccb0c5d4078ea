"""Where the gateway cuts a live 2pass/online pcm stream: the pause cutter on real speech (decoded
by ffmpeg) and on made-up signals whose pauses are known to the frame, fed in every chunking a
client may use."""
from __future__ import annotations

import math
import random
import subprocess
from array import array

import pytest

from gateway.segmenter import PauseCutter, PauseRules, frame_rms, joined_text, piece_name

FS = 16000


def pcm(path, ffmpeg, rate: int = FS, channels: int = 1) -> bytes:
    """What FunASR's Python client sends of a file: its 16-bit samples, no header."""
    return subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", str(channels),
                           "-ar", str(rate), "-"], check=True, capture_output=True).stdout


def cut_all(data: bytes, chunk_bytes: int, rate: int = FS, rules: PauseRules = PauseRules()) -> list[int]:
    cutter = PauseCutter(rate, rules)
    cuts = []
    for start in range(0, len(data), chunk_bytes):
        cuts += cutter.feed(data[start:start + chunk_bytes])
    return cuts


def tone(seconds: float, amplitude: int = 8000, rate: int = FS) -> bytes:
    return array("h", (int(amplitude * math.sin(2 * math.pi * 220 * i / rate))
                       for i in range(int(seconds * rate)))).tobytes()


def silence(seconds: float, rate: int = FS) -> bytes:
    return b"\0\0" * int(seconds * rate)


def seconds(cuts: list[int], rate: int = FS, channels: int = 1) -> list[float]:
    return [round(c / (2 * channels * rate), 3) for c in cuts]


def test_jfk_is_cut_in_its_two_long_pauses_whatever_the_chunks(speech_path, ffmpeg):
    data = pcm(speech_path("jfk.flac"), ffmpeg)
    frame = PauseCutter(FS).frame_bytes
    loudest = max(frame_rms(data[i:i + frame]) for i in range(0, len(data), frame))
    # The older Python client's 60 ms stride, the C++ client's 200 KiB, odd sizes, all at once.
    for chunk in (1920, 204800, 777, len(data)):
        cuts = cut_all(data, chunk)
        # "And so, my fellow Americans, ask not" | "what your country can do for you," | "ask what ..."
        assert len(cuts) == 2, (chunk, seconds(cuts))
        pieces = list(zip([0, *cuts], [*cuts, len(data)]))
        assert all(end - start >= 3 * 2 * FS for start, end in pieces[:-1])
        for cut in cuts:  # inside a pause: the frames either side are far under the speech
            assert cut % frame == 0
            assert frame_rms(data[cut - frame:cut + frame]) < 0.1 * loudest, seconds([cut])
        assert seconds(cuts) == seconds(cut_all(data, 1920))


def test_jfk_at_8khz_and_as_stereo_is_cut_at_the_same_pauses(speech_path, ffmpeg):
    mono16 = seconds(cut_all(pcm(speech_path("jfk.flac"), ffmpeg), 1920))
    mono8 = seconds(cut_all(pcm(speech_path("jfk.flac"), ffmpeg, rate=8000), 960, rate=8000), rate=8000)
    assert len(mono8) == len(mono16) and all(abs(a - b) <= 0.2 for a, b in zip(mono8, mono16)), (mono8, mono16)
    # Both Python clients send a stereo .wav's frames as pcm: cuts stay on whole sample pairs.
    stereo = pcm(speech_path("jfk.flac"), ffmpeg, channels=2)
    cuts = cut_all(stereo, 3840)
    assert cuts and all(c % 4 == 0 for c in cuts)


def test_a_short_clip_without_a_long_pause_is_not_cut(speech_path, ffmpeg):
    # 5.5 s of Mandarin whose pauses are under 600 ms: one piece, answered as a whole file.
    assert cut_all(pcm(speech_path("asr_example.wav"), ffmpeg), 1920) == []


def test_pause_cut_in_its_middle_only_after_the_minimum_piece():
    data = tone(4) + silence(1) + tone(4)
    assert seconds(cut_all(data, 1920)) == [4.3]  # 600 ms of quiet seen; the cut 300 ms into it
    # A pause before the piece has 3 s is kept inside it; a pause that lasts past 3 s is cut there.
    assert cut_all(tone(1) + silence(0.8) + tone(4), 1920) == []
    assert seconds(cut_all(tone(1) + silence(5) + tone(2), 1920)) == [3.0]


def test_leading_silence_is_no_pause_and_a_quiet_stream_is_cut_only_at_the_maximum():
    # Silence before the first word is not a pause after speech.
    assert seconds(cut_all(silence(4) + tone(2) + silence(1) + tone(2), 1920)) == [6.3]
    # Nothing above the floor (-44 dBFS): no pauses, one hard cut every 25 s.
    assert seconds(cut_all(tone(60, amplitude=150) + tone(1), 3200)) == [25.0, 50.0]
    assert seconds(cut_all(silence(60), 3200)) == [25.0, 50.0]


def test_no_pause_is_cut_at_its_quietest_frame_past_the_minimum():
    # Continuous loud speech-like signal with one dip (still above the quiet level) at 17 s.
    data = tone(17) + tone(0.2, amplitude=3000) + tone(20)
    cuts = seconds(cut_all(data, 1920))
    assert cuts[0] == 17.1 or cuts[0] == 17.2, cuts
    assert all(b - a <= 25 for a, b in zip([0, *cuts], [*cuts, len(data) / 2 / FS]))


def test_the_speech_level_follows_the_stream():
    # A loud talker, then a quieter one (-12 dB) with pauses: the level decays, so the quieter
    # talker's words are speech and their pauses are pauses.
    data = tone(4, 16000) + silence(1) + tone(60, 4000) + silence(1) + tone(4, 4000)
    cuts = seconds(cut_all(data, 1920))
    assert cuts[0] == 4.3 and 65.3 in cuts, cuts


def test_chunking_never_changes_the_cuts():
    rng = random.Random(7)
    data = silence(0.5) + tone(3.3) + silence(0.7) + tone(2) + silence(2) + tone(30) + silence(0.65) + tone(1)
    reference = cut_all(data, len(data))
    assert len(reference) >= 3
    cutter, cuts, at = PauseCutter(FS), [], 0
    while at < len(data):
        size = rng.randint(1, 9000)
        cuts += cutter.feed(data[at:at + size])
        at += size
    assert cuts == reference


def test_piece_names_and_joined_text():
    assert piece_name("demo.wav", 1) == "demo#1.wav"
    assert piece_name("meeting.2024.wav", 12) == "meeting.2024#12.wav"
    assert piece_name("noext", 2) == "noext#2"
    assert joined_text("ask not what", True) == " ask not what"
    assert joined_text("ask not what", False) == "ask not what"
    assert joined_text("欢迎大家", True) == "欢迎大家"
    assert joined_text("", True) == ""


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 44100])
def test_frames_hold_whole_stereo_sample_pairs(rate):
    assert PauseCutter(rate).frame_bytes % 4 == 0
