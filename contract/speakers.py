"""The rules for a job's speaker counts, checked the same way at every door and in the pipeline."""
from __future__ import annotations

from contract.errors import TingxieError

# More speakers than this in one recording is a mistake, not a meeting.
MAX_SPEAKERS = 32


class SpeakerOptionsError(TingxieError, ValueError):
    """Speaker counts that cannot be honoured (not 1..MAX_SPEAKERS, min above max, given without diarize)."""

    code = "bad_speakers"


def check_speaker_options(
    diarize: bool, num_speakers: int | None = None, min_speakers: int | None = None, max_speakers: int | None = None
) -> None:
    """Raise SpeakerOptionsError unless ``diarize`` is a bool, the counts are whole numbers from 1
    to MAX_SPEAKERS, ``min <= max``, ``num_speakers`` comes alone, and any of them comes with
    ``diarize``."""
    if not isinstance(diarize, bool):
        raise SpeakerOptionsError(f"diarize must be true or false, not {diarize!r}")
    counts = {"num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers}
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SPEAKERS):
            raise SpeakerOptionsError(f"{name} must be a whole number from 1 to {MAX_SPEAKERS}")
    given = [name for name, value in counts.items() if value is not None]
    if given and not diarize:
        raise SpeakerOptionsError(f"{' and '.join(given)} need diarize=true")
    if num_speakers is not None and (min_speakers is not None or max_speakers is not None):
        raise SpeakerOptionsError("give num_speakers, or min_speakers and max_speakers, not both")
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise SpeakerOptionsError(f"min_speakers ({min_speakers}) is more than max_speakers ({max_speakers})")
