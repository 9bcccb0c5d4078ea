"""The FunASR gateway end to end: real web, worker and gateway processes, real speech, the
protocol test client of both generations over ws and wss, and a third-party FunASR client.
Every answer is compared with the REST transcript of the same audio and options."""
from __future__ import annotations

import asyncio
import json
import subprocess
import time
import wave
from pathlib import Path

import pytest
import requests

from media import find_ffmpeg
from tests.support.settings import make_settings
from tests.support.gateway import convert, pcm_of, start_gateway
from tests.support.funasr_testclient import Audio, connect, html5_walk, read_answer, run, send_file

pytestmark = pytest.mark.slow


def make_mp4(wav: Path, dst: Path) -> Path:
    """A real video file (black frames + AAC speech), with its index at the end (needs seeking)."""
    subprocess.run(
        [find_ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=160x120:r=10",
         "-i", str(wav), "-shortest", "-c:v", "mpeg4", "-c:a", "aac", "-b:a", "64k", str(dst)],
        check=True,
    )
    return dst


def rest_text(service, path: Path, hotwords: str | None = None, itn: bool = True) -> str:
    form = {"itn": "true" if itn else "false"}
    if hotwords:
        form["hotwords"] = hotwords
    job = service.wait(service.submit(path, **form)["id"], timeout_s=300)
    assert job["status"] == "done", job
    return requests.get(f"{service.base_url}/api/v1/jobs/{job['id']}/transcript").json()["text"]


def same(gateway_text: str, rest: str) -> bool:
    """Equal words: Whisper's temperature fallback may vary punctuation and case between two
    runs on the same audio, whichever way the audio arrived."""
    assert gateway_text.strip(), "a result with no text"
    return _plain(gateway_text).lower() == _plain(rest).lower()


def check_result(answer, wav_name: str, mode: str = "offline") -> dict:
    result = answer.result
    assert result["mode"] == mode and result["wav_name"] == wav_name and result["is_final"] is True, result
    assert "error" not in result or result["error"] is None
    assert isinstance(result["timestamp"], str)
    spans = json.loads(result["timestamp"])
    assert spans and all(0 <= a <= b for a, b in spans)
    assert [a for a, _ in spans] == sorted(a for a, _ in spans)
    for sent in result["stamp_sents"]:
        assert {"text_seg", "punc", "start", "end", "ts_list"} <= set(sent)
        assert sent["start"] <= sent["end"]
        assert len(sent["ts_list"]) == len(sent["text_seg"].split())
    assert html5_walk(result["text"], result["timestamp"]) == len(spans)
    return result


@pytest.fixture
def media(tmp_path, speech_path):
    wav = speech_path("asr_example.wav")
    jfk8k = convert(speech_path("jfk.flac"), tmp_path / "jfk8k.wav", "-ac", "1", "-ar", "8000")
    return {
        "wav": wav,
        "mp3": speech_path("asr_example.mp3"),
        "mp4": make_mp4(wav, tmp_path / "asr_example.mp4"),
        "jfk8k": jfk8k,
    }


HOTWORD_SHAPES = {
    "json": '{"达摩院": 20, "阿里巴巴": "30"}',
    "comma": "达摩院,阿里巴巴",
    "space": "达摩院 阿里巴巴",
}


