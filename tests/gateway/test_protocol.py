"""The FunASR protocol layer: frame rules as pure functions, and every kind of bad input
against a real gateway (real database, no worker needed): an error frame, a close, no job
left queued, no spool file left behind."""
from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import replace
import json
import subprocess
import sys
import time
import wave

import pytest
import websockets
from sqlalchemy import select

from core.db import make_engine, make_sessionmaker, session_scope
from media import find_ffmpeg
from core.models import Job
from core import storage
from contract import Hotword, Transcript
from gateway import GatewayConfig
from gateway.protocol import (
    RESULT_FRAME_LIMIT_BYTES,
    FileRequest,
    ProtocolError,
    encode,
    error_frame,
    is_end_frame,
    is_wav_container,
    StereoProbe,
    parse_config,
    parse_text_frame,
    result_frame,
    wav_header,
)
from tests.support.funasr_testclient import client_ssl, html5_walk
from tests.support.gateway import run_in_thread

# --- pure rules -------------------------------------------------------------------------------


def test_end_frames_of_every_client_generation():
    assert is_end_frame({"is_speaking": False})
    assert is_end_frame({"is_speaking": False, "is_end": True})
    assert is_end_frame({"is_finished": True})
    assert not is_end_frame({"is_speaking": True, "mode": "offline"})
    assert not is_end_frame({"mode": "offline"})


def test_config_defaults_unknown_keys_and_formats():
    request = parse_config({"mode": "offline", "wav_name": "a", "is_speaking": True, "chunk_size": [5, 10, 5],
                            "chunk_interval": 10, "encoder_chunk_look_back": 4, "svs_lang": "auto", "svs_itn": True})
    assert request == FileRequest(wav_name="a", mode="offline")
    assert request.raw_pcm and request.audio_fs_hz == 16000 and request.itn and request.hotwords is None
    assert parse_config({"wav_format": "PCM", "audio_fs": 8000}).raw_pcm
    assert parse_config({"wav_format": "pcm", "audio_fs": "44100"}).audio_fs_hz == 44100
    for fmt in ("others", "mp3", "MP4", "wav", "m4a", "webm"):
        assert not parse_config({"wav_format": fmt}).raw_pcm
    assert parse_config({"itn": False}).itn is False and parse_config({"itn": 0}).itn is False
    assert parse_config({}).reply_mode == "2pass-offline"
    assert parse_config({"mode": "2pass"}).reply_mode == "2pass-offline"
    assert parse_config({"mode": "offline"}).reply_mode == "offline"
    assert parse_config({"mode": "online"}).reply_mode == "online"  # the clients append "online" text
    assert parse_config({"channels": 2}).channels == 2 and parse_config({}).channels is None
    # A later config frame before the end updates the file's parameters.
    base = parse_config({"wav_name": "x", "mode": "offline", "wav_format": "mp3"})
    assert parse_config({"itn": False}, base) == FileRequest("x", "offline", "mp3", False, 16000, False)


def test_channels_apart_as_rest_names_them_in_the_channels_key():
    """``"channels": "separate"`` is the REST field's word in the gateway's own key: each channel
    apart, raw pcm read as two interleaved channels; a count or ``mix`` mixes them down again."""
    apart = parse_config({"channels": "separate", "channel_names": " agent, customer "})
    assert apart.separate_channels and apart.channels == 2 and apart.channel_names == ("agent", "customer")
    assert parse_config({"channels": "Separate", "channel_names": ["agent", "customer"]}) == apart
    assert parse_config({"wav_format": "wav", "channels": "separate"}).separate_channels
    # The last word a file's config frames send decides; "mix" leaves the count to the audio again.
    assert parse_config({"channels": "mix"}) == FileRequest()
    unnamed = parse_config({"channels": "separate"})
    assert parse_config({"channels": 2}, unnamed) == replace(unnamed, separate_channels=False)
    assert parse_config({"itn": False}, apart).separate_channels  # a later frame without the key keeps it
    assert not parse_config({"channels": 2}).separate_channels


