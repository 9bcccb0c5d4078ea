"""The hardened decode with both ffmpeg builds: real speech, forged probes of hostile files, limits."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import media
from media import decode_to_pcm, probe
from media.decode import pcm_bytes
from tests.support.media_files import REFERENCES

# Decoded lengths may differ between builds by an mp3 frame or the encoder's padding; a listener
# cannot tell 60 ms apart.
TOLERANCE_MS = 60


@pytest.mark.parametrize("name, duration_ms", [("jfk.flac", 11_000), ("asr_example.wav", 5_550),
                                               ("asr_example.mp3", 5_550), ("hotwords.mp3", 4_000)])
def test_real_speech_to_16k_mono(each_ffmpeg, speech_path, tmp_path, name, duration_ms):
    seen = []
    out = tmp_path / "out.s16le"
    decoded_ms = decode_to_pcm(speech_path(name), out, info=probe(speech_path(name)), ffmpeg=each_ffmpeg,
                               on_progress=seen.append)
    assert abs(decoded_ms - duration_ms) <= TOLERANCE_MS
    assert abs(out.stat().st_size - pcm_bytes(duration_ms)) <= pcm_bytes(TOLERANCE_MS)
    samples = np.fromfile(out, dtype="<i2")
    assert np.abs(samples).max() > 3000  # speech, not silence
    assert seen[-1] == 1.0 and seen == sorted(seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.s16le"]  # no log or temp file left


def test_video_gives_its_audio(each_ffmpeg, make_media, speech_path, tmp_path):
    clip = make_media("clip.mp4", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=5.55",
                      "-i", str(speech_path("asr_example.wav")), "-shortest", "-c:v", "mpeg4", "-c:a", "aac")
    assert abs(decode_to_pcm(clip, tmp_path / "v.s16le", info=probe(clip), ffmpeg=each_ffmpeg) - 5_550) <= 100


def test_mostly_complete_mp3_is_decoded(each_ffmpeg, speech_path, tmp_path):
    data = speech_path("asr_example.mp3").read_bytes()
    nearly = tmp_path / "nearly.mp3"
    nearly.write_bytes(data[: len(data) * 9 // 10])
    assert 4_000 < decode_to_pcm(nearly, tmp_path / "out", info=probe(nearly), ffmpeg=each_ffmpeg) < 5_550


def test_truncated_behind_a_probe_of_the_whole_file(each_ffmpeg, speech_path, tmp_path):
    """A file cut after it was probed (or a forged probe) is refused by what actually decodes."""
    whole = probe(speech_path("asr_example.mp3"))
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(speech_path("asr_example.mp3").read_bytes()[:5000])
    with pytest.raises(media.TruncatedMediaError) as err:
        decode_to_pcm(cut, tmp_path / "out", info=whole, ffmpeg=each_ffmpeg)
    assert "cut short" in err.value.message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", ["128k", "256k"])
def test_a_full_disk_is_scratch_full_not_a_cut_file(each_ffmpeg, speech_path, tmp_path, size):
    """An intact file whose decoded audio does not fit (jfk.flac: 11 s, 352 KB of PCM) on a tmpfs
    of ``size``: less than half of it (a cut file, to the old check) or more (a success, with the
    rest silently missing); either way a disk that filled up, and nothing left behind."""
    from tests.support.filesystems import small_tmpfs

    with small_tmpfs(tmp_path / "scratch", size) as scratch:
        with pytest.raises(media.ScratchFullError) as err:
            decode_to_pcm(speech_path("jfk.flac"), scratch / "out", info=probe(speech_path("jfk.flac")), ffmpeg=each_ffmpeg)
        assert err.value.code == "scratch_full" and "not at fault" in err.value.message
        assert "upload the complete file" not in err.value.message
        assert list(scratch.iterdir()) == []


def test_too_long(each_ffmpeg, speech_path, make_media, tmp_path):
    jfk = speech_path("jfk.flac")
    with pytest.raises(media.MediaTooLongError):
        decode_to_pcm(jfk, tmp_path / "out", info=probe(jfk), ffmpeg=each_ffmpeg, max_duration_ms=5_000)
    # A length the container does not declare is enforced while decoding.
    raw = make_media("long.aac", "-f", "lavfi", "-i", "sine=frequency=300:duration=8", "-c:a", "aac", "-f", "adts")
    undeclared = dataclasses.replace(probe(raw), duration_ms=None)
    with pytest.raises(media.MediaTooLongError) as err:
        decode_to_pcm(raw, tmp_path / "out", info=undeclared, ffmpeg=each_ffmpeg, max_duration_ms=3_000)
    assert err.value.code == "too_long" and "3.0 s" in err.value.message
    assert not (tmp_path / "out").exists()


def _forgeries(real: media.MediaInfo) -> list[media.MediaInfo]:
    """Probes an attacker might get stored for a hostile file: a good mp3's, and other allowed demuxers."""
    return [real] + [dataclasses.replace(real, format_name=name) for name in ("mov", "mpegts", "wav", "aac", "matroska")]