def test_both_generations_ws_and_wss_one_and_many_files(shared_service, media):
    service = shared_service  # only submits and reads: the session's warm service
    ws_url = start_gateway(service, "--certfile", "0")
    wss_url = start_gateway(service)  # TLS by default, self-signed certificate made on first start
    assert wss_url.startswith("wss://")
    assert (service.settings.data_dir / "gateway" / "cert.pem").exists()

    pcm16k, fs = pcm_of(media["wav"])
    pcm8k, fs8k = pcm_of(media["jfk8k"])
    assert (fs, fs8k) == (16000, 8000)
    expected = {
        "json": rest_text(service, media["wav"], HOTWORD_SHAPES["json"]),
        "comma": rest_text(service, media["mp3"], HOTWORD_SHAPES["comma"]),
        "space": rest_text(service, media["mp4"], HOTWORD_SHAPES["space"]),
        "jfk8k": rest_text(service, media["jfk8k"]),
    }
    assert "达摩院" in expected["json"] and "达摩院" in expected["comma"]
    assert "ask not what your country" in expected["jfk8k"].lower()

    pcm_json = Audio(pcm16k, "asr_example", "pcm", 16000, HOTWORD_SHAPES["json"])
    mp3_comma = Audio(media["mp3"].read_bytes(), "asr_example.mp3", "mp3", 16000, HOTWORD_SHAPES["comma"])
    mp4_space = Audio(media["mp4"].read_bytes(), "asr_example.mp4", "mp4", 16000, HOTWORD_SHAPES["space"],
                      chunk_bytes=204800)
    jfk_pcm8k = Audio(pcm8k, "jfk8k", "PCM", 8000, chunk_bytes=9600)

    # The Python client's stereo .wav, frames sent un-mixed as "pcm" (equal channels: detected).
    stereo = convert(media["wav"], media["jfk8k"].parent / "stereo.wav", "-ac", "2")
    with wave.open(str(stereo), "rb") as handle:
        stereo_pcm = handle.readframes(handle.getnframes())
    stereo_json = Audio(stereo_pcm, "stereo.wav", "pcm", 16000, HOTWORD_SHAPES["json"])
    # The html5 page sends the .wav with its header under "PCM".
    html5_json = Audio(media["wav"].read_bytes(), "html5.wav", "PCM", 16000, HOTWORD_SHAPES["json"], chunk_bytes=1024)

    # Older generation, plain ws, one file per connection (as the Python client does).
    for audio, key in ((pcm_json, "json"), (mp3_comma, "comma"), (stereo_json, "json"), (html5_json, "json")):
        (answer,) = run(ws_url, [audio], generation="old")
        assert same(check_result(answer, audio.wav_name)["text"], expected[key])
        assert answer.ack is None

    # Newest generation, wss, several files on one connection, each acknowledged after its result.
    answers = run(wss_url, [mp4_space, jfk_pcm8k, pcm_json], generation="new")
    for answer, audio, key in zip(answers, (mp4_space, jfk_pcm8k, pcm_json), ("space", "jfk8k", "json")):
        assert same(check_result(answer, audio.wav_name)["text"], expected[key])
        assert answer.ack == {"mode": "offline", "wav_name": audio.wav_name, "is_end": True, "is_final": True}

    # C++ style: every file sent before any answer, no mode key, hotwords only in the first
    # config (they last for the connection), one text frame per file.
    cxx = [
        Audio(pcm16k, "wav_default_id", "pcm", 16000, HOTWORD_SHAPES["json"], mode=None, chunk_bytes=204800),
        Audio(media["mp4"].read_bytes(), "second", "others", 16000, None, mode=None, chunk_bytes=204800),
    ]
    answers = run(ws_url, cxx, generation="old", pipelined=True)
    assert [a.result["wav_name"] for a in answers] == ["wav_default_id", "second"]
    assert same(answers[0].result["text"], expected["json"])
    assert same(answers[1].result["text"], rest_text(service, media["mp4"], HOTWORD_SHAPES["json"]))

    # Every file became a job, visible in the REST API, from the gateway, with interactive priority.
    listed = requests.get(f"{service.base_url}/api/v1/jobs", params={"per_page": 100}).json()["items"]
    from_gateway = [j for j in listed if j["source"] == "gateway"]
    assert len(from_gateway) == 9
    assert all(j["status"] == "done" and j["priority"] > 0 for j in from_gateway)
    job = service.job(answers[1].result["job_id"])
    assert job["filename"] == "second" and job["options"]["hotwords"]  # the connection's hotwords applied


def test_third_party_funasr_client(shared_service, speech_path):
    """funasr-client from PyPI, unchanged, against both TLS and plain ws."""
    # Its synchronous file_asr deadlocks in close() (it takes its own non-reentrant lock twice),
    # whatever the server does; the asyncio API is the one that works.
    from funasr_client import async_file_asr, async_file_asr_stream

    service = shared_service  # only submits and reads: the session's warm service
    ws_url = start_gateway(service, "--certfile", "0")
    wss_url = start_gateway(service)
    reference = "欢迎大家来体验达摩院推出的语音识别模型"
    wav = speech_path("asr_example.wav")

    # Its default mode (none sent) merges 2pass-offline results into one message.
    merged = asyncio.run(async_file_asr(wav, wss_url, hotwords={"达摩院": 20}))
    assert _plain(merged["text"]) == reference

    async def offline() -> list[dict]:
        return [m async for m in async_file_asr_stream(wav, ws_url, mode="offline", hotwords={"达摩院": 20})]

    messages = asyncio.run(offline())
    assert len(messages) == 1 and messages[0]["mode"] == "offline"
    assert _plain(messages[0]["text"]) == reference
    assert messages[0]["timestamp"]  # decoded by the client from our JSON string