@pytest.mark.parametrize("message, code, says", [
    ({"channels": "stereo"}, "bad_config", "'mix' or 'separate'"),
    ({"channels": ["separate"]}, "bad_config", "'mix' or 'separate'"),
    ({"channel_names": "agent,customer"}, "bad_channels", 'need "channels": "separate"'),
    ({"channels": 2, "channel_names": "agent,customer"}, "bad_channels", 'need "channels": "separate"'),
    ({"channels": "separate", "channel_names": 7}, "bad_channels", "a list of strings"),
    ({"channels": "separate", "channel_names": ["agent", 7]}, "bad_channels", "a list of strings"),
    ({"channels": "separate", "channel_names": ",".join("abcdefghi")}, "bad_channels", "at most 8 channels"),
    ({"channels": "separate", "channel_names": "agent,,customer"}, "bad_channels", "printable characters"),
    ({"channels": "separate", "channel_names": ["a,b"]}, "bad_channels", "without commas"),
    ({"channels": "separate", "channel_names": ["x" * 65]}, "bad_channels", "printable characters"),
    ({"channels": "separate", "channel_names": ["bell\u0007"]}, "bad_channels", "printable characters"),
    ({"channels": "separate", "diarize": True}, "bad_channels", "does not go with diarize"),
    ({"channels": "separate", "num_speakers": 2}, "bad_channels", "does not go with diarize"),
    ({"channels": "separate", "num_speakers": 0}, "bad_speakers", "1 to"),
])
def test_bad_channel_options_are_refused_with_the_rest_apis_reasons(message, code, says):
    with pytest.raises(ProtocolError) as caught:
        parse_config(message)
    assert caught.value.code == code and says in caught.value.message, caught.value.message


def test_a_later_frame_cannot_add_speaker_labels_to_channels_apart():
    apart = parse_config({"channels": "separate"})
    with pytest.raises(ProtocolError) as caught:
        parse_config({"diarize": True}, apart)
    assert caught.value.code == "bad_channels"


@pytest.mark.parametrize("message, code", [
    ({"mode": "streaming"}, "unsupported_mode"),
    ({"channels": 6}, "bad_config"),
    ({"channels": True}, "bad_config"),
    ({"wav_format": "xyz"}, "unknown_wav_format"),
    ({"audio_fs": "fast"}, "bad_config"),
    ({"audio_fs": 10}, "bad_config"),
    ({"itn": "maybe"}, "bad_config"),
    ({"hotwords": '{"broken": '}, "bad_hotwords"),
    ({"hotwords": 42}, "bad_hotwords"),
])
def test_bad_config_is_refused_with_a_reason(message, code):
    with pytest.raises(ProtocolError) as caught:
        parse_config(message)
    assert caught.value.code == code and caught.value.message


def test_three_hotword_shapes():
    H = Hotword
    assert parse_config({"hotwords": '{"阿里巴巴": 20, "通义实验室": "30"}'}).hotwords == (H("阿里巴巴", 20.0), H("通义实验室", 30.0))
    assert parse_config({"hotwords": "阿里巴巴,达摩院"}).hotwords == (H("阿里巴巴"), H("达摩院"))
    assert parse_config({"hotwords": "阿里巴巴 达摩院 通义"}).hotwords == (H("阿里巴巴"), H("达摩院"), H("通义"))
    # A client sending an object rather than a string is understood too; "" means "unchanged".
    assert parse_config({"hotwords": {"达摩院": 10}}).hotwords == (H("达摩院", 10.0),)
    assert parse_config({"hotwords": ""}).hotwords is None


def test_text_frames_must_be_json_objects():
    for text in ("{not json", "[1, 2]", '"offline"'):
        with pytest.raises(ProtocolError) as caught:
            parse_text_frame(text)
        assert caught.value.code == "bad_json"


def test_wav_header_makes_raw_pcm_a_file_ffmpeg_resamples(tmp_path, speech_path):
    raw = speech_path("asr_example.wav").read_bytes()[44:]
    # The same speech at 8 kHz as raw samples, wrapped by us, decoded by real ffmpeg to 16 kHz.
    pcm8k = subprocess.run([find_ffmpeg(), "-v", "error", "-f", "s16le", "-ar", "16000", "-ac", "1", "-i", "-",
                            "-ar", "8000", "-f", "s16le", "-"], input=raw, capture_output=True, check=True).stdout
    path = tmp_path / "wrapped.wav"
    path.write_bytes(wav_header(8000, len(pcm8k)) + pcm8k)
    assert is_wav_container(path.read_bytes()[:12])
    out = subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(path), "-ar", "16000", "-ac", "1", "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    assert abs(len(out) - len(raw)) <= 64  # 5.55 s either way


