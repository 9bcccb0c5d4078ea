"""Hotword lists: parsing the shapes users send, merging with the server-wide file, the size cap.

Shapes accepted (the FunASR runtime and its clients use all of them):
- a JSON object, ``{"阿里巴巴": 20, "通义实验室": "30"}``;
- FunASR's hotword file, one ``word weight`` a line (the weight is optional; a phrase may contain spaces);
- comma-joined words (``,``, ``，`` or ``、``), weights dropped;
- plain space-separated words.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

Hotwords = list[tuple[str, "float | None"]]

_COMMAS = re.compile(r"[,，、]")


class HotwordError(ValueError):
    """A hotword list that cannot be used as given; the message says why."""


def _weight(value) -> float:
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


def _dedupe(items: Hotwords) -> Hotwords:
    """Later entries win, first position is kept."""
    merged: dict[str, float | None] = {}
    for word, weight in items:
        if word in merged and weight is None:
            continue
        merged[word] = weight
    return list(merged.items())


def parse_hotwords(text: str | None) -> Hotwords:
    """Parse any accepted shape into ``[(word, weight or None), ...]`` without duplicates."""
    if text is None:
        return []
    text = text.strip()
    if not text:
        return []
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HotwordError(f"hotwords look like JSON but do not parse: {exc.msg}") from None
        if not isinstance(data, dict):
            raise HotwordError("hotwords in JSON must be an object of word: weight")
        return _dedupe([(str(k).strip(), _weight(v)) for k, v in data.items() if str(k).strip()])
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        return _dedupe([_parse_line(line) for line in lines])
    line = lines[0]
    if _COMMAS.search(line):
        return _dedupe([(w.strip(), None) for w in _COMMAS.split(line) if w.strip()])
    parts = line.split()
    if len(parts) == 2 and _is_number(parts[1]) and not _is_number(parts[0]):
        return [(parts[0], float(parts[1]))]
    return _dedupe([(w, None) for w in parts])


def _parse_line(line: str) -> tuple[str, float | None]:
    parts = line.split()
    if len(parts) >= 2 and _is_number(parts[-1]):
        return " ".join(parts[:-1]), float(parts[-1])
    return line, None


def load_hotword_file(path: Path) -> Hotwords:
    """The server-wide file (FunASR's ``--hotword``): one ``word weight`` a line, ``#`` comments."""
    lines = [
        line.strip()
        for line in Path(path).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return _dedupe([_parse_line(line) for line in lines])


def merge(server: Hotwords, job: Hotwords) -> Hotwords:
    """The job's own words win over the server file's weights."""
    return _dedupe(list(server) + list(job))


def check_cap(hotwords: Hotwords, max_hotwords: int) -> Hotwords:
    if len(hotwords) > max_hotwords:
        raise HotwordError(
            f"{len(hotwords)} hotwords given; at most {max_hotwords} are allowed "
            "(TINGXIE_MAX_HOTWORDS raises the limit)"
        )
    return hotwords


def to_text(hotwords: Hotwords) -> str:
    """Back to FunASR's file format, one ``word weight`` a line."""
    return "\n".join(word if weight is None else f"{word} {weight:g}" for word, weight in hotwords)
