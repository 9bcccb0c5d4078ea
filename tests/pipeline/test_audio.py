"""Decoding real and broken media with the real ffmpeg."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pipeline.audio import PcmFile, decode_to_pcm, find_ffmpeg, probe
from pipeline.errors import (
    EmptyMediaError,
    FfmpegMissingError,
    MediaError,
    MediaTooLongError,
    NoAudioStreamError,
    TruncatedMediaError,
)


def test_find_ffmpeg_prefers_explicit_and_rejects_missing(ffmpeg):
    assert find_ffmpeg(ffmpeg) == ffmpeg
    with pytest.raises(FfmpegMissingError, match="does not exist"):
        find_ffmpeg("/nonexistent/ffmpeg")


@pytest.mark.parametrize(
    "name, duration_ms, rate_hz",
    [("jfk.flac", 11_000, 44_100), ("asr_example.wav", 5_550, 16_000), ("asr_example.mp3", 5_550, 16_000),
     ("hotwords.mp3", 4_000, 44_100)],
)
def test_probe_reads_duration_and_streams(speech_dir, ffmpeg, name, duration_ms, rate_hz):
    info = probe(speech_dir / name, ffmpeg)
    assert info.duration_ms == duration_ms
    assert info.has_audio and not info.has_video
    assert info.sample_rate_hz == rate_hz


def test_decode_gives_16k_mono_pcm_sliced_without_loading(speech_dir, ffmpeg, tmp_path):
    out = tmp_path / "jfk.s16le"
    duration_ms = decode_to_pcm(speech_dir / "jfk.flac", out, ffmpeg)
    assert duration_ms == 11_000
    assert out.stat().st_size == 11 * 16_000 * 2
    pcm = PcmFile(out)
    assert pcm.duration_ms == 11_000
    whole = np.fromfile(out, dtype="<i2").astype(np.float32) / 32768.0
    part = pcm.read(2_000, 2_500)
    assert part.dtype == np.float32 and part.shape == (8_000,)
    assert np.array_equal(part, whole[32_000:40_000])
    assert pcm.read(10_900, 99_000).shape == (1_600,)  # clipped at the end
    assert pcm.read(5_000, 5_000).shape == (0,)


def test_decode_of_video_takes_its_audio(make_media, ffmpeg, tmp_path, speech_dir):
    video = make_media("clip.mp4", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=5.55",
                       "-i", str(speech_dir / "asr_example.wav"), "-shortest", "-c:v", "mpeg4", "-c:a", "aac")
    info = probe(video, ffmpeg)
    assert info.has_video and info.has_audio
    assert abs(decode_to_pcm(video, tmp_path / "v.s16le", ffmpeg) - 5_550) < 100


def test_empty_file(tmp_path, ffmpeg):
    empty = tmp_path / "empty.mp3"
    empty.touch()
    with pytest.raises(EmptyMediaError) as err:
        decode_to_pcm(empty, tmp_path / "out", ffmpeg)
    assert err.value.code == "empty_file" and "0 bytes" in err.value.message


def test_text_file_is_not_media(tmp_path, ffmpeg):
    text = tmp_path / "notes.mp3"
    text.write_text("this is a shopping list, not a recording\n" * 20)
    with pytest.raises(MediaError) as err:
        decode_to_pcm(text, tmp_path / "out", ffmpeg)
    assert type(err.value) is MediaError and err.value.code == "bad_media"
    assert "not an audio or video file" in err.value.message
    assert "Invalid data" in err.value.detail  # ffmpeg's own words, for the logs
    assert not (tmp_path / "out").exists()


def test_truncated_mp3_is_refused(speech_dir, tmp_path, ffmpeg):
    data = (speech_dir / "asr_example.mp3").read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 4])
    with pytest.raises(TruncatedMediaError) as err:
        decode_to_pcm(cut, tmp_path / "out", ffmpeg)
    assert err.value.code == "truncated_media" and "cut short" in err.value.message
    assert not (tmp_path / "out").exists()


def test_mostly_complete_mp3_is_decoded(speech_dir, tmp_path, ffmpeg):
    data = (speech_dir / "asr_example.mp3").read_bytes()
    cut = tmp_path / "nearly.mp3"
    cut.write_bytes(data[: len(data) * 9 // 10])
    duration_ms = decode_to_pcm(cut, tmp_path / "out", ffmpeg)
    assert 4_000 < duration_ms < 5_550


def test_header_cut_flac_is_truncated(speech_dir, tmp_path, ffmpeg):
    cut = tmp_path / "cut.flac"
    cut.write_bytes((speech_dir / "jfk.flac").read_bytes()[:3000])
    with pytest.raises(TruncatedMediaError):
        probe(cut, ffmpeg)


def test_video_without_audio(make_media, tmp_path, ffmpeg):
    video = make_media("silent.mp4", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=2", "-c:v", "mpeg4")
    with pytest.raises(NoAudioStreamError) as err:
        decode_to_pcm(video, tmp_path / "out", ffmpeg)
    assert err.value.code == "no_audio" and "video only" in err.value.message


def test_too_long_by_header(speech_dir, tmp_path, ffmpeg):
    with pytest.raises(MediaTooLongError) as err:
        decode_to_pcm(speech_dir / "jfk.flac", tmp_path / "out", ffmpeg, max_duration_ms=5_000)
    assert err.value.code == "too_long" and "0m05s" in err.value.message
    assert not (tmp_path / "out").exists()


def test_too_long_without_declared_duration(make_media, tmp_path, ffmpeg):
    """A raw ADTS stream declares no exact length; the cap is enforced while decoding."""
    raw = make_media("long.aac", "-f", "lavfi", "-i", "sine=frequency=300:duration=8", "-c:a", "aac", "-f", "adts")
    with pytest.raises(MediaTooLongError):
        decode_to_pcm(raw, tmp_path / "out", ffmpeg, max_duration_ms=3_000)
    assert not (tmp_path / "out").exists()


_MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from pipeline.audio import PcmFile, decode_to_pcm, find_ffmpeg
    from pipeline.vad_silero import SileroVad
    vad = SileroVad()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    src, out = sys.argv[1:3]
    ms = decode_to_pcm(src, out, find_ffmpeg())
    spans = vad.speech_spans(PcmFile(out))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(ms, Path(out).stat().st_size, grown, child)
""")


@pytest.mark.slow
def test_long_input_decode_and_vad_stay_memory_bounded(make_media, tmp_path):
    """Decoding and VAD of 30 minutes (57.6 MB of PCM) take no more memory than of 3 minutes."""
    figures = {}
    for minutes in (3, 30):
        src = make_media(f"noise{minutes}.flac", "-f", "lavfi", "-i",
                         f"anoisesrc=duration={minutes * 60}:amplitude=0.02:sample_rate=16000", "-ac", "1", "-c:a", "flac")
        done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(src), str(tmp_path / f"{minutes}.s16le")],
                              capture_output=True, text=True, check=True)
        figures[minutes] = list(map(int, done.stdout.split()))
    ms, size, grown_kb, ffmpeg_kb = figures[30]
    assert ms == 1_800_000 and size == 57_600_000
    assert grown_kb < figures[3][2] + 10_000, f"python grew {grown_kb} kB on 30 min vs {figures[3][2]} kB on 3 min"
    assert grown_kb < 40_000
    assert ffmpeg_kb < figures[3][3] + 10_000, f"ffmpeg peaked at {ffmpeg_kb} kB on 30 min vs {figures[3][3]} kB"