def _plain(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def test_2pass_gets_a_working_answer_and_a_failed_job_an_error(shared_service, speech_path, tmp_path):
    service = shared_service  # only submits and reads: the session's warm service
    url = start_gateway(service, "--certfile", "0")
    pcm, _ = pcm_of(speech_path("asr_example.wav"))
    garbage = Audio(b"this is not an mp3 file at all" * 100, "broken.mp3", "mp3", mode="2pass")
    good = Audio(pcm, "after", "pcm", 16000, "达摩院", mode="2pass")
    failed, recovered = run(url, [garbage, good], generation="new")
    # The refused file: one error frame (text present, is_final false, the probe's code), and no job
    # (the one submission path probes before it records anything); the connection goes on and the
    # next file is answered.
    frame = failed.result
    assert frame["is_end"] is True and frame["is_final"] is False and frame["text"] == ""
    assert frame["error_code"] == "bad_media" and "broken.mp3" in frame["error"] and frame["job_id"] is None
    assert all(j["filename"] != "broken.mp3" for j in service.jobs()["items"])
    assert recovered.result["mode"] == "2pass-offline" and "达摩院" in recovered.result["text"]
    assert recovered.ack["is_final"] is True


def test_server_hotword_file_is_merged(shared_service, speech_path, tmp_path):
    hotword_file = tmp_path / "hotwords.txt"
    hotword_file.write_text("ComfyUI 20\n", encoding="utf-8")
    service = shared_service  # only submits and reads: the session's warm service
    url = start_gateway(service, "--certfile", "0", "--hotword", str(hotword_file))
    mp3 = speech_path("hotwords.mp3")
    (answer,) = run(url, [Audio(mp3.read_bytes(), "hotwords.mp3", "mp3", hotwords="阿里巴巴")], generation="new")
    assert "ComfyUI" in answer.result["text"]
    job = service.job(answer.result["job_id"])
    assert sorted(w for w, _ in job["options"]["hotwords"]) == ["ComfyUI", "阿里巴巴"]


def test_200_concurrent_connections(live_service, tmp_path, speech_path, postgres_url, redis_url):
    """200 clients connected at once to one gateway process on this 2-core machine, every file
    answered. Bounded: gives up after 10 minutes. Mostly short silent clips (the worker skips
    them quickly, so the test measures the gateway, not Whisper), every 20th a real-speech clip.
    PostgreSQL + Redis, where the queue hands out work without polling."""
    import psutil

    service = live_service(make_settings(tmp_path, database_url=postgres_url, broker_url=redis_url))
    url = start_gateway(service, "--certfile", "0")
    gateway = psutil.Process(service.extra[-1].pid)
    pcm, _ = pcm_of(speech_path("asr_example.wav"))
    speech = pcm[: 16000 * 2 * 2]  # the first two seconds
    silence = b"\x00\x00" * 16000
    all_connected = None
    connected = 0

    async def one(i: int):
        """Connect, wait until all 200 are connected at once, then send the file."""
        nonlocal connected
        audio = Audio(speech if i % 20 == 0 else silence, f"c{i}", "pcm", 16000, chunk_bytes=3200)
        async with connect(url) as ws:
            connected += 1
            if connected == 200:
                all_connected.set()
            await all_connected.wait()
            await send_file(ws, audio, "new")
            return await read_answer(ws, "new", 600)

    async def main():
        nonlocal all_connected
        all_connected = asyncio.Event()
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(200))), 600)

    started = time.monotonic()
    answers = asyncio.run(main())
    elapsed = time.monotonic() - started
    assert [a.result["wav_name"] for a in answers] == [f"c{i}" for i in range(200)]
    assert all(a.result["is_final"] is True and a.ack is not None for a in answers)
    spoken = {a.result["text"] for i, a in enumerate(answers) if i % 20 == 0}
    assert len(spoken) == 1 and spoken.pop().startswith("欢迎"), "the same clip gives the same text"
    assert all(a.result["text"] == "" for i, a in enumerate(answers) if i % 20)
    rss_mib = gateway.memory_info().rss / 2**20
    cpu_s = sum(gateway.cpu_times()[:2])
    print(f"200 concurrent connections answered in {elapsed:.1f} s; gateway RSS {rss_mib:.0f} MiB, "
          f"CPU {cpu_s:.1f} s")
    assert rss_mib < 500


