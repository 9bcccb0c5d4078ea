"""The probe on real speech, real video and real hostile files (PyAV in a limited child process)."""
from __future__ import annotations

import os
import shutil
import time

import psutil
import pytest

import media
from media import MediaInfo, probe, probe_prefix
from tests.support.media_files import REFERENCES, long_wav


@pytest.mark.parametrize(
    "name, duration_ms, format_name, codec, rate_hz, channels, mime",
    [("jfk.flac", 11_000, "flac", "flac", 44_100, 2, "audio/flac"),
     ("asr_example.wav", 5_550, "wav", "pcm_s16le", 16_000, 1, "audio/wav"),
     ("asr_example.mp3", 5_550, "mp3", "mp3", 16_000, 1, "audio/mpeg"),
     ("hotwords.mp3", 4_000, "mp3", "mp3", 44_100, 2, "audio/mpeg")],
)
def test_real_speech(speech_path, name, duration_ms, format_name, codec, rate_hz, channels, mime):
    info = probe(speech_path(name))
    # Within 60 ms: a listener cannot tell, and encoder padding is counted differently by builds.
    assert abs(info.duration_ms - duration_ms) <= 60
    assert (info.format_name, info.audio_codec, info.sample_rate_hz, info.channels) == (format_name, codec, rate_hz, channels)
    assert info.mime_type == mime and not info.has_video


def test_video_and_containers(make_media, speech_path):
    clip = make_media("clip.mp4", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=5.55",
                      "-i", str(speech_path("asr_example.wav")), "-shortest", "-c:v", "mpeg4", "-c:a", "aac")
    info = probe(clip)
    assert info.has_video and info.format_name == "mov" and info.audio_codec == "aac"
    assert info.mime_type == "video/mp4" and abs(info.duration_ms - 5_550) <= 100
    m4a = make_media("voice.m4a", "-i", str(speech_path("asr_example.wav")), "-c:a", "aac")
    assert probe(m4a).mime_type == "audio/mp4" and not probe(m4a).has_video
    webm = make_media("voice.webm", "-i", str(speech_path("asr_example.wav")), "-c:a", "libopus")
    assert (probe(webm).format_name, probe(webm).mime_type) == ("matroska", "audio/webm")


def test_type_comes_from_the_content_never_the_name(speech_path, tmp_path):
    """An upload named page.html that is a FLAC is served as audio/flac, never as a page."""
    for name in ("page.html", "image.svg", "noext"):
        shutil.copy(speech_path("jfk.flac"), tmp_path / name)
        assert probe(tmp_path / name).mime_type == "audio/flac"


@pytest.mark.parametrize("kind", sorted(REFERENCES))
def test_files_naming_other_files_or_holding_no_media_are_refused(reference_file, kind):
    path = reference_file(kind)
    with pytest.raises(media.MediaError) as err:
        probe(path)
    assert err.value.code == "bad_media", err.value.message
    assert "tingxie" in err.value.message  # a sentence for a person, not ffmpeg's log line


def test_playlists_are_refused_by_what_they_are(reference_file):
    """Where ffmpeg recognises a playlist or script, the refusal says which (the log keeps ffmpeg's words)."""
    for kind, words in (("hls-m3u8", "HLS playlist"), ("concat-relative", "concat script"), ("sdp", "SDP"),
                        ("srt", "subtitle"), ("ffmetadata", "metadata")):
        with pytest.raises(media.RefusedFormatError) as err:
            probe(reference_file(kind))
        assert words in err.value.message and err.value.detail


def test_images_and_image_sequences_are_refused(image_sequence, tmp_path):
    shutil.copy(tmp_path / "img002.png", tmp_path / "cover.mp3")
    for path in (image_sequence, tmp_path / "cover.mp3", tmp_path / "img001.png"):
        with pytest.raises(media.RefusedFormatError) as err:
            probe(path)
        assert err.value.code == "bad_media" and "image" in err.value.message


