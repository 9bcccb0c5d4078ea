"""A job's options: one typed value, parsed once at the door, stored typed, read back typed.

Every door (REST form, FunASR JSON frame, OpenAI form, CLI flags) turns what it was sent into a
:class:`JobOptions`; the type checks each field when it is made, so no later layer re-parses a
string or re-applies a default. :func:`core.submit.submit_job` then applies the deployment's
policy once (default profile, server-wide hotwords, caps) and stores the result; the worker
reads it back with :meth:`JobOptions.from_record` and hands it to the pipeline as it is.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, fields
from enum import StrEnum

from contract import Hotword, Hotwords, check_speaker_options
from contract.channels import CHANNEL_MODES, MAX_CHANNEL_NAME_CHARS, MAX_CHANNELS
from core.errors import BadOptionError
from core.export import FORMATS as EXPORT_FORMATS
from core.languages import AUTO
from core.settings import PROFILES

# What a job runs with when the request names no language: the model decides per sentence.
AUTO_LANGUAGE = AUTO
# Jobs whose client is waiting on an open connection (the FunASR gateway) go to the interactive
# queue and run before batch work.
INTERACTIVE_PRIORITY = 10
MAX_PRIORITY = 10
# Options stored in Job.options (the rest have columns of their own). Bump when the shape changes:
# 1 language, itn, hotwords; 2 adds the speaker fields; 3 adds task, output_url, output_formats, channels
# and channel_names.
OPTIONS_VERSION = 3
TASKS = ("transcribe", "translate")
# The profiles whose model translates (Whisper's translate task: speech in any language, English text).
TRANSLATING_PROFILES = ("offline",)


class Source(StrEnum):
    """Which door a job came through."""

    API = "api"
    PAGE = "page"
    GATEWAY = "gateway"
    OPENAI = "openai"


@dataclass(frozen=True)
class JobOptions:
    """What a job asked for.

    language: ``auto`` or a language code the profile serves (checked at submission, once the
        profile is known).
    itn: inverse text normalisation ("一百二十三" -> "123"); default on.
    hotwords: phrases to bias recognition towards, with optional weights.
    profile: the model profile; None until submission applies the deployment's default.
    callback_url: where the finished job's webhook goes (checked at submission).
    source: the door the job came through.
    priority: 0 (batch) to ``MAX_PRIORITY``; above 0 goes to the interactive queue.
    diarize: label sentences and words with their speaker; off by default.
    num_speakers: how many speakers there are, when known (1 to ``MAX_SPEAKERS``); None: estimated.
    min_speakers, max_speakers: bounds on the estimate; not with ``num_speakers``. Any count needs
        ``diarize`` (the contract's rules: :func:`contract.check_speaker_options`).
    retain_media_days: delete the job's media from the store this many days after it was accepted
        (the transcript stays); None: the deployment's ``TINGXIE_RETAIN_MEDIA_DAYS``, which is also
        the most a job may ask for (checked at submission).
    task: ``transcribe`` (the default) or ``translate``: English text of speech in any language,
        on a profile in ``TRANSLATING_PROFILES`` (the OpenAI door's /v1/audio/translations).
    output_url: ``s3://bucket/prefix/`` that receives the transcript when the job is done, one object
        per format (``<prefix><job id>.<format>``); within the tenant's TINGXIE_TENANT_OUTPUTS
        (checked at submission, core.sources). None: nothing is delivered.
    output_formats: the formats delivered to ``output_url`` (core.export.FORMATS); empty: ``json``.
    channels: ``mix`` (default) transcribes the channels mixed down to one; ``separate`` each
        channel on its own (up to ``MAX_CHANNELS``), sentences merged by time and labelled with
        their channel and its speaker ``C0``, ``C1``...; not with ``diarize``.
    channel_names: names for those speakers in channel order (``("agent", "customer")``), at most
        ``MAX_CHANNELS`` of up to ``MAX_CHANNEL_NAME_CHARS`` printable characters, without commas;
        only with ``separate``. Renaming the speakers later renames them.
    """

    language: str = AUTO_LANGUAGE
    itn: bool = True
    hotwords: Hotwords = ()
    profile: str | None = None
    callback_url: str | None = None
    source: Source = Source.API
    priority: int = 0
    diarize: bool = False
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    retain_media_days: float | None = None
    task: str = "transcribe"
    output_url: str | None = None
    output_formats: tuple[str, ...] = ()
    channels: str = "mix"
    channel_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.language, str) or not self.language:
            raise BadOptionError(f"language must be a language code or {AUTO_LANGUAGE!r}")
        object.__setattr__(self, "language", self.language.strip().lower())
        if not isinstance(self.itn, bool):
            raise BadOptionError(f"itn must be true or false, not {self.itn!r}")
        hotwords = tuple(self.hotwords)
        if not all(isinstance(h, Hotword) for h in hotwords):
            raise TypeError("hotwords must be contract.Hotword entries (core.hotwords.parse_hotwords makes them)")
        object.__setattr__(self, "hotwords", hotwords)
        if self.profile is not None and self.profile not in PROFILES:
            raise BadOptionError(f"profile must be one of {', '.join(PROFILES)}, not {self.profile!r}", code="unknown_profile")
        if self.callback_url is not None and not isinstance(self.callback_url, str):
            raise BadOptionError("callback_url must be a URL")
        object.__setattr__(self, "source", Source(self.source))
        if isinstance(self.priority, bool) or not isinstance(self.priority, int) or not 0 <= self.priority <= MAX_PRIORITY:
            raise BadOptionError(f"priority must be a whole number from 0 to {MAX_PRIORITY}")
        check_speaker_options(self.diarize, self.num_speakers, self.min_speakers, self.max_speakers)
        self._check_channels()
        days = self.retain_media_days
        if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float))
                                 or not 0 < days < float("inf")):
            raise BadOptionError(f"retain_media_days must be a number of days above 0, not {days!r}")
        if self.task not in TASKS:
            raise BadOptionError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if self.task == "translate" and self.profile is not None and self.profile not in TRANSLATING_PROFILES:
            raise BadOptionError(f"the {self.profile} profile cannot translate; translations run on "
                                 f"{', '.join(TRANSLATING_PROFILES)}", code="unsupported_task")
        self._check_output()

    def _check_output(self) -> None:
        if self.output_url is not None and (not isinstance(self.output_url, str) or not self.output_url.startswith("s3://")):
            raise BadOptionError("output_url must be an s3://bucket/prefix/ URL", code="bad_output_url")
        formats = tuple(dict.fromkeys(self.output_formats))
        unknown = [f for f in formats if f not in EXPORT_FORMATS]
        if unknown:
            raise BadOptionError(f"output_formats: {', '.join(map(str, unknown))} not among {', '.join(EXPORT_FORMATS)}",
                                 code="bad_output_url")
        if formats and self.output_url is None:
            raise BadOptionError("output_formats needs output_url", code="bad_output_url")
        object.__setattr__(self, "output_formats", formats)

    @property
    def delivered_formats(self) -> tuple[str, ...]:
        """What delivery writes: the formats asked for, else JSON; nothing without ``output_url``."""
        if self.output_url is None:
            return ()
        return self.output_formats or ("json",)

    def _check_channels(self) -> None:
        if self.channels not in CHANNEL_MODES:
            raise BadOptionError(f"channels must be one of {', '.join(CHANNEL_MODES)}, not {self.channels!r}",
                                 code="bad_channels")
        if isinstance(self.channel_names, str) or not all(isinstance(n, str) for n in self.channel_names):
            raise TypeError("channel_names must be a sequence of names (core.options.parse_channel_names makes one)")
        names = tuple(" ".join(name.split()) for name in self.channel_names)
        if names and self.channels != "separate":
            raise BadOptionError("channel_names need channels=separate", code="bad_channels")
        if len(names) > MAX_CHANNELS:
            raise BadOptionError(f"channel_names name at most {MAX_CHANNELS} channels, not {len(names)}",
                                 code="bad_channels")
        for name in names:
            if (not name or len(name) > MAX_CHANNEL_NAME_CHARS or "," in name
                    or any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name)):
                raise BadOptionError(f"each channel name must be 1 to {MAX_CHANNEL_NAME_CHARS} printable characters "
                                     f"without commas, not {name!r}", code="bad_channels")
        object.__setattr__(self, "channel_names", names)
        if self.channels == "separate" and self.diarize:
            raise BadOptionError("channels=separate labels each channel as one speaker (C0, C1...); it does not go "
                                 "with diarize: send one or the other", code="bad_channels")

    def passes(self, channels: int | None) -> int:
        """How many times the job's audio is transcribed, for a file with ``channels`` channels (from
        its probe): once mixed; apart, once per channel up to MAX_CHANNELS (the attempt's time limit)."""
        return 1 if self.channels == "mix" else max(1, min(channels or 1, MAX_CHANNELS))

    @property
    def interactive(self) -> bool:
        return self.priority > 0

    def stored(self) -> dict:
        """What ``Job.options`` holds: the options the pipeline uses (the others are columns)."""
        return {"v": OPTIONS_VERSION, **self.public(), "channels": self.channels,
                "channel_names": list(self.channel_names)}

    def public(self) -> dict:
        """The options as the API shows them on a job (``channels`` and ``channel_names`` only
        when the channels are transcribed apart)."""
        channels = {} if self.channels == "mix" else {"channels": self.channels,
                                                      "channel_names": list(self.channel_names)}
        return {
            "language": self.language,
            "itn": self.itn,
            "hotwords": [h.to_json() for h in self.hotwords],
            "diarize": self.diarize,
            "num_speakers": self.num_speakers,
            "min_speakers": self.min_speakers,
            "max_speakers": self.max_speakers,
            **({"task": self.task} if self.task != "transcribe" else {}),
            "output_url": self.output_url,
            "output_formats": list(self.delivered_formats),
            **channels,
        }

    @classmethod
    def from_record(cls, stored: dict, *, profile: str, callback_url: str | None, source: str, priority: int) -> "JobOptions":
        """Read back what :meth:`stored` and the job's columns hold (no defaults re-applied; a
        version 1 record, from before speakers, asked for none; one before version 3 transcribed, delivered
        nothing and mixed the channels)."""
        speakers = {} if stored.get("v", 1) < 2 else {
            name: stored[name] for name in ("diarize", "num_speakers", "min_speakers", "max_speakers")}
        output = {} if stored.get("v", 1) < 3 else {
            "output_url": stored["output_url"], "output_formats": tuple(stored["output_formats"])}
        channels = {} if stored.get("v", 1) < 3 else {
            "channels": stored.get("channels", "mix"), "channel_names": tuple(stored.get("channel_names", ()))}
        return cls(
            language=stored["language"],
            itn=stored["itn"],
            hotwords=tuple(Hotword(text, weight) for text, weight in stored["hotwords"]),
            **speakers,
            task=stored.get("task", "transcribe"),
            **output,
            **channels,
            profile=profile,
            callback_url=callback_url,
            source=Source(source),
            priority=priority,
        )


def option_names() -> tuple[str, ...]:
    """Every field a door may set (for documentation and tests)."""
    return tuple(f.name for f in fields(JobOptions) if f.init)


def parse_channel_names(text: str | None) -> tuple[str, ...]:
    """``agent,customer`` -> ("agent", "customer"): the channels' names as a form field or a flag
    sends them, comma-separated in channel order (JobOptions checks each)."""
    if text is None or not text.strip():
        return ()
    return tuple(name.strip() for name in text.split(","))


def speaker_fields(diarize: bool | None, num_speakers: int | None = None, min_speakers: int | None = None,
                   max_speakers: int | None = None) -> dict:
    """The speaker fields of a request, as every door reads them: a speaker count asks for speaker
    labels even when ``diarize`` was not sent (an explicit ``diarize=false`` with a count is refused
    by JobOptions). Only what was given is returned, so the dataclass defaults stay the one default."""
    fields: dict = {name: value for name, value in (("num_speakers", num_speakers), ("min_speakers", min_speakers),
                                                     ("max_speakers", max_speakers)) if value is not None}
    if diarize is not None:
        fields["diarize"] = diarize
    elif fields:
        fields["diarize"] = True
    return fields