def test_gateway_files_do_not_wait_behind_a_batch_queue(live_service, speech_path):
    """Four long batch jobs queued first; a gateway file sent after them is taken before most of
    them (the worker reads the interactive queue first)."""
    service = live_service(workers=0)
    url = start_gateway(service, "--certfile", "0")
    batch = [service.submit(speech_path("jfk.flac"), language="en")["id"] for _ in range(4)]
    pcm, _ = pcm_of(speech_path("asr_example.wav"))

    async def go():
        async with connect(url) as ws:
            await send_file(ws, Audio(pcm, "urgent", "pcm", 16000, "达摩院"), "new")
            await asyncio.sleep(1.0)  # the job is committed and queued behind the batch
            service.start_worker(wait=False)
            return await read_answer(ws, "new", 300)

    answer = asyncio.run(go())
    assert "达摩院" in answer.result["text"]
    urgent = service.job(answer.result["job_id"])
    batch_jobs = [service.wait(job_id) for job_id in batch]
    started_before = [j for j in batch_jobs if j["started_at"] < urgent["started_at"]]
    assert len(started_before) <= 1, [j["started_at"] for j in batch_jobs] + [urgent["started_at"]]


def test_default_modes_stereo_and_a_client_that_leaves(live_service, speech_path, tmp_path):
    """Each client generation in each mode gets the whole-file text in the frame it reads; a stereo
    file's frames sent as pcm (as both FunASR Python clients send a .wav) with two different
    channels are mixed down with a warning; a client that leaves before its answer cancels its job."""
    service = live_service()
    url = start_gateway(service, "--certfile", "0")
    wav = speech_path("asr_example.wav")
    expected = rest_text(service, wav, "达摩院")
    pcm, _ = pcm_of(wav)
    for mode, generation, reply in (("online", "old", "online"), ("online", "new", "online"),
                                    ("2pass", "old", "2pass-offline"), (None, "new", "2pass-offline")):
        (answer,) = run(url, [Audio(pcm, f"{mode}-{generation}", "pcm", 16000, "达摩院", mode=mode)],
                        generation=generation)
        assert answer.result["mode"] == reply and same(answer.result["text"], expected), answer.result
        assert "warning" not in answer.result

    # Left: the speech; right: the same 30 ms later at half the level (a second microphone).
    stereo = tmp_path / "two_mics.wav"
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-i", str(wav), "-filter_complex",
                    "[0:a]asplit[l][r0];[r0]adelay=30,volume=0.5[r];[l][r]join=inputs=2:channel_layout=stereo",
                    str(stereo)], check=True)
    with wave.open(str(stereo), "rb") as handle:
        assert handle.getnchannels() == 2
        frames = handle.readframes(handle.getnframes())
    (answer,) = run(url, [Audio(frames, "two_mics.wav", "pcm", 16000, "达摩院")], generation="old")
    # The mix of two delayed copies is not the original audio: compare with the REST transcript of the file.
    assert same(answer.result["text"], rest_text(service, stereo, "达摩院")), answer.result
    assert "mixed down" in answer.result["warning"]

    async def leave():
        """A minute of speech; the client leaves once its job exists, queued or running."""
        async with connect(url) as ws:
            await send_file(ws, Audio(pcm * 11, "left", "pcm", 16000), "new")
            deadline = time.monotonic() + 60
            while not [j for j in service.jobs()["items"] if j["filename"] == "left.wav"]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)

    asyncio.run(leave())
    (left,) = [j for j in service.jobs()["items"] if j["filename"] == "left.wav"]
    assert service.wait(left["id"])["status"] == "canceled"