def _probe(data: bytes, chunk_bytes: int = 3001, test: str = "duplicated") -> bool:
    probe = StereoProbe()
    for start in range(0, len(data), chunk_bytes):  # odd chunk sizes: pairs split across frames
        probe.feed(data[start:start + chunk_bytes])
    return getattr(probe, test)


@pytest.mark.parametrize("name", ["asr_example.wav", "jfk.flac", "hotwords.mp3"])
@pytest.mark.parametrize("rate", ["8000", "16000"])
def test_stereo_sent_as_pcm_is_spotted_when_its_channels_are_equal(speech_path, name, rate):
    def pcm(channels: str) -> bytes:
        return subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(speech_path(name)), "-f", "s16le",
                               "-ar", rate, "-ac", channels, "-"], capture_output=True, check=True).stdout

    assert not _probe(pcm("1"))
    assert _probe(pcm("2"))


@pytest.mark.parametrize("name", ["asr_example.wav", "jfk.flac", "hotwords.mp3"])
@pytest.mark.parametrize("rate", ["8000", "16000"])
def test_stereo_with_two_different_channels_sent_as_pcm_is_spotted(speech_path, name, rate):
    """Left: the speech; right: the same speech 30 ms later at half the level (a second microphone),
    or another recording altogether. Mono speech is never taken for two channels."""
    ffmpeg = find_ffmpeg()

    def pcm(*filters: str, other: str | None = None) -> bytes:
        inputs = ["-i", str(speech_path(name))] + (["-i", str(speech_path(other))] if other else [])
        return subprocess.run([ffmpeg, "-v", "error", *inputs, *filters, "-f", "s16le", "-ar", rate, "-"],
                              capture_output=True, check=True).stdout

    mono = pcm("-ac", "1")
    delayed = pcm("-filter_complex", "[0:a]aformat=channel_layouts=mono,asplit[l][r0];"
                  "[r0]adelay=30,volume=0.5[r];[l][r]join=inputs=2:channel_layout=stereo", "-ac", "2")
    other = "jfk.flac" if name != "jfk.flac" else "asr_example.wav"
    two_talks = pcm("-filter_complex", "[0:a]aformat=channel_layouts=mono[l];[1:a]aformat=channel_layouts=mono[r];"
                    "[l][r]join=inputs=2:channel_layout=stereo", "-ac", "2", other=other)
    assert not _probe(mono, test="interleaved")
    assert _probe(delayed, test="interleaved") and not _probe(delayed)
    assert _probe(two_talks, test="interleaved")


def test_silence_says_nothing_about_channels():
    assert not _probe(b"\x00" * 200000) and not _probe(b"")
    assert not _probe(b"\x00" * 200000, test="interleaved")


def test_result_frame_shape_from_a_stored_transcript():
    transcript = {
        "text": "正是因为，存在。", "language": "zh", "duration_ms": 3000,
        "segments": [
            {"start_ms": 430, "end_ms": 1130, "text": "正是因为，", "punc": "，",
             "words": [{"start_ms": 430, "end_ms": 670, "text": "正是"}, {"start_ms": 670, "end_ms": 1130, "text": "因为"}],
             "tokens": []},
            {"start_ms": 1200, "end_ms": 2000, "text": "存在。", "punc": "。", "words": [],
             "tokens": [[1200, 1500], [1500, 2000]]},
        ],
    }
    frame = result_frame(FileRequest(wav_name="w", mode="offline"), Transcript.from_dict(transcript), "job1")
    assert frame["mode"] == "offline" and frame["wav_name"] == "w" and frame["is_final"] is True
    assert frame["text"] == "正是因为，存在。" and frame["job_id"] == "job1"
    # One span per character, as FunASR gives them: two-character words are split in time.
    per_char = [[430, 550], [550, 670], [670, 900], [900, 1130]]
    assert json.loads(frame["timestamp"]) == per_char + [[1200, 1500], [1500, 2000]]
    assert frame["stamp_sents"][0] == {"text_seg": "正 是 因 为", "punc": "，", "start": 430, "end": 1130,
                                       "ts_list": per_char}
    assert frame["stamp_sents"][1]["text_seg"] == "存 在" and frame["stamp_sents"][1]["ts_list"] == [[1200, 1500], [1500, 2000]]
    # An empty transcript still has text (older clients index it) and a parseable timestamp.
    empty = result_frame(FileRequest(), Transcript(text="", language="zh", duration_ms=0))
    assert empty["text"] == "" and json.loads(empty["timestamp"]) == []