@pytest.mark.parametrize("kind", sorted(REFERENCES))
def test_forged_probe_of_a_reference_file_is_refused(each_ffmpeg, reference_file, other_upload, tmp_path, kind):
    """Even with a probe that says "mp3" (or any allowed demuxer), ffmpeg reads the playlist, script
    or manifest as that demuxer and finds no audio: the other upload is never decoded."""
    hostile = reference_file(kind)
    out = tmp_path / "out.s16le"
    out.write_bytes(b"stale bytes from an earlier attempt")  # not mistaken for ffmpeg's output
    for info in _forgeries(probe(other_upload)):
        with pytest.raises(media.MediaError) as err:
            decode_to_pcm(hostile, out, info=info, ffmpeg=each_ffmpeg)
        assert err.value.code in ("bad_media", "truncated_media"), (info.format_name, err.value.message)
        assert not out.exists()


@pytest.mark.parametrize("demuxer", ["hls", "concat", "dash", "sdp", "image2", "png_pipe", "srt", "ffmetadata", "lavfi", "tty"])
def test_probe_naming_a_refused_demuxer_never_starts_ffmpeg(each_ffmpeg, reference_file, other_upload, tmp_path, demuxer):
    forged = dataclasses.replace(probe(other_upload), format_name=demuxer)
    with pytest.raises(media.RefusedFormatError) as err:
        decode_to_pcm(reference_file("hls-absolute"), tmp_path / "out", info=forged, ffmpeg=each_ffmpeg)
    assert err.value.code == "bad_media"
    assert not (tmp_path / "out").exists()


def test_image_sequence_behind_a_forged_probe(each_ffmpeg, image_sequence, other_upload, tmp_path):
    for info in _forgeries(probe(other_upload)):
        with pytest.raises(media.MediaError):
            decode_to_pcm(image_sequence, tmp_path / "out", info=info, ffmpeg=each_ffmpeg)
        assert not (tmp_path / "out").exists()


def test_empty_fifo_and_video_only(each_ffmpeg, make_media, speech_path, tmp_path):
    info = probe(speech_path("asr_example.mp3"))
    (tmp_path / "empty.mp3").touch()
    with pytest.raises(media.EmptyMediaError):
        decode_to_pcm(tmp_path / "empty.mp3", tmp_path / "out", info=info, ffmpeg=each_ffmpeg)
    os.mkfifo(tmp_path / "pipe.mp3")
    with pytest.raises(media.MediaError, match="not a regular file"):
        decode_to_pcm(tmp_path / "pipe.mp3", tmp_path / "out", info=info, ffmpeg=each_ffmpeg)
    video = make_media("silent.mp4", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=2", "-c:v", "mpeg4")
    with pytest.raises(media.MediaError) as err:
        decode_to_pcm(video, tmp_path / "out", info=dataclasses.replace(info, format_name="mov"), ffmpeg=each_ffmpeg)
    assert err.value.code == "bad_media"
    assert not (tmp_path / "out").exists()


# ---- limits and process-group kills, with a stand-in ffmpeg that hangs --------------------------

def _fake_ffmpeg(tmp_path: Path, before_hanging: str = "") -> tuple[str, Path, Path]:
    """A script in ffmpeg's place: records its limits and pids, then hangs with a child of its own."""
    limits, pids = tmp_path / "limits.txt", tmp_path / "pids.txt"
    script = tmp_path / "fake-ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        f"cat /proc/self/limits > '{limits}'\n"
        f"{before_hanging}\n"
        "sleep 300 &\n"
        f"echo $$ $! > '{pids}'\n"
        "wait\n"
    )
    script.chmod(0o755)
    return str(script), limits, pids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _limit(limits: Path, name: str) -> str:
    line = next(line for line in limits.read_text().splitlines() if line.startswith(name))
    return line[len(name):].split()[0]


def _assert_group_gone(pids: Path) -> None:
    shell, child = map(int, pids.read_text().split())
    deadline = time.monotonic() + 5
    while _running(shell) or _running(child):
        assert time.monotonic() < deadline, "ffmpeg's process group outlived the decode"
        time.sleep(0.05)


def test_a_hung_decoder_is_killed_with_its_group_within_the_limit(speech_path, tmp_path):
    fake, limits, pids = _fake_ffmpeg(tmp_path)
    jfk = speech_path("jfk.flac")
    started = time.monotonic()
    with pytest.raises(media.MediaTimeoutError) as err:
        decode_to_pcm(jfk, tmp_path / "out", info=probe(jfk), ffmpeg=fake, timeout_s=2,
                      max_duration_ms=60_000, memory_bytes=700 << 20)
    assert err.value.code == "media_timeout"
    assert time.monotonic() - started >= 2  # not before its limit (a busy machine only adds to it)
    _assert_group_gone(pids)
    assert not (tmp_path / "out").exists()
    # The limits were in force from the decoder's first instruction.
    assert _limit(limits, "Max address space") == str(700 << 20)
    assert _limit(limits, "Max cpu time") == "5"
    assert _limit(limits, "Max file size") == str(pcm_bytes(120_000))
    assert "\n" not in (tmp_path / "pids.txt").read_text().strip()


