"""Recordings with known speaker turns, cut from real voices in tests/data/speech, and the
measures a diarized transcript of them is held to.

JFK (jfk.flac, English) and the FunASR example speaker (asr_example.wav, Mandarin) take turns,
five in all, each clip cut at a pause between words, one second of silence between turns:

    A "And so my fellow Americans," | B "欢迎大家来体验" | A "ask not what your country can do for you," |
    B "达摩院推出的语音识别模型" | A "ask what you can do for your country."
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

GAP_MS = 1000


@dataclass(frozen=True)
class Clip:
    speaker: str  # the true speaker: A or B
    file: str
    start_ms: int
    end_ms: int


TWO_VOICES = (
    Clip("A", "jfk.flac", 0, 2700),
    Clip("B", "asr_example.wav", 0, 2420),
    Clip("A", "jfk.flac", 2700, 7700),
    Clip("B", "asr_example.wav", 2420, 5546),
    Clip("A", "jfk.flac", 7700, 11000),
)

# The same with a third voice (hotwords.mp3, an English tutorial) after each of B's turns.
THREE_VOICES = (
    Clip("A", "jfk.flac", 0, 2700),
    Clip("B", "asr_example.wav", 0, 2420),
    Clip("C", "hotwords.mp3", 0, 2220),
    Clip("A", "jfk.flac", 2700, 7700),
    Clip("B", "asr_example.wav", 2420, 5546),
    Clip("C", "hotwords.mp3", 2220, 4040),
    Clip("A", "jfk.flac", 7700, 11000),
)

# The two voices with no pause between turns: each clip cut close around its words (Whisper's
# word times on the clips alone), laid end to end, so a turn changes inside one stretch of speech.
TWO_VOICES_CLOSE = (
    Clip("A", "jfk.flac", 100, 2150),
    Clip("B", "asr_example.wav", 740, 2420),
    Clip("A", "jfk.flac", 3150, 7400),
    Clip("B", "asr_example.wav", 2420, 5080),
    Clip("A", "jfk.flac", 7940, 10400),
)

# One voice only: jfk.flac twice.
ONE_VOICE = (Clip("A", "jfk.flac", 0, 11000), Clip("A", "jfk.flac", 0, 11000))


@dataclass(frozen=True)
class Turn:
    """Where a clip lies in the built file."""

    speaker: str
    start_ms: int
    end_ms: int


def build(
    speech_dir: Path, out: Path, ffmpeg: str, clips: Sequence[Clip] = TWO_VOICES, gap_ms: int = GAP_MS
) -> list[Turn]:
    """Write ``out`` (16 kHz mono WAV; ``gap_ms`` of silence between clips) with ffmpeg and
    return its turns."""
    args = [ffmpeg, "-nostdin", "-v", "error"]
    chains, labels = [], []
    turns: list[Turn] = []
    at = 0
    for n, clip in enumerate(clips):
        args += ["-i", str(Path(speech_dir) / clip.file)]
        if n and gap_ms:
            chains.append(f"anullsrc=r=16000:cl=mono,atrim=duration={gap_ms / 1000}[g{n}]")
            labels.append(f"[g{n}]")
            at += gap_ms
        chains.append(
            f"[{n}:a]aresample=16000,aformat=sample_fmts=s16:channel_layouts=mono,"
            f"atrim=start={clip.start_ms / 1000}:end={clip.end_ms / 1000},asetpts=PTS-STARTPTS[c{n}]"
        )
        labels.append(f"[c{n}]")
        turns.append(Turn(clip.speaker, at, at + clip.end_ms - clip.start_ms))
        at += clip.end_ms - clip.start_ms
    graph = ";".join(chains) + f";{''.join(labels)}concat=n={len(labels)}:v=0:a=1[out]"
    subprocess.run([*args, "-filter_complex", graph, "-map", "[out]", "-ar", "16000", "-ac", "1", "-y", str(out)],
                   check=True, stdin=subprocess.DEVNULL)
    return turns


@dataclass(frozen=True)
class TurnScore:
    """``boundary_errors_ms``: for each true change of speaker, how far the nearest change in
    the transcript's word labels lies from it (None: no change found). ``extra_changes``: changes
    in the labels beyond the true ones. ``accuracy``: the share of words whose label is their
    true speaker's, true speakers mapped to labels by which label most of their words got."""

    boundary_errors_ms: list[int | None]
    extra_changes: int
    accuracy: float
    mapping: dict[str, str]


def score(words: Sequence[tuple[int, int, str]], turns: Sequence[Turn]) -> TurnScore:
    """``words``: ``(start_ms, end_ms, speaker)`` in time order."""
    def truth(start: int, end: int) -> str:
        # The turn nearest the word's middle: an aligner may stretch a word into the silence.
        middle = (start + end) / 2
        return min(turns, key=lambda t: max(t.start_ms - middle, middle - t.end_ms, 0)).speaker

    true = [truth(s, e) for s, e, _ in words]
    true_changes = [words[i][0] for i in range(1, len(words)) if true[i] != true[i - 1]]
    found_changes = [words[i][0] for i in range(1, len(words)) if words[i][2] != words[i - 1][2]]
    errors = [min((abs(c - t) for c in found_changes), default=None) for t in true_changes]
    votes: dict[str, dict[str, int]] = {}
    for speaker, (_, _, label) in zip(true, words):
        votes.setdefault(speaker, {}).setdefault(label, 0)
        votes[speaker][label] += 1
    mapping = {speaker: max(counts, key=counts.get) for speaker, counts in votes.items()}
    right = sum(1 for speaker, (_, _, label) in zip(true, words) if mapping[speaker] == label)
    return TurnScore(
        boundary_errors_ms=errors,
        extra_changes=max(0, len(found_changes) - len(true_changes)),
        accuracy=right / len(words) if words else 0.0,
        mapping=mapping,
    )
