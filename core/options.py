"""A job's options: one typed value, parsed once at the door, stored typed, read back typed.

Every door (REST form, FunASR JSON frame, OpenAI form, CLI flags) turns what it was sent into a
:class:`JobOptions`; the type checks each field when it is made, so no later layer re-parses a
string or re-applies a default. :func:`core.submit.submit_job` then applies the deployment's
policy once (default profile, server-wide hotwords, caps) and stores the result; the worker
reads it back with :meth:`JobOptions.from_record` and hands it to the pipeline as it is.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum

from contract import Hotword, Hotwords, check_speaker_options
from core.errors import BadOptionError
from core.languages import AUTO
from core.settings import PROFILES

# What a job runs with when the request names no language: the model decides per sentence.
AUTO_LANGUAGE = AUTO
# Jobs whose client is waiting on an open connection (the FunASR gateway) go to the interactive
# queue and run before batch work.
INTERACTIVE_PRIORITY = 10
MAX_PRIORITY = 10
# Options stored in Job.options (the rest have columns of their own). Bump when the shape changes:
# 1 language, itn, hotwords; 2 adds the speaker fields.
OPTIONS_VERSION = 2


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

    @property
    def interactive(self) -> bool:
        return self.priority > 0

    def stored(self) -> dict:
        """What ``Job.options`` holds: the options the pipeline uses (the others are columns)."""
        return {"v": OPTIONS_VERSION, **self.public()}

    def public(self) -> dict:
        """The options as the API shows them on a job."""
        return {
            "language": self.language,
            "itn": self.itn,
            "hotwords": [h.to_json() for h in self.hotwords],
            "diarize": self.diarize,
            "num_speakers": self.num_speakers,
            "min_speakers": self.min_speakers,
            "max_speakers": self.max_speakers,
        }

    @classmethod
    def from_record(cls, stored: dict, *, profile: str, callback_url: str | None, source: str, priority: int) -> "JobOptions":
        """Read back what :meth:`stored` and the job's columns hold (no defaults re-applied; a
        version 1 record, from before speakers, asked for none)."""
        speakers = {} if stored.get("v", 1) < 2 else {
            name: stored[name] for name in ("diarize", "num_speakers", "min_speakers", "max_speakers")}
        return cls(
            language=stored["language"],
            itn=stored["itn"],
            hotwords=tuple(Hotword(text, weight) for text, weight in stored["hotwords"]),
            **speakers,
            profile=profile,
            callback_url=callback_url,
            source=Source(source),
            priority=priority,
        )


def option_names() -> tuple[str, ...]:
    """Every field a door may set (for documentation and tests)."""
    return tuple(f.name for f in fields(JobOptions) if f.init)


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