@pytest.mark.parametrize("stop", [RuntimeError("job canceled"), KeyboardInterrupt()])
def test_a_decode_stopped_from_outside_kills_the_group(speech_path, tmp_path, stop):
    """A progress callback that raises (the job was canceled) or Ctrl-C: ffmpeg does not live on."""
    fake, _, pids = _fake_ffmpeg(
        tmp_path, 'for last; do :; done\nhead -c 64000 /dev/zero > "${last#file:}"'
    )

    def progress(fraction):
        if fraction < 1.0:
            _wait_for(pids)
            raise stop

    jfk = speech_path("jfk.flac")
    with pytest.raises(type(stop)):
        decode_to_pcm(jfk, tmp_path / "out", info=probe(jfk), ffmpeg=fake, on_progress=progress)
    _assert_group_gone(pids)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_decoder_dies_with_the_process_that_started_it(speech_path, tmp_path):
    """A worker killed with kill -9 mid-decode leaves no ffmpeg running."""
    fake, _, pids = _fake_ffmpeg(tmp_path)
    code = "import sys, media; p = sys.argv[1]; media.decode_to_pcm(p, sys.argv[2], info=media.probe(p), ffmpeg=sys.argv[3])"
    parent = subprocess.Popen([sys.executable, "-c", code, str(speech_path("jfk.flac")), str(tmp_path / "out"), fake])
    try:
        _wait_for(pids)
        parent.kill()
        parent.wait()
        shell, child = map(int, pids.read_text().split())
        deadline = time.monotonic() + 5
        while _running(shell):
            assert time.monotonic() < deadline, "the decoder outlived the process that started it"
            time.sleep(0.05)
    finally:
        parent.kill()
        if pids.exists() and pids.read_text().strip():
            for pid in map(int, pids.read_text().split()):  # the stand-in's own child is not ffmpeg's
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_missing_ffmpeg(speech_path, tmp_path):
    jfk = speech_path("jfk.flac")
    with pytest.raises(media.FfmpegMissingError, match="does not exist"):
        decode_to_pcm(jfk, tmp_path / "out", info=probe(jfk), ffmpeg="/nonexistent/ffmpeg")
    assert media.find_ffmpeg("/usr/bin/env") == "/usr/bin/env"


def _samples(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<i2").astype(np.int32)


def test_one_channel_of_a_two_voice_recording(each_ffmpeg, stereo_call, speech_path, tmp_path):
    """Each channel alone is that channel's voice at its own offset (the same waveform: JFK is
    resampled from 44.1 kHz, so not bit for bit), with silence where only the other voice speaks;
    without a channel both are mixed."""
    from tests.support.media_files import STEREO_CALL_LEFT_FROM_MS, STEREO_CALL_MS, STEREO_CALL_RIGHT_FROM_MS

    info = probe(stereo_call)
    assert info.channels == 2
    voices = {}
    for name in ("jfk.flac", "asr_example.wav"):
        decode_to_pcm(speech_path(name), tmp_path / name, info=probe(speech_path(name)), ffmpeg=each_ffmpeg)
        voices[name] = _samples(tmp_path / name)
    at = {0: (STEREO_CALL_LEFT_FROM_MS, voices["jfk.flac"]), 1: (STEREO_CALL_RIGHT_FROM_MS, voices["asr_example.wav"])}
    for channel, (from_ms, voice) in at.items():
        out = tmp_path / f"c{channel}.s16le"
        assert abs(decode_to_pcm(stereo_call, out, info=info, ffmpeg=each_ffmpeg, channel=channel) - STEREO_CALL_MS) <= TOLERANCE_MS
        samples = _samples(out)
        start = from_ms * 16
        assert np.corrcoef(samples[start:start + len(voice)], voice)[0, 1] > 0.99
        assert np.abs(samples[:start]).max() <= 64 and np.abs(samples[start + len(voice):]).max() <= 64
    mixed = tmp_path / "mixed.s16le"
    decode_to_pcm(stereo_call, mixed, info=info, ffmpeg=each_ffmpeg)
    both = _samples(mixed)
    for from_ms, voice in at.values():
        window = slice(from_ms * 16, from_ms * 16 + len(voice))
        assert np.abs(both[window]).max() > 3000 and not np.array_equal(both[window], voice)


def test_a_channel_the_file_lacks_is_refused_before_ffmpeg(speech_path, tmp_path):
    mono = probe(speech_path("asr_example.wav"))
    assert mono.channels == 1
    with pytest.raises(media.NoSuchChannelError, match="has 1 channel; there is no channel 1") as err:
        decode_to_pcm(speech_path("asr_example.wav"), tmp_path / "out", info=mono, ffmpeg="/nonexistent/ffmpeg", channel=1)
    assert err.value.code == "no_such_channel" and not (tmp_path / "out").exists()
    with pytest.raises(ValueError):
        decode_to_pcm(speech_path("asr_example.wav"), tmp_path / "out", info=mono, channel=-1)
