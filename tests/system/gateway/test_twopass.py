"""A 2pass/online pcm stream answered piece by piece while it streams: FunASR's older Python
client in its default mode sends at real-time pace and closes 2 s after its end frame, so it hears
only what was answered by then. Real web, worker and gateway processes, real speech."""
from __future__ import annotations

import asyncio
import json
import re
import time

import pytest

from tests.support.funasr_testclient import Audio, connect, live, send_file
from tests.support.gateway import convert, pcm_of, start_gateway

pytestmark = pytest.mark.slow

JFK_PIECES = ["jfk#1.wav", "jfk#2.wav", "jfk#3.wav"]


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


@pytest.fixture
def jfk_pcm(speech_path, tmp_path) -> bytes:
    pcm, fs = pcm_of(convert(speech_path("jfk.flac"), tmp_path / "jfk.wav", "-ac", "1", "-ar", "16000"))
    assert fs == 16000
    return pcm


def gateway_jobs(service, prefix: str) -> dict[str, dict]:
    return {j["filename"]: j for j in service.jobs()["items"] if j["filename"].startswith(prefix)}


def test_older_2pass_client_hears_each_piece_while_it_streams(live_service, jfk_pcm):
    """The older client, as FunASR's Python client in 2pass mode: 60 ms of audio every 60 ms, then
    (an open microphone) silence until it has heard JFK's three pieces, the end frame, 2 s, close.
    Every piece is answered while it is still streaming, so nothing waits for the end."""
    service = live_service()
    url = start_gateway(service, "--certfile", "0")
    audio = Audio(jfk_pcm, "jfk", "pcm", 16000, mode="2pass")

    heard = asyncio.run(live(url, audio, generation="old", silence_until_heard=3))
    early = heard.frames[:3]
    assert all(f["mode"] == "2pass-offline" and f["is_final"] is False and f["wav_name"] == "jfk" for f in early)
    text = words("".join(f["text"] for f in early))
    for phrase in ("fellow americans", "ask not what your country can do for you",
                   "ask what you can do for your country"):
        assert phrase in text, text
    firsts = [json.loads(f["timestamp"])[0][0] for f in early]  # times in the stream, not the piece
    assert firsts[0] < 1500 and 4000 <= firsts[1] < 6000 and 7500 <= firsts[2] < 9000, firsts
    for frame in early:
        spans = json.loads(frame["timestamp"])
        assert [a for a, _ in spans] == sorted(a for a, _ in spans)

    # Each piece was its own interactive job of the gateway's tenant, named after the stream; the
    # whole stream made no job. The silence after the speech is the last piece: answered within
    # the client's 2 s, or canceled when it left.
    pieces = gateway_jobs(service, "jfk")
    assert sorted(pieces)[:3] == JFK_PIECES and "jfk.wav" not in pieces, sorted(pieces)
    assert all(j["source"] == "gateway" and j["priority"] > 0 for j in pieces.values())
    assert [pieces[name]["id"] for name in JFK_PIECES] == [f["job_id"] for f in early]
    for name in JFK_PIECES:
        assert service.wait(pieces[name]["id"])["status"] == "done"
    for name in sorted(pieces)[3:]:
        assert service.wait(pieces[name]["id"])["status"] in ("done", "canceled")

    # The newest client (it waits for the acknowledgement) in online mode: every piece in order in
    # an online frame, the last final, then the acknowledgement.
    heard = asyncio.run(live(url, Audio(jfk_pcm, "jfk-online", "pcm", 16000, mode="online"), generation="new",
                             pace=0.25))
    *results, ack = heard.frames
    assert ack == {"mode": "online", "wav_name": "jfk-online", "is_end": True, "is_final": True}
    assert [f["mode"] for f in results] == ["online"] * 3
    assert [f["is_final"] for f in results] == [False, False, True]
    assert "ask not what your country can do for you" in words(heard.text)


def test_a_client_that_leaves_cancels_every_outstanding_piece(live_service, jfk_pcm):
    """No worker: every piece stays queued until the client leaves, then every one is canceled.
    The offline mode made one job of the same audio."""
    service = live_service(workers=0)
    url = start_gateway(service, "--certfile", "0")

    async def leave(audio: Audio, names: list[str]):
        async with connect(url) as ws:
            await send_file(ws, audio, "new")
            deadline = time.monotonic() + 60
            while sorted(gateway_jobs(service, audio.wav_name)) != names:
                assert time.monotonic() < deadline, sorted(gateway_jobs(service, audio.wav_name))
                await asyncio.sleep(0.1)

    asyncio.run(leave(Audio(jfk_pcm, "jfk", "pcm", 16000, mode="2pass", chunk_bytes=1920), JFK_PIECES))
    asyncio.run(leave(Audio(jfk_pcm, "whole", "pcm", 16000, mode="offline"), ["whole.wav"]))
    for prefix in ("jfk", "whole"):
        for job in gateway_jobs(service, prefix).values():
            assert service.wait(job["id"])["status"] == "canceled"
