"""Media fixtures: both ffmpeg builds, media made on the fly, and hostile files built for real.

``each_ffmpeg`` runs each test that takes it twice: with the binary imageio-ffmpeg bundles (what a
fresh clone gets) and with Debian's /usr/bin/ffmpeg (what the Docker image runs; .ci/run installs
it). The probe does not use either (PyAV brings its own libavformat); the decode uses the one given.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SYSTEM_FFMPEG = "/usr/bin/ffmpeg"


def bundled_ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="session", params=["bundled", "system"])
def each_ffmpeg(request) -> str:
    if request.param == "bundled":
        return bundled_ffmpeg()
    if not os.access(SYSTEM_FFMPEG, os.X_OK):
        pytest.skip(f"no system ffmpeg at {SYSTEM_FFMPEG} (apt-get install ffmpeg; .ci/run does)")
    return SYSTEM_FFMPEG


@pytest.fixture
def other_upload(tmp_path, speech_path) -> Path:
    """Another tenant's upload on the same disk: what a hostile file tries to make ffmpeg read."""
    target = tmp_path / "media" / "other-job" / "secret.mp3"
    target.parent.mkdir(parents=True)
    shutil.copy(speech_path("asr_example.mp3"), target)
    return target


def _hls(target: str) -> str:
    return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{target}\n#EXT-X-ENDLIST\n"


def _dash(target: str) -> str:
    return ('<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
            'mediaPresentationDuration="PT6S" minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">'
            '<Period><AdaptationSet mimeType="audio/mpeg"><Representation id="a" bandwidth="64000" codecs="mp3">'
            f"<BaseURL>{target}</BaseURL></Representation></AdaptationSet></Period></MPD>\n")


SDP = ("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=tingxie\nc=IN IP4 127.0.0.1\nt=0 0\n"
       "m=audio 5004 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n")
SRT = "1\n00:00:01,000 --> 00:00:02,500\nhello there\n\n2\n00:00:03,000 --> 00:00:04,000\nsecond line\n"

# Files that name another file (or a URL) for ffmpeg to open, or hold no media of their own:
# name -> (file name, builder(tmp_path, other_upload) -> bytes). Each is refused at probe as bad_media.
REFERENCES = {
    "hls-absolute": ("x.mp3", lambda d, other: _hls(str(other)).encode()),
    "hls-relative": ("x.mp3", lambda d, other: _hls(os.path.relpath(other, d)).encode()),
    "hls-m3u8": ("list.m3u8", lambda d, other: _hls(str(other)).encode()),
    "concat-absolute": ("x.mp3", lambda d, other: f"ffconcat version 1.0\nfile '{other}'\n".encode()),
    "concat-relative": ("x.mp3", lambda d, other: f"ffconcat version 1.0\nfile '{os.path.relpath(other, d)}'\n".encode()),
    "dash": ("x.mp3", lambda d, other: _dash(str(other)).encode()),
    "dash-mpd": ("x.mpd", lambda d, other: _dash(str(other)).encode()),
    "sdp": ("x.mp3", lambda d, other: SDP.encode()),
    "sdp-named-sdp": ("x.sdp", lambda d, other: SDP.encode()),
    "srt": ("x.mp3", lambda d, other: SRT.encode()),
    "ffmetadata": ("x.mp3", lambda d, other: b";FFMETADATA1\ntitle=hello\n"),
    "text": ("x.mp3", lambda d, other: b"this is a shopping list, not a recording\n" * 20),
}


@pytest.fixture
def reference_file(tmp_path, other_upload):
    """reference_file(kind) -> the hostile file of REFERENCES[kind], in an upload folder of its own."""

    def build(kind: str) -> Path:
        name, content = REFERENCES[kind]
        folder = tmp_path / "media" / "attacker-job"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(content(folder, other_upload))
        return path

    return build


@pytest.fixture
def image_sequence(make_media, tmp_path) -> Path:
    """Three PNG frames and a file literally named like their pattern (img%03d.png)."""
    make_media("img%03d.png", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=1:duration=3")
    pattern = tmp_path / "img%03d.png"
    shutil.copy(tmp_path / "img001.png", pattern)
    return pattern
