"""Channels apart: a call recording's channels transcribed one by one (``channels="separate"``)."""
from __future__ import annotations

# "mix" mixes every channel down to one; "separate" transcribes each on its own.
CHANNEL_MODES = ("mix", "separate")
# Channels transcribed apart at most: a call has two, a conference bridge a few; a 5.1 film is not a call.
MAX_CHANNELS = 8
# A channel's name: a short label (agent, customer), as speaker names are.
MAX_CHANNEL_NAME_CHARS = 64
