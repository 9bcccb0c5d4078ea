"""Typed values passed between pipeline stages and returned to callers.

Times are integers in milliseconds on the input file's timeline.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

from pipeline.errors import ChannelOptionsError, SpeakerOptionsError


@dataclass(frozen=True)
class Hotword:
    """A phrase to bias recognition towards; ``weight`` is the model's boost, None for its default."""

    text: str
    weight: float | None = None


@dataclass(frozen=True)
class Word:
    """``speaker``: the speaker's id (``S1``, ``S2``...) when the job was diarized, else None."""

    start_ms: int
    end_ms: int
    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class Segment:
    """One sentence: its text (punctuated, after ITN), its span and its words.

    ``punc`` is the closing punctuation mark and ``tokens`` the per-token spans
    as FunASR's ``stamp_sents`` carries them (``ts_list``); both may be empty.
    ``channel``: the audio channel it was heard on (0 is the first) when the channels were
    transcribed apart (``channels="separate"``), else None.
    """

    start_ms: int
    end_ms: int
    text: str
    words: tuple[Word, ...] = ()
    punc: str = ""
    tokens: tuple[tuple[int, int], ...] = ()
    speaker: str | None = None
    channel: int | None = None


@dataclass(frozen=True)
class Speaker:
    """A voice diarization found: ``id`` is ``S1``, ``S2``... in order of first appearance;
    ``name`` is what a person called it (None until someone does)."""

    id: str
    name: str | None = None


@dataclass
class Transcript:
    """``speakers`` is None when the job was not diarized (then no segment or word carries a
    speaker, and the JSON has no ``speaker``/``speakers`` keys at all), else every speaker found."""

    text: str
    language: str
    duration_ms: int
    segments: list[Segment] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    speakers: list[Speaker] | None = None

    def to_dict(self) -> dict:
        """The JSON shape the API serves (``warnings`` travel on the job, not here)."""
        diarized = self.speakers is not None

        def word(w: Word) -> dict:
            data = asdict(w)
            if not diarized:
                del data["speaker"]
            return data

        def segment(s: Segment) -> dict:
            data = {
                "start_ms": s.start_ms,
                "end_ms": s.end_ms,
                "text": s.text,
                "punc": s.punc,
                "words": [word(w) for w in s.words],
                "tokens": [list(t) for t in s.tokens],
            }
            if diarized:
                data["speaker"] = s.speaker
            if s.channel is not None:
                data["channel"] = s.channel
            return data

        data = {
            "text": self.text,
            "language": self.language,
            "duration_ms": self.duration_ms,
            "segments": [segment(s) for s in self.segments],
        }
        if diarized:
            data["speakers"] = [asdict(p) for p in self.speakers]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Transcript":
        return cls(
            text=data["text"],
            language=data["language"],
            duration_ms=data["duration_ms"],
            segments=[
                Segment(
                    start_ms=s["start_ms"],
                    end_ms=s["end_ms"],
                    text=s["text"],
                    punc=s.get("punc", ""),
                    words=tuple(Word(**w) for w in s.get("words", [])),
                    tokens=tuple(tuple(t) for t in s.get("tokens", [])),
                    speaker=s.get("speaker"),
                    channel=s.get("channel"),
                )
                for s in data.get("segments", [])
            ],
            speakers=None if data.get("speakers") is None else [Speaker(**p) for p in data["speakers"]],
        )


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
    The speaker counts need ``diarize``; a bad combination raises SpeakerOptionsError.
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
    channels: str = "mix"
    channel_names: tuple[str, ...] = ()
    channel: int | None = None

    def __post_init__(self) -> None:
        check_speaker_options(self.diarize, self.num_speakers, self.min_speakers, self.max_speakers)
        check_channel_options(self.channels, self.channel_names, self.channel, self.diarize)


CHANNEL_MODES = ("mix", "separate")
# Channels transcribed apart at most: a call has two, a conference bridge a few; a 5.1 film is not a call.
MAX_CHANNELS = 8


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


def check_speaker_options(
    diarize: bool, num_speakers: int | None, min_speakers: int | None, max_speakers: int | None
) -> None:
    """Raise SpeakerOptionsError unless the counts are positive whole numbers, ``min <= max``,
    ``num_speakers`` comes alone, and any of them comes with ``diarize``. A door may call it to
    answer a 400 before the job is queued."""
    from pipeline.errors import ChannelOptionsError, SpeakerOptionsError

    counts = {"num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers}
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SpeakerOptionsError(f"{name} must be a whole number of at least 1, not {value!r}.")
    given = [name for name, value in counts.items() if value is not None]
    if given and not diarize:
        raise SpeakerOptionsError(f"{' and '.join(given)} need diarize=true (speaker labels are off).")
    if num_speakers is not None and (min_speakers is not None or max_speakers is not None):
        raise SpeakerOptionsError("Give num_speakers, or min_speakers/max_speakers, not both.")
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise SpeakerOptionsError(
            f"min_speakers ({min_speakers}) is more than max_speakers ({max_speakers})."
        )


class Stage(StrEnum):
    """The pipeline's stages, in the order they run; each compares equal to its name as a string
    (what the job record and the events carry)."""

    DECODE = "decode"
    VAD = "vad"
    ASR = "asr"
    DIARIZE = "diarize"  # only when the job asks for speakers
    PUNC = "punc"
    ITN = "itn"


@dataclass(frozen=True)
class Progress:
    """Reported by the pipeline while it runs: ``fraction`` is 0..1 over the whole job."""

    stage: Stage
    fraction: float
