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
