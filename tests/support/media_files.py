"""Media files with awkward but legal contents, built byte by byte for tests."""
from __future__ import annotations

import struct
from pathlib import Path


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
