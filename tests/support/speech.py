"""Real speech for tests and benches. The recordings live in tests/data/speech, inside the
repository (its README says where each comes from, its licence and its reference text); tests reach
them through the ``speech_dir``/``speech_path`` fixtures, benches through :data:`SPEECH_DIR`.

Long inputs are those recordings in turn, with short silences between them, repeated to the length
asked for (16 kHz mono FLAC, cached in bench/out/).

    python -m tests.support.speech 10        # prints the path of a 10-minute file, building it once
"""
from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from media import find_ffmpeg
from tests.support.settings import REPO
OUT_DIR = REPO / "bench" / "out"
SILENCE_S = (0.7, 1.5)
# The reference text of each recording (tests/data/speech/README.md).
REFERENCE = {
    "asr_example": "欢迎大家来体验达摩院推出的语音识别模型",
    "jfk": "And so my fellow Americans, ask not what your country can do for you, "
           "ask what you can do for your country.",
    "hotwords": "Then you go into your ComfyUI folder again in the ComfyUI",
}
# The language of each recording (tests/data/speech/README.md), for single-language files.
LANGUAGE_OF = {"asr_example": "zh", "jfk": "en", "hotwords": "en"}  # alternated between recordings, so VAD sees pauses of both lengths


def speech_dir() -> Path:
    """Where the real recordings and their README (the reference texts) are: the one place benches look."""
    return REPO / "tests" / "data" / "speech"


SPEECH_DIR = speech_dir()  # for the benches that name it


def _ffmpeg(ffmpeg: str, *args: str) -> None:
    subprocess.run([ffmpeg, "-nostdin", "-hide_banner", "-v", "error", *args], check=True,
                   stdin=subprocess.DEVNULL)


def _cycle(ffmpeg: str, out_dir: Path, language: str | None) -> Path:
    """Every recording (of ``language``, or all) once, each followed by a silence: the unit the long file repeats."""
    target = out_dir / f"speech-cycle{'-' + language if language else ''}.wav"
    if target.exists():
        return target
    recordings = sorted(
        p for p in speech_dir().iterdir()
        if p.suffix in {".wav", ".mp3", ".flac"} and (language is None or LANGUAGE_OF.get(p.stem) == language)
    )
    if not recordings:
        raise SystemExit(f"no recordings in {speech_dir()}")
    args: list[str] = []
    for rec in recordings:
        args += ["-i", str(rec)]
    for i in range(len(recordings)):
        args += ["-f", "lavfi", "-t", str(SILENCE_S[i % len(SILENCE_S)]), "-i", "anullsrc=r=16000:cl=mono"]
    n = len(recordings)
    parts: list[str] = []
    labels: list[str] = []
    for i in range(n):
        parts.append(f"[{i}:a]aresample=16000,aformat=sample_fmts=s16:channel_layouts=mono[r{i}]")
        labels += [f"[r{i}]", f"[{n + i}:a]"]
    graph = ";".join(parts) + ";" + "".join(labels) + f"concat=n={2 * n}:v=0:a=1[out]"
    tmp = target.with_suffix(f".{os.getpid()}.tmp.wav")
    _ffmpeg(ffmpeg, *args, "-filter_complex", graph, "-map", "[out]", "-ar", "16000", "-ac", "1", "-y", str(tmp))
    os.replace(tmp, target)
    return target


def build_speech(minutes: float, out_dir: Path = OUT_DIR, ffmpeg: str | None = None,
                 language: str | None = None) -> Path:
    """Path of a ``minutes``-long FLAC of real speech (all recordings, or one ``language``'s),
    built on first use (atomically)."""
    ffmpeg = find_ffmpeg(ffmpeg)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"speech-{minutes:g}min{'-' + language if language else ''}.flac"
    if target.exists():
        return target
    cycle = _cycle(ffmpeg, out_dir, language)
    tmp = target.with_suffix(f".{os.getpid()}.tmp.flac")
    _ffmpeg(ffmpeg, "-stream_loop", "-1", "-i", str(cycle), "-t", str(minutes * 60), "-ar", "16000", "-ac", "1",
            "-c:a", "flac", "-y", str(tmp))
    os.replace(tmp, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("minutes", type=float)
    print(build_speech(parser.parse_args().minutes))


if __name__ == "__main__":
    main()