def test_result_frame_labels_each_sentence_with_its_channel_and_name():
    """Channels apart: ``channel`` and ``channel_name`` beside FunASR's keys (its clients ignore
    them), ``spk`` the channel's speaker; a channel left unnamed has no name key; a mixed job has neither."""
    words = [{"start_ms": 500, "end_ms": 1500, "text": "你好", "speaker": "C1"}]
    transcript = Transcript.from_dict({
        "text": "你好。 Hello.", "language": "zh", "duration_ms": 4000,
        "speakers": [{"id": "C0", "name": None}, {"id": "C1", "name": "customer"}],
        "segments": [
            {"start_ms": 500, "end_ms": 1500, "text": "你好。", "punc": "。", "speaker": "C1", "channel": 1,
             "words": words, "tokens": []},
            {"start_ms": 2000, "end_ms": 3000, "text": "Hello.", "punc": ".", "speaker": "C0", "channel": 0,
             "words": [{"start_ms": 2000, "end_ms": 3000, "text": "Hello.", "speaker": "C0"}], "tokens": []},
        ]})
    frame = json.loads(encode(result_frame(FileRequest(mode="offline"), transcript, offset_ms=1000)))
    first, second = frame["stamp_sents"]
    assert (first["channel"], first["channel_name"], first["spk"], first["start"]) == (1, "customer", 1, 1500)
    assert (second["channel"], second["spk"]) == (0, 0) and "channel_name" not in second
    assert {"text_seg", "punc", "start", "end", "ts_list"} <= set(first)
    mixed = result_frame(FileRequest(), Transcript.from_dict({**transcript.to_dict(), "speakers": None, "segments": [
        {k: v for k, v in s.items() if k not in ("channel", "speaker")} for s in transcript.to_dict()["segments"]]}))
    assert all("channel" not in s and "channel_name" not in s for s in mixed["stamp_sents"])


def test_timestamps_line_up_with_the_text_as_the_html5_demo_reads_them():
    words = [{"start_ms": 0, "end_ms": 400, "text": " And"}, {"start_ms": 400, "end_ms": 900, "text": " so,"},
             {"start_ms": 900, "end_ms": 1500, "text": " my"}]
    transcript = {"text": "And so, my 欢迎大家，2024年。", "language": "en", "duration_ms": 5000, "segments": [
        {"start_ms": 0, "end_ms": 1500, "text": "And so, my", "punc": "", "words": words, "tokens": []},
        {"start_ms": 1600, "end_ms": 4000, "text": "欢迎大家，2024年。", "punc": "。",
         "words": [{"start_ms": 1600, "end_ms": 2400, "text": "欢迎大家"}, {"start_ms": 2400, "end_ms": 4000, "text": "2024年"}],
         "tokens": []},
    ]}
    frame = result_frame(FileRequest(), Transcript.from_dict(transcript))
    spans = json.loads(frame["timestamp"])
    assert html5_walk(frame["text"], frame["timestamp"]) == len(spans) == 3 + 4 + 5
    assert spans[:3] == [[0, 400], [400, 900], [900, 1500]]  # English words keep their own spans
    assert all(a <= b for a, b in spans) and [a for a, _ in spans] == sorted(a for a, _ in spans)
    assert spans[3][0] == 1600 and spans[-1][1] == 4000
    assert [len(s["ts_list"]) for s in frame["stamp_sents"]] == [len(s["text_seg"].split()) for s in frame["stamp_sents"]]


