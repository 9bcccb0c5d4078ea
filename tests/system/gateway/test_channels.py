"""Channels apart through the FunASR gateway: a two-voice call recording, sent as a whole .wav and
as its interleaved pcm frames, with ``"channels": "separate"`` in the config frame; real web, worker
and gateway processes, the offline models. Each sentence comes back labelled with its channel and
its channel's name, in order of time; the jobs are the token's tenant's and no other tenant's."""
from __future__ import annotations

import re
import wave

import pytest
import requests

from core import tokens
from core.db import make_engine, make_sessionmaker, session_scope
from tests.support.funasr_testclient import Audio, run
from tests.support.gateway import start_gateway

pytestmark = pytest.mark.slow

JFK = "ask not what your country can do for you"
DAMO_START = "欢迎大家来体验"


@pytest.fixture
def tenants(shared_service):
    """A token of ``tenant-a`` (whose connection sends the files) and one of ``tenant-b``."""
    engine = make_engine(shared_service.settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            secrets = {name: tokens.create(s, tenant=name).secret for name in ("tenant-a", "tenant-b")}
    finally:
        engine.dispose()
    return secrets


def _labelled_in_time(frames: list[dict], wav_name: str, mode: str = "offline", jfk: str = JFK) -> list[dict]:
    """The result frames' sentences (one frame for a file, one per piece of a 2pass stream),
    checked: FunASR's keys, each with its channel and that channel's name, in order of their
    start; channel 1 (the Mandarin voice, from 0.5 s) first."""
    assert all(f["mode"] == mode and f["wav_name"] == wav_name for f in frames), frames
    assert frames[-1]["is_final"] is True, frames
    sentences = [s for f in frames for s in f["stamp_sents"]]
    assert sentences, frames
    for sentence in sentences:
        assert {"text_seg", "punc", "start", "end", "ts_list"} <= set(sentence)
        assert (sentence["channel"], sentence["channel_name"]) in ((0, "agent"), (1, "customer")), sentence
        assert sentence["spk"] == sentence["channel"]
    starts = [s["start"] for s in sentences]
    assert starts == sorted(starts)
    assert {s["channel"] for s in sentences} == {0, 1}
    first = sentences[0]
    assert first["channel"] == 1 and first["text_seg"].replace(" ", "").startswith(DAMO_START), sentences
    agent = " ".join(s["text_seg"] for s in sentences if s["channel"] == 0)
    customer = "".join(s["text_seg"] for s in sentences if s["channel"] == 1)
    assert jfk in " ".join(re.findall(r"[a-z']+", agent.lower())), agent  # JFK alone on channel 0
    assert not re.search(r"[a-zA-Z]", customer), customer  # and only Mandarin on channel 1
    assert min(s["start"] for s in sentences if s["channel"] == 0) >= 5500  # JFK starts at 6 s
    return sentences


def test_a_call_recording_through_the_gateway_comes_back_channel_by_channel(shared_service, stereo_call, tenants):
    url = start_gateway(shared_service, "--certfile", "0")
    with wave.open(str(stereo_call), "rb") as handle:
        assert handle.getnchannels() == 2 and handle.getframerate() == 16000
        interleaved = handle.readframes(handle.getnframes())
    whole = Audio(stereo_call.read_bytes(), "call.wav", "wav", None, "达摩院",
                  extra={"channels": "separate", "channel_names": "agent,customer"})
    # The frames FunASR's Python clients send of a .wav, declared as the call's two channels.
    pcm = Audio(interleaved, "call-pcm", "pcm", 16000, "达摩院",
                extra={"channels": "separate", "channel_names": ["agent", "customer"]})
    # A 2pass stream of the same frames is cut at JFK's pauses: each piece a job with channels apart.
    stream = Audio(interleaved, "call-2pass", "pcm", 16000, "达摩院", mode="2pass",
                   extra={"channels": "separate", "channel_names": "agent,customer"})
    answers = run(f"{url}/?token={tenants['tenant-a']}", [whole, pcm, stream], generation="new")

    own, other = ({"Authorization": f"Bearer {tenants[t]}"} for t in ("tenant-a", "tenant-b"))
    pieces = [f for f in answers[2].frames if "stamp_sents" in f]
    assert len(pieces) >= 2, answers[2].frames
    # (Its cut falls just before "ask": a piece's edge may cost a word.)
    _labelled_in_time(pieces, "call-2pass", mode="2pass-offline", jfk=JFK.removeprefix("ask "))
    for answer, audio in zip(answers, (whole, pcm, stream)):
        if audio is not stream:
            _labelled_in_time([answer.result], audio.wav_name)
        assert "warning" not in answer.result  # declared, so nothing was guessed about the pcm
        assert answer.ack["is_end"] is True
        # An ordinary job of the token's tenant, with the REST API's channel options.
        job_url = f"{shared_service.base_url}/api/v1/jobs/{answer.result['job_id']}"
        job = requests.get(job_url, headers=own, timeout=30).json()
        assert job["source"] == "gateway" and job["status"] == "done"
        assert job["options"]["channels"] == "separate" and job["options"]["channel_names"] == ["agent", "customer"]
        transcript = requests.get(f"{job_url}/transcript", headers=own, timeout=30).json()
        assert transcript["speakers"] == [{"id": "C0", "name": "agent"}, {"id": "C1", "name": "customer"}]
        assert [s["channel"] for s in transcript["segments"]] == [s["channel"] for s in answer.result["stamp_sents"]]
        assert job["tenant"] == "tenant-a"
        # Another tenant's token finds neither the job nor its transcript.
        for path in ("", "/transcript"):
            refused = requests.get(job_url + path, headers=other, timeout=30)
            assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found", refused.text
