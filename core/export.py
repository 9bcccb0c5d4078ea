"""Transcript exports: JSON, TXT, SRT, VTT, rendered from the stored transcript dict."""
from __future__ import annotations

import json

FORMATS = {
    "json": "application/json; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


def _clock(ms: int, sep: str) -> str:
    ms = max(0, int(ms))
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{millis:03d}"


def _cues(data: dict):
    for segment in data.get("segments", []):
        text = segment["text"].strip()
        if text:
            yield segment["start_ms"], max(segment["end_ms"], segment["start_ms"] + 1), text


def to_txt(data: dict) -> str:
    lines = [text for _, _, text in _cues(data)]
    return "\n".join(lines) + ("\n" if lines else "")


def to_srt(data: dict) -> str:
    blocks = [
        f"{i}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n"
        for i, (start, end, text) in enumerate(_cues(data), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(data: dict) -> str:
    blocks = [f"{_clock(start, '.')} --> {_clock(end, '.')}\n{text}\n" for start, end, text in _cues(data)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


_RENDERERS = {"json": to_json, "txt": to_txt, "srt": to_srt, "vtt": to_vtt}


def render(data: dict, fmt: str) -> str:
    try:
        return _RENDERERS[fmt](data)
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}") from None