def test_frames_stay_under_one_mebibyte_for_a_very_long_file():
    words = [{"start_ms": i * 10, "end_ms": i * 10 + 9, "text": "字"} for i in range(20000)]
    segments = [{"start_ms": k * 200000, "end_ms": k * 200000 + 199990, "text": "字" * 20000, "punc": "。",
                 "words": words, "tokens": []} for k in range(8)]
    transcript = {"text": "字" * 160000, "language": "zh", "duration_ms": 1600000, "segments": segments}
    text = encode(result_frame(FileRequest(), Transcript.from_dict(transcript)))
    assert len(text.encode()) <= RESULT_FRAME_LIMIT_BYTES
    frame = json.loads(text)
    assert frame["text"] == "字" * 160000 and frame["truncated"] is True
    huge = {"text": "字" * 600000, "language": "zh", "duration_ms": 1, "segments": []}
    cut = json.loads(encode(result_frame(FileRequest(), Transcript.from_dict(huge))))
    assert len(json.dumps(cut, ensure_ascii=False).encode()) <= RESULT_FRAME_LIMIT_BYTES and cut["text"]


def test_error_frame_tells_both_generations():
    frame = error_frame(FileRequest(wav_name="x", mode="offline"), "bad_media", "not audio")
    assert frame == {"mode": "offline", "wav_name": "x", "text": "", "is_end": True, "is_final": False,
                     "error": "not audio", "error_code": "bad_media", "job_id": None}


# --- bad input against a running gateway ------------------------------------------------------


@pytest.fixture(params=["ws", "wss"])
def ws_and_wss_gateway(request, settings, migrated):
    migrated.migrate(settings)
    settings = dataclasses.replace(settings, max_duration_s=3.0)
    config = GatewayConfig.from_settings(settings, port=0, certfile="0" if request.param == "ws" else "",
                                         idle_timeout_s=1.5, max_frame_bytes=256 * 1024)
    thread = run_in_thread(settings, config)
    yield thread
    thread.stop()


