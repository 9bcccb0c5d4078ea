"""What crosses tingxie's tiers: the transcript, hotwords, the job's stages, the speaker-count
rules, the catalogue of profiles and their languages, and the one error base.

Standard library only (tests/test_boundaries.py holds it to that), so the web tier, the gateway,
the worker, the pipeline and media all import it without loading anything else.
"""
from contract.errors import STATUS_BY_CODE, TingxieError, http_status
from contract.hotwords import Hotword, HotwordError, Hotwords
from contract.profiles import AUTO, PROFILE_NAMES, PROFILES, ProfileInfo
from contract.speakers import MAX_SPEAKERS, SpeakerOptionsError, check_speaker_options
from contract.stages import Stage
from contract.transcript import STORED_VERSION, Segment, Speaker, Transcript, Word

__all__ = [
    "AUTO", "Hotword", "HotwordError", "Hotwords", "MAX_SPEAKERS", "PROFILES", "PROFILE_NAMES", "ProfileInfo",
    "STATUS_BY_CODE", "STORED_VERSION", "Segment", "Speaker", "SpeakerOptionsError", "Stage", "TingxieError",
    "Transcript", "Word", "check_speaker_options", "http_status",
]
