"""The pipeline's own typed values: a job's options as the pipeline reads them, and its progress.

What it produces (:class:`~contract.Transcript` and its parts), the hotwords it takes and the
stages it reports are the contract's (:mod:`contract`), shared with core and the doors.
"""
from __future__ import annotations

from dataclasses import dataclass

from contract import Hotword, Stage, check_speaker_options
from contract.channels import CHANNEL_MODES, MAX_CHANNELS
from pipeline.errors import ChannelOptionsError


@dataclass(frozen=True)
class TranscribeOptions:
    """Per-request options.

    language: ``auto`` or an ISO 639-1 code the profile transcribes (the engine's ``languages``);
        Chinese ("zh") is written in simplified characters; ``zh-hant`` and ``zh-tw`` (Taiwan's
        standard forms) ask for traditional ones (the models read them as "zh").
    itn: inverse text normalisation ("一百二十三" -> "123"), on by default.
    hotwords: phrases to bias towards.
    diarize: label each sentence and word with its speaker (``S1``, ``S2``...); off by default.
    num_speakers: how many speakers there are, when known; None: estimated.
    min_speakers, max_speakers: bounds on the estimate (either may be None); not with num_speakers.
    The speaker counts follow the contract's rules (:func:`contract.check_speaker_options`); a bad
    combination raises SpeakerOptionsError.
    task: ``transcribe``, or ``translate`` (English text; an engine whose ASR model has
        ``translates`` true, else UnsupportedTaskError).
    channels: ``mix`` (default) mixes every channel down to one; ``separate`` transcribes each
        channel on its own (:mod:`pipeline.channels`; not with ``diarize``): each sentence carries
        its ``channel`` and the speaker ``C0``, ``C1``... of that channel.
    channel_names: with ``separate``, names for the channels' speakers in channel order
        (``("agent", "customer")``); the rest stay unnamed.
    channel: transcribe only this channel (0 is the first); None: the mix. Set per channel by
        :func:`pipeline.channels.transcribe_channels`.
    """

    language: str = "auto"
    itn: bool = True
    hotwords: tuple[Hotword, ...] = ()
    diarize: bool = False
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    task: str = "transcribe"
    channels: str = "mix"
    channel_names: tuple[str, ...] = ()
    channel: int | None = None

    def __post_init__(self) -> None:
        check_speaker_options(self.diarize, self.num_speakers, self.min_speakers, self.max_speakers)
        check_channel_options(self.channels, self.channel_names, self.channel, self.diarize)


def check_channel_options(channels: str, channel_names: tuple[str, ...], channel: int | None, diarize: bool) -> None:
    """Raise ChannelOptionsError unless ``channels`` is a known mode, names come only with
    ``separate`` and number at most MAX_CHANNELS, ``channel`` is a channel number, and speakers
    are not asked for as well (each channel is one speaker)."""
    if channels not in CHANNEL_MODES:
        raise ChannelOptionsError(f"channels must be one of {', '.join(CHANNEL_MODES)}, not {channels!r}.")
    if not isinstance(channel_names, tuple) or not all(isinstance(n, str) and n for n in channel_names):
        raise ChannelOptionsError("channel_names must be a tuple of non-empty names.")
    if channel_names and channels != "separate":
        raise ChannelOptionsError("channel_names need channels=separate.")
    if len(channel_names) > MAX_CHANNELS:
        raise ChannelOptionsError(f"channel_names name at most {MAX_CHANNELS} channels, not {len(channel_names)}.")
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int) or channel < 0):
        raise ChannelOptionsError(f"channel must be a channel number from 0, not {channel!r}.")
    if channels == "separate" and diarize:
        raise ChannelOptionsError("channels=separate labels each channel as one speaker; it does not go with diarize.")


@dataclass(frozen=True)
class Progress:
    """Reported by the pipeline while it runs: ``fraction`` is 0..1 over the whole job."""

    stage: Stage
    fraction: float