def converse(url: str, frames: list, timeout_s: float = 10.0) -> tuple[list[dict], int | None]:
    """Send ``frames``, then read until the server closes: (frames received, close code)."""
    async def go():
        received = []
        ctx = client_ssl() if url.startswith("wss") else None
        async with websockets.connect(url, subprotocols=["binary"], ping_interval=None, ssl=ctx,
                                      max_size=2**20) as ws:
            try:
                for frame in frames:
                    await ws.send(frame)
                while True:
                    received.append(json.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
            except websockets.ConnectionClosed as exc:
                return received, exc.rcvd.code if exc.rcvd else None
    return asyncio.run(go())


def config(**extra) -> str:
    return json.dumps({"mode": "offline", "wav_name": "bad", "wav_format": "pcm", "audio_fs": 16000,
                       "is_speaking": True, **extra})


END = json.dumps({"is_speaking": False, "is_end": True})


@pytest.mark.parametrize("name, frames, code, close", [
    ("binary first", [b"\x00\x01" * 100], "no_config", 1008),
    ("end frame first", [END], "no_config", 1008),
    ("no config at all", [], "no_config", 1008),
    ("malformed JSON", ["{\"mode\": offline"], "bad_json", 1008),
    ("JSON list", ["[1, 2, 3]"], "bad_json", 1008),
    ("unknown wav_format", [config(wav_format="xyz")], "unknown_wav_format", 1008),
    ("unknown mode", [config(mode="streaming")], "unsupported_mode", 1008),
    ("bad audio_fs", [config(audio_fs=-5)], "bad_config", 1008),
    ("unknown channels", [config(channels="both")], "bad_config", 1008),
    ("channel names alone", [config(channel_names="agent,customer")], "bad_channels", 1008),
    ("channels apart and diarize", [config(channels="separate", diarize=True)], "bad_channels", 1008),
    ("channel names of a bad shape", [config(channels="separate", channel_names={"0": "agent"})], "bad_channels", 1008),
    ("silence mid-file", [config(), b"\x00" * 3200], "idle_timeout", 1008),
    ("oversized frame", [config(), b"\x00" * (300 * 1024)], "frame_too_large", 1009),
    ("audio over the cap", [config()] + [b"\x00" * 32000] * 4, "too_long", 1009),
])
def test_bad_input_gets_an_error_frame_and_a_close(ws_and_wss_gateway, name, frames, code, close):
    received, close_code = converse(ws_and_wss_gateway.url, frames)
    assert len(received) == 1, received
    frame = received[0]
    assert frame["error_code"] == code and frame["error"], frame
    assert frame["is_end"] is True and frame["is_final"] is False and frame["text"] == ""
    assert close_code == close
    _assert_nothing_left(ws_and_wss_gateway)


def test_empty_file_is_answered_and_the_connection_goes_on(ws_and_wss_gateway):
    received, close_code = converse(ws_and_wss_gateway.url, [config(wav_name="empty"), END])
    assert [f["error_code"] for f in received] == ["empty_audio"] and received[0]["wav_name"] == "empty"
    assert close_code == 1000  # closed only after idling with nothing pending
    _assert_nothing_left(ws_and_wss_gateway)


def test_a_browser_without_the_binary_subprotocol_is_served(ws_and_wss_gateway):
    async def go():
        ctx = client_ssl() if ws_and_wss_gateway.url.startswith("wss") else None
        async with websockets.connect(ws_and_wss_gateway.url, ping_interval=None, ssl=ctx) as ws:
            assert ws.subprotocol is None
            await ws.send(config(wav_name="browser"))
            await ws.send(json.dumps({"is_finished": True}))  # the C++ server's end frame
            return json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert asyncio.run(go())["wav_name"] == "browser"


def test_a_repeated_end_frame_after_a_file_is_ignored(ws_and_wss_gateway):
    received, _ = converse(ws_and_wss_gateway.url, [config(wav_name="e"), END, END, json.dumps({"is_speaking": False})])
    assert [f["error_code"] for f in received] == ["empty_audio"]


def _job_statuses(engine, wanted: set[str]) -> list[str]:
    """The jobs' statuses once they are all in ``wanted`` (a hang guard of 60 s, not a time the test asserts)."""
    deadline = time.monotonic() + 60
    while True:
        with session_scope(make_sessionmaker(engine)) as session:
            statuses = session.execute(select(Job.status)).scalars().all()
        if (statuses and set(statuses) <= wanted) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.1)


@pytest.mark.parametrize("leave", ["after_the_job", "at_once"])
def test_a_file_whose_client_leaves_before_its_result_is_canceled(ws_and_wss_gateway, speech_path, leave):
    """No worker runs here: the job is committed and queued while the client waits; the client
    leaves (once the job exists, or right after its end frame, while the job is being made); the
    job is canceled, the spool is empty, and the gateway holds no watcher for it."""
    pcm = speech_path("asr_example.wav").read_bytes()[44:16044]
    settings = ws_and_wss_gateway.settings
    engine = make_engine(settings.database_url)

    async def go():
        ctx = client_ssl() if ws_and_wss_gateway.url.startswith("wss") else None
        async with websockets.connect(ws_and_wss_gateway.url, subprotocols=["binary"], ping_interval=None, ssl=ctx) as ws:
            await ws.send(config(wav_name="left.wav", hotwords="达摩院 20"))
            await ws.send(pcm)
            await ws.send(END)
            if leave == "after_the_job":
                assert await asyncio.to_thread(_job_statuses, engine, {"queued"}) == ["queued"]
    asyncio.run(go())
    assert _job_statuses(engine, {"canceled"}) == ["canceled"]
    with session_scope(make_sessionmaker(engine)) as session:
        jobs = session.execute(select(Job)).scalars().all()
        assert [(j.source, j.filename, j.priority > 0) for j in jobs] == [("gateway", "left.wav", True)]
        assert jobs[0].options["hotwords"] == [["达摩院", 20.0]]
        media = settings.media_dir / jobs[0].media_key
    engine.dispose()
    data = media.read_bytes()
    assert is_wav_container(data[:12]) and data[44:] == pcm
    _assert_nothing_left(ws_and_wss_gateway)


