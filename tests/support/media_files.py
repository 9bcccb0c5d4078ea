"""Media files with awkward but legal contents, built byte by byte for tests; and hostile files
that name another file (or a URL) for ffmpeg to open (``REFERENCES``).

``SYSTEM_FFMPEG`` is Debian's /usr/bin/ffmpeg (what the Docker image runs); ``bundled_ffmpeg()`` the
binary imageio-ffmpeg bundles (what a fresh clone gets)."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

SYSTEM_FFMPEG = "/usr/bin/ffmpeg"


def bundled_ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def with_latin1_info_tag(wav: Path, out: Path, title: bytes = b"Caf\xe9 cr\xe8me br\xfbl\xe9e") -> Path:
    """``wav`` with a RIFF ``LIST/INFO`` chunk whose title is Latin-1 (not UTF-8), as many Windows
    tools write it. The audio is untouched."""
    data = bytearray(wav.read_bytes())
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", f"{wav} is not a RIFF WAVE file"
    if len(data) % 2:
        data += b"\0"  # chunks start on even offsets
    value = title + b"\0"
    if len(value) % 2:
        value += b"\0"
    info = b"INFO" + b"INAM" + struct.pack("<I", len(value)) + value
    data += b"LIST" + struct.pack("<I", len(info)) + info
    struct.pack_into("<I", data, 4, len(data) - 8)
    out.write_bytes(bytes(data))
    return out


@dataclass(frozen=True)
class MadeUpMedia:
    """A long file made as it is served (``head``, then ``unit`` repeated up to ``size`` bytes), so
    that hours of audio cost neither disk nor memory: what a test server streams to a fetch."""

    head: bytes
    unit: bytes
    size: int

    def pieces(self) -> Iterator[bytes]:
        yield self.head
        left = self.size - len(self.head)
        while left > 0:
            piece = self.unit[:left]
            left -= len(piece)
            yield piece


def long_wav(seconds: float, rate_hz: int = 16_000) -> MadeUpMedia:
    """A 16-bit mono WAV of silence whose header declares ``seconds`` (and whose data holds them)."""
    data_bytes = int(seconds * rate_hz) * 2
    head = (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate_hz, rate_hz * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))
    return MadeUpMedia(head, bytes(64 * 1024), len(head) + data_bytes)


# An MPEG-1 Layer III frame at 48 kHz, 320 kbit/s, mono, without CRC: 960 bytes, 24 ms. All-zero
# side information and main data decode to silence.
_MP3_HEADER = bytes([0xFF, 0xFB, 0xE4, 0xC0])
_MP3_FRAME_BYTES = 960
_MP3_FRAME_MS = 24


def long_mp3(seconds: float, *, xing: bool) -> MadeUpMedia:
    """A constant-rate MP3 of silence, ``seconds`` long: with ``xing``, a first frame whose Xing
    tag declares the frame count (the length, as encoders write it); without, nothing declares
    the length (ffmpeg estimates it from the size and the bit rate)."""
    frames = round(seconds * 1000 / _MP3_FRAME_MS)
    silent = _MP3_HEADER + bytes(_MP3_FRAME_BYTES - 4)
    head = b""
    if xing:  # after the header and mono's 17 bytes of side information; flag 1: a frame count follows
        tag = _MP3_HEADER + bytes(17) + b"Xing" + struct.pack(">II", 1, frames)
        head = tag + bytes(_MP3_FRAME_BYTES - len(tag))
    return MadeUpMedia(head, silent * 64, len(head) + frames * _MP3_FRAME_BYTES)


# The two-voice call recording: JFK (English, a man) on channel 0 from this second, the Mandarin
# example (asr_example.wav) on channel 1 from this one; 16 kHz stereo WAV, 17.5 s long.
STEREO_CALL_LEFT_FROM_MS = 6_000
STEREO_CALL_RIGHT_FROM_MS = 500
STEREO_CALL_MS = 17_500


def two_voice_stereo(ffmpeg: str, speech_dir: Path, out: Path) -> Path:
    """A two-channel recording of two different real voices, each alone on its channel and starting
    at its own time (the right one first), as a call recorder writes agent and customer."""
    import subprocess

    def voice(index: int, from_ms: int, label: str) -> str:
        return (f"[{index}:a]aresample=16000,pan=mono|c0=c0,adelay={from_ms}:all=1,"
                f"apad=whole_dur={STEREO_CALL_MS / 1000:.3f}[{label}]")

    graph = ";".join([voice(0, STEREO_CALL_LEFT_FROM_MS, "l"), voice(1, STEREO_CALL_RIGHT_FROM_MS, "r"),
                      "[l][r]join=inputs=2:channel_layout=stereo[a]"])
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(speech_dir / "jfk.flac"),
                    "-i", str(speech_dir / "asr_example.wav"), "-filter_complex", graph, "-map", "[a]",
                    "-t", f"{STEREO_CALL_MS / 1000:.3f}", "-c:a", "pcm_s16le", "-y", str(out)],
                   check=True, stdin=subprocess.DEVNULL)
    return out
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
