"""A job's channel options: checked once at the door, stored typed (version 3), read back typed;
records written before channels existed read as mixed."""
from __future__ import annotations

import pytest

from core.errors import BadOptionError
from core.options import MAX_CHANNELS, OPTIONS_VERSION, JobOptions, parse_channel_names


def _back(options: JobOptions) -> JobOptions:
    return JobOptions.from_record(options.stored(), profile="offline", callback_url=None, source="api", priority=0)


def test_separate_channels_with_names_round_trip():
    options = JobOptions(channels="separate", channel_names=parse_channel_names(" agent , customer "), profile="offline")
    assert options.channel_names == ("agent", "customer")
    assert options.stored()["v"] == OPTIONS_VERSION == 3
    assert options.public()["channels"] == "separate" and options.public()["channel_names"] == ["agent", "customer"]
    assert _back(options) == options


def test_mixed_jobs_show_what_they_always_showed():
    options = JobOptions(profile="offline")
    assert "channels" not in options.public() and "channel_names" not in options.public()
    assert options.stored()["channels"] == "mix" and _back(options) == options


@pytest.mark.parametrize("version", [1, 2])
def test_records_from_before_channels_read_as_mixed(version):
    stored = {"v": version, "language": "en", "itn": True, "hotwords": []}
    if version == 2:
        stored.update(diarize=True, num_speakers=2, min_speakers=None, max_speakers=None)
    options = JobOptions.from_record(stored, profile="offline", callback_url=None, source="api", priority=0)
    assert options.channels == "mix" and options.channel_names == ()


@pytest.mark.parametrize("fields, message", [
    (dict(channels="stereo"), "channels must be one of mix, separate"),
    (dict(channel_names=("agent",)), "channel_names need channels=separate"),
    (dict(channels="separate", channel_names=tuple(f"c{i}" for i in range(MAX_CHANNELS + 1))), "at most 8 channels"),
    (dict(channels="separate", channel_names=("agent", "")), "1 to 64 printable characters"),
    (dict(channels="separate", channel_names=("x" * 65,)), "1 to 64 printable characters"),
    (dict(channels="separate", channel_names=("a\u202eb",)), "printable"),
    (dict(channels="separate", diarize=True), "does not go with diarize"),
])
def test_bad_channel_options_are_refused(fields, message):
    with pytest.raises(BadOptionError, match=message) as err:
        JobOptions(**fields)
    assert err.value.code == "bad_channels"


def test_parse_channel_names():
    assert parse_channel_names(None) == parse_channel_names("  ") == ()
    assert parse_channel_names("agent,customer") == ("agent", "customer")
    assert parse_channel_names("agent,,customer") == ("agent", "", "customer")  # refused by JobOptions


def test_passes_count_the_channels_transcribed():
    assert JobOptions().passes(2) == 1
    separate = JobOptions(channels="separate")
    assert separate.passes(2) == 2 and separate.passes(1) == separate.passes(None) == 1
    assert separate.passes(12) == MAX_CHANNELS
