"""One way in: the same request through every door (REST, the FunASR gateway, the OpenAI API)
is stored as the same typed options by the one submission path."""
from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import time

import pytest
import websockets
from sqlalchemy import select

from core import jobs
from core.db import session_scope
from core.hotwords import Hotword
from core.models import Job
from core.options import INTERACTIVE_PRIORITY, Source
from gateway import GatewayConfig
from tests.support.gateway import run_in_thread

HOTWORDS = {"达摩院": 20, "ComfyUI": 30}


@pytest.fixture
def doors(any_settings, migrated):
    """A web app and a gateway over one database and broker (no worker: jobs stay queued)."""
    from web import create_app

    settings = dataclasses.replace(any_settings, openai_wait_s=0.1)
    migrated.migrate(settings)
    app = create_app(settings)
    gateway = run_in_thread(settings, GatewayConfig.from_settings(settings, port=0, certfile="0"))
    yield app, gateway
    gateway.stop()
    app.extensions["tingxie"].close()


def _via_gateway(url: str, path) -> None:
    async def go():
        async with websockets.connect(url, subprotocols=["binary"], ping_interval=None) as ws:
            await ws.send(json.dumps({"mode": "offline", "wav_name": path.name, "wav_format": "others",
                                      "is_speaking": True, "hotwords": json.dumps(HOTWORDS), "itn": False}))
            await ws.send(path.read_bytes())
            await ws.send(json.dumps({"is_speaking": False}))
            await asyncio.sleep(0.5)  # then leave; the job is waited for below
    asyncio.run(go())


def test_every_door_stores_the_same_options(doors, speech_path):
    app, gateway = doors
    client = app.test_client()
    wav = speech_path("asr_example.wav")
    rest = client.post("/api/v1/jobs", content_type="multipart/form-data", data={
        "file": (io.BytesIO(wav.read_bytes()), wav.name), "hotwords": json.dumps(HOTWORDS), "itn": "false"})
    assert rest.status_code == 202, rest.json
    openai = client.post("/v1/audio/transcriptions", content_type="multipart/form-data", data={
        "file": (io.BytesIO(wav.read_bytes()), wav.name), "model": "whisper-1", "prompt": "达摩院 20\nComfyUI 30",
        "itn": "false"})
    assert openai.status_code == 504 and openai.json["error"]["code"] == "still_running", openai.json
    _via_gateway(gateway.url, wav)
    # The gateway commits its job once the file has arrived, whenever the client leaves: waited
    # for (a hang guard, not a time the test asserts).
    deadline = time.monotonic() + 60
    while True:
        with session_scope(app.extensions["tingxie"].db) as s:
            if s.execute(select(Job).where(Job.source == "gateway")).first() is not None:
                break
        assert time.monotonic() < deadline, "the gateway's job was never written"
        time.sleep(0.1)

    with session_scope(app.extensions["tingxie"].db) as s:
        rows = {row.source: row for row in s.execute(select(Job)).scalars()}
        assert set(rows) == {"api", "openai", "gateway"}
        stored = {source: jobs.options_of(row) for source, row in rows.items()}
        assert all(row.options == rows["api"].options for row in rows.values())
        assert all(row.media_info == rows["api"].media_info for row in rows.values())
    expected = (Hotword("达摩院", 20.0), Hotword("ComfyUI", 30.0))
    for source, options in stored.items():
        assert options.hotwords == expected and options.itn is False and options.language == "auto"
        assert options.profile == "offline" and options.source == Source(source)
    assert stored["gateway"].priority == INTERACTIVE_PRIORITY and stored["api"].priority == 0


def test_every_door_refuses_the_same_bad_hotwords(doors, speech_path):
    app, gateway = doors
    client = app.test_client()
    wav = speech_path("asr_example.wav")
    bad = "hello nan"
    rest = client.post("/api/v1/jobs", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(wav.read_bytes()), wav.name), "hotwords": bad})
    openai = client.post("/v1/audio/transcriptions", content_type="multipart/form-data",
                         data={"file": (io.BytesIO(wav.read_bytes()), wav.name), "model": "whisper-1", "prompt": bad})

    async def gate():
        async with websockets.connect(gateway.url, subprotocols=["binary"], ping_interval=None) as ws:
            await ws.send(json.dumps({"mode": "offline", "wav_name": "x", "hotwords": bad, "is_speaking": True}))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))
    frame = asyncio.run(gate())
    assert rest.json["error"]["code"] == openai.json["error"]["code"] == frame["error_code"] == "bad_hotwords"
    with session_scope(app.extensions["tingxie"].db) as s:
        assert s.execute(select(Job)).first() is None


def test_an_internal_error_reaches_no_door_as_a_traceback_or_a_path(doors, speech_path, any_settings):
    """A real fault (the media store's directory is a file) on every door: each answers with a code
    and a sentence; the traceback, paths and the exception stay in the server's log. The gateway
    used to send the exception's text (a probe child's whole traceback, with install paths)."""
    import shutil
    from pathlib import Path

    app, gateway = doors
    media_dir = app.extensions["tingxie"].settings.media_dir
    shutil.rmtree(media_dir)
    media_dir.write_text("a file where the media store's directory should be\n")
    wav = speech_path("asr_example.wav")
    secrets = ("Traceback", 'File "', ".py", "Errno", "SQL", str(Path(__file__).resolve().parents[1]),
               str(any_settings.data_dir), "NotADirectoryError")

    client = app.test_client()
    rest = client.post("/api/v1/jobs", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(wav.read_bytes()), wav.name)})
    openai = client.post("/v1/audio/transcriptions", content_type="multipart/form-data",
                         data={"file": (io.BytesIO(wav.read_bytes()), wav.name), "model": "whisper-1"})

    async def gate():
        async with websockets.connect(gateway.url, subprotocols=["binary"], ping_interval=None) as ws:
            await ws.send(json.dumps({"mode": "offline", "wav_name": wav.name, "wav_format": "others",
                                      "is_speaking": True}))
            await ws.send(wav.read_bytes())
            await ws.send(json.dumps({"is_speaking": False}))
            return await asyncio.wait_for(ws.recv(), 60)
    frame = asyncio.run(gate())

    assert rest.status_code == 500 and rest.json["error"]["code"] == "internal_error"
    assert openai.status_code == 500 and openai.json["error"]["code"] == "internal_error"
    assert json.loads(frame)["error_code"] == "internal_error"
    for door, text in (("rest", rest.get_data(as_text=True)), ("openai", openai.get_data(as_text=True)),
                       ("gateway", frame)):
        assert not [s for s in secrets if s in text], (door, text)
