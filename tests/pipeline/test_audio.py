"""The decoded PCM file the stages read (decoding itself is tested in tests/media)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pipeline.audio import decode
from pipeline.errors import MediaError, TruncatedMediaError

pytestmark = pytest.mark.subprocess


def test_decode_gives_16k_mono_pcm_sliced_without_loading(speech_dir, tmp_path):
    out = tmp_path / "jfk.s16le"
    info, pcm = decode(speech_dir / "jfk.flac", out)
    assert info.duration_ms == 11_000 and info.format_name == "flac"
    assert out.stat().st_size == 11 * 16_000 * 2
    assert pcm.duration_ms == 11_000
    whole = np.fromfile(out, dtype="<i2").astype(np.float32) / 32768.0
    part = pcm.read(2_000, 2_500)
    assert part.dtype == np.float32 and part.shape == (8_000,)
    assert np.array_equal(part, whole[32_000:40_000])
    assert pcm.read(10_900, 99_000).shape == (1_600,)  # clipped at the end
    assert pcm.read(5_000, 5_000).shape == (0,)


def test_decode_uses_a_probe_it_is_given(speech_dir, tmp_path):
    """The worker decodes with the MediaInfo stored at upload: the file is not probed again, and
    what is decoded is what that probe allowed (here a forged probe makes ffmpeg read a text file
    as mp3, which it refuses)."""
    info, _ = decode(speech_dir / "asr_example.mp3", tmp_path / "a.s16le")
    text = tmp_path / "notes.mp3"
    text.write_text("a shopping list\n" * 100)
    with pytest.raises(MediaError) as err:
        decode(text, tmp_path / "b.s16le", info=info)
    assert err.value.code in ("bad_media", "truncated_media")
    assert not (tmp_path / "b.s16le").exists()


def test_media_errors_are_the_pipelines(speech_dir, tmp_path):
    cut = tmp_path / "cut.mp3"
    cut.write_bytes((speech_dir / "asr_example.mp3").read_bytes()[:5000])
    with pytest.raises(TruncatedMediaError):
        decode(cut, tmp_path / "out")


_MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from pipeline.audio import decode
    from pipeline.vad_silero import SileroVad
    vad = SileroVad()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    src, out = sys.argv[1:3]
    _, pcm = decode(src, out)
    spans = vad.speech_spans(pcm)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(pcm.duration_ms, Path(out).stat().st_size, grown, child)
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
