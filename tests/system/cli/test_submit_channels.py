"""A two-voice call recording through the running service with channels apart: ``tingxie submit``
and the OpenAI door, real web and worker processes, the real offline models."""
from __future__ import annotations

import re

import pytest
import requests

from tests.support.client import client_cli as tingxie

JFK = "ask not what your country can do for you"
DAMO_START = "欢迎大家来体验"


@pytest.mark.slow
def test_submit_channels_apart_writes_each_sentence_under_its_channels_name(shared_service, stereo_call):
    done = tingxie("submit", str(stereo_call), "--wait", "--format", "srt", "--progress", "none",
                   "--channels", "separate", "--channel-names", "agent,customer", "--hotwords", "达摩院 20",
                   server=shared_service.base_url)
    assert done.returncode == 0, done.stderr
    cues = [block.split("\n", 2)[2].replace("\n", " ") for block in done.stdout.strip().split("\n\n")]
    customer = [c for c in cues if c.startswith("[customer] ")]
    agent = [c for c in cues if c.startswith("[agent] ")]
    assert len(customer) + len(agent) == len(cues), cues  # every cue names its channel
    # The Mandarin voice is alone on channel 1 (first in time), JFK alone on channel 0.
    assert cues[0].replace(" ", "").startswith("[customer]" + DAMO_START), cues
    assert JFK in " ".join(re.findall(r"[a-z']+", " ".join(c.removeprefix("[agent] ") for c in agent).lower()))
    assert not re.search(r"[a-zA-Z]", "".join(c.removeprefix("[customer] ") for c in customer))

    # The OpenAI door, as an SDK sends tingxie's extra fields: segments carry channel and name.
    with open(stereo_call, "rb") as fh:
        r = requests.post(f"{shared_service.base_url}/v1/audio/transcriptions", files={"file": ("call.wav", fh)},
                          data={"model": "whisper-1", "response_format": "verbose_json", "channels": "separate",
                                "channel_names": "agent,customer"}, timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {(s["channel"], s["speaker"]) for s in body["segments"]} == {(1, "customer"), (0, "agent")}
    starts = [s["start"] for s in body["segments"]]
    assert starts == sorted(starts) and body["segments"][0]["channel"] == 1
    assert body["speakers"] == [{"id": "C0", "name": "agent"}, {"id": "C1", "name": "customer"}]
