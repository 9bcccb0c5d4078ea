"""Hotword lists: parsing the shapes users send into the contract's :class:`~contract.Hotword`,
merging with a server-wide file, a job's caps.

Shapes accepted (the FunASR runtime and its clients use all of them):
- a JSON object, ``{"阿里巴巴": 20, "通义实验室": "30"}``;
- FunASR's hotword file, one ``word weight`` a line (the weight is optional; a phrase may contain spaces);
- comma-joined words (``,``, ``，`` or ``、``), weights dropped;
- plain space-separated words.

Every entry is a :class:`contract.Hotword`, checked when it is made: a phrase of at most
:data:`MAX_HOTWORD_CHARS` printable characters and a finite weight in (0, :data:`MAX_WEIGHT`].
The count and total-size caps of a whole job are applied once, at submission (core.submit).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from contract.hotwords import MAX_HOTWORD_CHARS, MAX_WEIGHT, Hotword, HotwordError, Hotwords

__all__ = ["MAX_HOTWORDS_BYTES", "MAX_HOTWORD_CHARS", "MAX_WEIGHT", "Hotword", "HotwordError", "Hotwords",
           "check_caps", "load_hotword_file", "merge", "parse_hotwords", "to_text"]

# All of a job's hotwords together, as UTF-8 (a thousand phrases of a few words each fit).
MAX_HOTWORDS_BYTES = 64 * 1024

_COMMAS = re.compile(r"[,，、]")


def _weight(value) -> float:
    if isinstance(value, bool):
        raise HotwordError(f"hotword weight {value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise HotwordError(f"hotword weight {value!r} is not a number") from None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _dedupe(items) -> Hotwords:
    """Later entries win, first position is kept; a later entry without a weight keeps the earlier weight."""
    merged: dict[str, Hotword] = {}
    for item in items:
        if item.text in merged and item.weight is None:
            continue
        merged[item.text] = item
    return tuple(merged.values())


def parse_hotwords(text: str | None) -> Hotwords:
    """Parse any accepted shape into typed entries without duplicates."""
    if text is None:
        return ()
    text = text.strip()
    if not text:
        return ()
    if len(text.encode()) > MAX_HOTWORDS_BYTES:
        raise HotwordError(f"the hotword list is {len(text.encode())} bytes; at most {MAX_HOTWORDS_BYTES} are allowed")
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HotwordError(f"hotwords look like JSON but do not parse: {exc.msg}") from None
        if not isinstance(data, dict):
            raise HotwordError("hotwords in JSON must be an object of word: weight")
        return _dedupe(Hotword(str(k), _weight(v)) for k, v in data.items() if str(k).strip())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        return _dedupe(_parse_line(line) for line in lines)
    line = lines[0]
    if _COMMAS.search(line):
        return _dedupe(Hotword(w) for w in _COMMAS.split(line) if w.strip())
    parts = line.split()
    if len(parts) == 2 and _is_number(parts[1]) and not _is_number(parts[0]):
        return (Hotword(parts[0], _weight(parts[1])),)
    return _dedupe(Hotword(w) for w in parts)


def _parse_line(line: str) -> Hotword:
    parts = line.split()
    if len(parts) >= 2 and _is_number(parts[-1]):
        return Hotword(" ".join(parts[:-1]), _weight(parts[-1]))
    return Hotword(line)


def load_hotword_file(path: Path) -> Hotwords:
    """A server-wide file (FunASR's ``--hotword``): one ``word weight`` a line, ``#`` comments."""
    lines = [
        line.strip()
        for line in Path(path).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return _dedupe(_parse_line(line) for line in lines)


def merge(server: Hotwords, job: Hotwords) -> Hotwords:
    """The job's own words win over the server file's weights."""
    return _dedupe(tuple(server) + tuple(job))


def check_caps(hotwords: Hotwords, max_hotwords: int) -> Hotwords:
    """A job's whole list: at most ``max_hotwords`` entries and :data:`MAX_HOTWORDS_BYTES` of text."""
    if len(hotwords) > max_hotwords:
        raise HotwordError(
            f"{len(hotwords)} hotwords given; at most {max_hotwords} are allowed "
            "(TINGXIE_MAX_HOTWORDS raises the limit)"
        )
    size = sum(len(h.text.encode()) + 1 for h in hotwords)
    if size > MAX_HOTWORDS_BYTES:
        raise HotwordError(f"the hotwords come to {size} bytes; at most {MAX_HOTWORDS_BYTES} are allowed")
    return hotwords


def to_text(hotwords: Hotwords) -> str:
    """Back to FunASR's file format, one ``word weight`` a line."""
    return "\n".join(h.text if h.weight is None else f"{h.text} {h.weight:g}" for h in hotwords)