def test_empty_missing_and_special_files(tmp_path):
    (tmp_path / "empty.mp3").touch()
    with pytest.raises(media.EmptyMediaError) as err:
        probe(tmp_path / "empty.mp3")
    assert err.value.code == "empty_file" and "0 bytes" in err.value.message
    with pytest.raises(media.MediaError, match="does not exist"):
        probe(tmp_path / "gone.mp3")
    fifo = tmp_path / "pipe.mp3"
    os.mkfifo(fifo)  # opening it would wait forever for a writer
    with pytest.raises(media.MediaError, match="not a regular file"):
        probe(fifo)


def test_truncated_files(speech_path, tmp_path):
    data = speech_path("asr_example.mp3").read_bytes()
    for size in (len(data) // 4, 5000):
        cut = tmp_path / f"cut{size}.mp3"
        cut.write_bytes(data[:size])
        with pytest.raises(media.TruncatedMediaError) as err:
            probe(cut)
        assert err.value.code == "truncated_media" and "cut short" in err.value.message
    head = tmp_path / "head.flac"
    head.write_bytes(speech_path("jfk.flac").read_bytes()[:3000])
    with pytest.raises(media.TruncatedMediaError):
        probe(head)
    nearly = tmp_path / "nearly.mp3"
    nearly.write_bytes(data[: len(data) * 9 // 10])
    assert abs(probe(nearly).duration_ms - 5_550) <= 60  # most of it is there: the decode decides


def test_video_without_audio(make_media):
    video = make_media("silent.mp4", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=2", "-c:v", "mpeg4")
    with pytest.raises(media.NoAudioStreamError) as err:
        probe(video)
    assert err.value.code == "no_audio" and "video only" in err.value.message


def test_subtitle_only_matroska_has_no_audio(make_media, tmp_path):
    (tmp_path / "in.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nhello\n")
    subs = make_media("subs.mkv", "-i", str(tmp_path / "in.srt"), "-c:s", "copy")
    with pytest.raises(media.NoAudioStreamError):
        probe(subs)


def test_longer_than_the_cap(speech_path):
    with pytest.raises(media.MediaTooLongError) as err:
        probe(speech_path("jfk.flac"), max_duration_ms=5_000)
    assert err.value.code == "too_long" and "11.0 s" in err.value.message and "5.0 s" in err.value.message
    assert probe(speech_path("jfk.flac"), max_duration_ms=11_000).duration_ms == 11_000


FIVE_MINUTES = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=300")


def _first_mib(path, tmp_path):
    """The first MiB of ``path``, as a fetch has it when the first probe runs."""
    assert path.stat().st_size > 1 << 20, path
    part = tmp_path / f"{path.name}.part"
    part.write_bytes(path.read_bytes()[: 1 << 20])
    return part


@pytest.mark.parametrize("name, args, message", [
    # Declared up front: the whole length.
    ("declared.mp3", ("-c:a", "libmp3lame", "-b:a", "32k"), "lasts at least 5m00s"),  # Xing/Info frame
    ("declared.flac", ("-c:a", "flac"), "lasts at least 5m00s"),  # STREAMINFO
    ("declared.m4a", ("-c:a", "aac", "-b:a", "32k", "-movflags", "+faststart"), "lasts at least 5m00s"),
    ("declared.webm", ("-c:a", "libopus", "-b:a", "32k"), "lasts at least 5m00s"),  # Matroska's Duration
    # Nothing declared: what the first MiB already holds, by size and bit rate, or its last page.
    ("plain.mp3", ("-c:a", "libmp3lame", "-b:a", "32k", "-write_xing", "0"), "lasts at least 4m22s"),
    ("plain.opus", ("-c:a", "libopus", "-b:a", "32k"), "lasts at least "),
    # Nothing declared nor estimated (a live recording's WebM): a packet found past the cap.
    ("live.webm", ("-c:a", "libopus", "-b:a", "32k", "-live", "1"), "The file is longer than"),
])
def test_a_first_part_over_the_cap_is_too_long(make_media, tmp_path, name, args, message):
    """The first MiB of five minutes says so under a one-minute cap, and is no error under a
    ten-minute one (a cut file is not truncated here: it is still arriving)."""
    part = _first_mib(make_media(name, *FIVE_MINUTES, *args), tmp_path)
    with pytest.raises(media.MediaTooLongError) as err:
        probe_prefix(part, max_duration_ms=60_000)
    assert err.value.code == "too_long" and message in err.value.message
    assert "longer than the 1m00s this service accepts" in err.value.message
    probe_prefix(part, max_duration_ms=600_000)


def test_a_wav_header_counts_where_the_whole_file_holds_it(tmp_path):
    """ffmpeg trusts a WAV's data size only inside the file: from a first part alone it reads what
    is there (32.8 s of 16 kHz in 1 MiB). Told the whole file's size, the header's ten minutes count
    when that size holds them; a placeholder size (a stream's 0xFFFFFFFF) or one the file cannot
    hold does not."""
    made = long_wav(600)
    there_ms = round(((1 << 20) - len(made.head)) / 32)  # 16-bit samples at 16 kHz: 32 bytes a ms
    part = tmp_path / "head.wav"
    part.write_bytes(b"".join(made.pieces())[: 1 << 20])
    assert probe_prefix(part, max_duration_ms=60_000).duration_ms == there_ms
    with pytest.raises(media.MediaTooLongError, match="lasts at least 10m00s"):
        probe_prefix(part, max_duration_ms=60_000, whole_bytes=made.size)
    assert probe_prefix(part, max_duration_ms=60_000, whole_bytes=made.size - 1).duration_ms == there_ms
    streamed = bytearray(part.read_bytes())
    streamed[40:44] = b"\xff\xff\xff\xff"
    part.write_bytes(bytes(streamed))
    assert probe_prefix(part, max_duration_ms=60_000, whole_bytes=made.size).duration_ms == there_ms


def test_a_first_part_that_does_not_open_is_not_too_long(make_media, tmp_path):
    """An MP4 whose index comes last: its first MiB is not media yet, and says nothing of its length."""
    part = _first_mib(make_media("late.m4a", *FIVE_MINUTES, "-c:a", "aac", "-b:a", "32k"), tmp_path)
    with pytest.raises(media.MediaError) as err:
        probe_prefix(part, max_duration_ms=60_000)
    assert err.value.code == "bad_media"


def _readers_left() -> list:
    """Processes the probe's fork server forked that still run (its watchers and readers), waited
    for: a watcher reports, then exits."""
    servers = [child for child in psutil.Process().children()
               if "media._probe_zygote" in " ".join(child.cmdline())]
    assert servers, "the probe's fork server is not running"
    left = [p for server in servers for p in server.children(recursive=True)]
    gone, alive = psutil.wait_procs(left, timeout=30)
    return alive


def test_a_probe_past_its_time_is_killed_with_its_reader(speech_path):
    """A microsecond: the reader's alarm goes off before it can have read anything."""
    with pytest.raises(media.MediaTimeoutError) as err:
        probe(speech_path("jfk.flac"), timeout_s=1e-6)
    assert err.value.code == "media_timeout"
    assert _readers_left() == []


def test_the_probe_runs_under_a_memory_limit(speech_path):
    """With too little address space the reader runs out of it (where depends on what it maps
    first: PyAV's modules, a system call, libavformat): the limit is real, and the answer says so."""
    with pytest.raises(media.MediaError) as err:
        probe(speech_path("jfk.flac"), memory_bytes=64 << 20)
    assert err.value.code == "bad_media" and "more memory than tingxie allows" in err.value.message, err.value.detail
    assert _readers_left() == []


def test_media_info_round_trips_through_json(speech_path):
    info = probe(speech_path("hotwords.mp3"))
    assert MediaInfo.from_json(info.to_json()) == info
    assert MediaInfo.from_dict(info.to_dict()) == info
    stored = info.to_dict()
    for bad in ({**stored, "format_name": "mp3\n-i"}, {**stored, "duration_ms": "4000"},
                {**stored, "channels": -1}, {k: v for k, v in stored.items() if k != "mime_type"},
                {**stored, "extra": 1}):
        with pytest.raises(ValueError):
            MediaInfo.from_dict(bad)


def test_tags_that_are_not_utf8_are_read_with_replacement(speech_path, tmp_path):
    """A WAV whose INFO tag is Latin-1 made PyAV raise in the probe child, which died with a traceback."""
    from tests.support.media_files import with_latin1_info_tag

    tagged = with_latin1_info_tag(speech_path("asr_example.wav"), tmp_path / "tagged.wav")
    assert probe(tagged) == probe(speech_path("asr_example.wav"))