def test_declared_stereo_pcm_apart_becomes_a_separate_channels_job_timed_as_stereo(ws_and_wss_gateway, stereo_call):
    """2.5 s of the two-voice call's interleaved frames with ``"channels": "separate"``: under the
    3 s cap (as mono samples they would be 5 s), a queued job of two-channel WAV media with the REST
    API's channel options; the client leaves and the job is canceled (no worker runs here)."""
    with wave.open(str(stereo_call), "rb") as handle:
        frames = handle.readframes(40000)  # 2.5 s at 16 kHz, two channels
    settings = ws_and_wss_gateway.settings
    engine = make_engine(settings.database_url)

    async def go():
        ctx = client_ssl() if ws_and_wss_gateway.url.startswith("wss") else None
        async with websockets.connect(ws_and_wss_gateway.url, subprotocols=["binary"], ping_interval=None, ssl=ctx) as ws:
            await ws.send(config(wav_name="call", channels="separate", channel_names=["agent", "customer"]))
            for at in range(0, len(frames), 32000):
                await ws.send(frames[at:at + 32000])
            await ws.send(END)
            assert await asyncio.to_thread(_job_statuses, engine, {"queued"}) == ["queued"]
    asyncio.run(go())
    assert _job_statuses(engine, {"canceled"}) == ["canceled"]
    with session_scope(make_sessionmaker(engine)) as session:
        (job,) = session.execute(select(Job)).scalars().all()
        assert job.options["channels"] == "separate" and job.options["channel_names"] == ["agent", "customer"]
        media = settings.media_dir / job.media_key
    engine.dispose()
    with wave.open(str(media), "rb") as stored:
        assert (stored.getnchannels(), stored.getframerate()) == (2, 16000)
        assert stored.readframes(stored.getnframes()) == frames
    _assert_nothing_left(ws_and_wss_gateway)


def _assert_nothing_left(ws_and_wss_gateway) -> None:
    spool = storage.upload_spool_dir(ws_and_wss_gateway.settings)
    deadline = time.monotonic() + 30  # a hang guard
    while time.monotonic() < deadline and (list(spool.glob("*")) or ws_and_wss_gateway.gateway.hub.watched_jobs):
        time.sleep(0.05)  # the server notices a departed client a moment after it leaves
    assert not list(spool.glob("*")), "spool files left behind"
    assert ws_and_wss_gateway.gateway.hub.watched_jobs == 0
    engine = make_engine(ws_and_wss_gateway.settings.database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        statuses = session.execute(select(Job.status).where(Job.filename.like("bad%"))).scalars().all()
    engine.dispose()
    assert statuses == []


def test_many_refused_and_abandoned_connections_leave_nothing_behind(ws_and_wss_gateway, speech_path):
    baseline = ws_and_wss_gateway.stats()
    pcm = speech_path("asr_example.wav").read_bytes()[44:16044]

    async def abandon():
        """Half a file, then the client vanishes."""
        ctx = client_ssl() if ws_and_wss_gateway.url.startswith("wss") else None
        async with websockets.connect(ws_and_wss_gateway.url, subprotocols=["binary"], ping_interval=None, ssl=ctx) as ws:
            await ws.send(config(wav_name="bad-abandoned"))
            await ws.send(pcm)

    for i in range(10):
        converse(ws_and_wss_gateway.url, [b"\x00" * 10])
        converse(ws_and_wss_gateway.url, ["{oops"])
        asyncio.run(abandon())
    _assert_nothing_left(ws_and_wss_gateway)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and ws_and_wss_gateway.stats() != baseline:
        time.sleep(0.1)
    assert ws_and_wss_gateway.stats() == baseline == {"connections": 0, "tasks": baseline["tasks"], "watched_jobs": 0}


def test_the_gateway_loads_no_model_code():
    code = ("import sys, gateway, cli.gateway; "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    heavy = {"torch", "numpy", "ctranslate2", "onnxruntime", "faster_whisper", "funasr", "pipeline", "worker"}
    assert not {m for m in loaded if m.split(".")[0] in heavy}


def test_a_deeply_nested_text_frame_is_a_protocol_error():
    for levels in (100, 100_000):
        with pytest.raises(ProtocolError) as caught:
            parse_text_frame('{"mode": ' + "[" * levels + "]" * levels + "}")
        assert caught.value.code == "bad_json"
