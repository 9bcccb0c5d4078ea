"""Channels apart: a call recording's channels (agent on one, customer on the other) transcribed
one by one and merged by time.

Each channel is decoded alone (:func:`media.decode_to_pcm` with ``channel``) and runs the whole
pipeline as a mono file would, so VAD never hears the other side and overlapping speech is not
mixed. The sentences are then merged in order of their start, each with its ``channel`` and the
speaker ``C<n>`` of that channel, so every rendering of speakers (exports, the OpenAI door, the
gateway's ``spk``) shows the channel, and naming the speakers names the channels.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Mapping

import media
from media import MediaInfo
from pipeline.checkpoint import BatchResult, Checkpoint
from pipeline.stages import Engine
from pipeline.text import join_words
from contract import Segment, Speaker, Transcript
from contract.channels import MAX_CHANNELS
from pipeline.types import Progress, TranscribeOptions


def channel_speaker(channel: int) -> str:
    """The speaker id of a channel's sentences: ``C0``, ``C1``..."""
    return f"C{channel}"


def transcribe_channels(
    path: str | Path,
    options: TranscribeOptions,
    engine: Engine,
    *,
    work_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
    max_duration_ms: int | None = None,
    ffmpeg: str | None = None,
    media_info: MediaInfo | None = None,
    checkpoint: Checkpoint | None = None,
    transcribe_one: Callable[..., Transcript],
) -> Transcript:
    """``transcribe_one`` (:func:`pipeline.run.transcribe`, which calls this) of each channel of ``path`` (the first MAX_CHANNELS), merged.

    Arguments as for ``transcribe``. Progress runs once from 0 to 1 over all channels. The file is
    probed once (unless ``media_info`` is given); a mono file (or one whose channels the probe
    could not count) is transcribed as one channel, with a warning. Each channel's ASR batches are
    kept in ``checkpoint`` under a scope of their own, so a resumed job skips what any channel
    finished.
    """
    info = media_info if media_info is not None else media.probe(path, max_duration_ms=max_duration_ms)
    warnings: list[str] = []
    if info.channels is None or info.channels < 2:
        warnings.append("channels=separate: the audio has one channel (it is mono), so it was transcribed as "
                        "channel 0 alone.")
    elif info.channels > MAX_CHANNELS:
        warnings.append(f"channels=separate: the audio has {info.channels} channels; only the first {MAX_CHANNELS} "
                        f"(0 to {MAX_CHANNELS - 1}) were transcribed.")
    count = min(info.channels or 1, MAX_CHANNELS)
    results: list[Transcript] = []
    for channel in range(count):
        one = dataclasses.replace(options, channels="mix", channel_names=(),
                                  # A file whose channels are unknown is decoded as ffmpeg mixes it.
                                  channel=channel if info.channels else None)
        results.append(transcribe_one(
            path, one, engine, work_dir=work_dir,
            on_progress=_share(on_progress, channel, count),
            max_duration_ms=max_duration_ms, ffmpeg=ffmpeg, media_info=info,
            checkpoint=None if checkpoint is None else _ChannelCheckpoint(checkpoint, channel),
        ))
    return merge_channels(results, options, warnings)


def merge_channels(results: list[Transcript], options: TranscribeOptions, warnings: list[str]) -> Transcript:
    """One transcript of channel ``i``'s transcript ``results[i]``: sentences in order of their start
    (the lower channel first at the same time), each labelled with its channel and speaker."""
    segments = sorted(
        (_labelled(segment, channel) for channel, result in enumerate(results) for segment in result.segments),
        key=lambda s: (s.start_ms, s.channel, s.end_ms),
    )
    speech_ms: dict[str, int] = {}
    for result in results:
        if result.language:
            speech_ms[result.language] = speech_ms.get(result.language, 0) + sum(
                s.end_ms - s.start_ms for s in result.segments)
    if speech_ms:
        language = max(speech_ms, key=speech_ms.__getitem__)
    else:
        language = options.language if options.language != "auto" else ""
    names = options.channel_names
    return Transcript(
        text=join_words(s.text for s in segments),
        language=language,
        duration_ms=max((r.duration_ms for r in results), default=0),
        segments=segments,
        warnings=list(dict.fromkeys([*warnings, *(w for r in results for w in r.warnings)])),
        speakers=[Speaker(channel_speaker(c), names[c] if c < len(names) else None) for c in range(len(results))],
    )


def _labelled(segment: Segment, channel: int) -> Segment:
    speaker = channel_speaker(channel)
    return dataclasses.replace(segment, channel=channel, speaker=speaker,
                               words=tuple(dataclasses.replace(w, speaker=speaker) for w in segment.words))


def _share(on_progress: Callable[[Progress], None] | None, channel: int, count: int):
    """Channel ``channel``'s progress as its share of the whole (channel by channel, never back)."""
    if on_progress is None:
        return None
    return lambda p: on_progress(Progress(stage=p.stage, fraction=round((channel + p.fraction) / count, 4)))


class _ChannelCheckpoint:
    """The job's checkpoint, its scope narrowed to one channel: the channels' batches never mix,
    even where their speech falls at the same times."""

    def __init__(self, inner: Checkpoint, channel: int):
        self._inner = inner
        self.scope = f"{inner.scope}|channel={channel}"

    def finished(self) -> Mapping[str, BatchResult]:
        return self._inner.finished()

    def save(self, key: str, result: BatchResult) -> None:
        self._inner.save(key, result)
