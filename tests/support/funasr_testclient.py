"""A FunASR WebSocket client for tests, written from the protocol notes (not from tingxie's code).

Two generations: ``old`` ends a file with ``{"is_speaking": false}`` and takes the first frame
as the result (as the older Python and the C++ clients do); ``new`` adds ``"is_end": true`` and
waits for the acknowledgement after the result. ``pipelined`` sends every file before reading
any answer, as the C++ client does on one connection. A 2pass/online pcm stream may be answered in
pieces (several frames, ``is_final`` on the last): :func:`read_answer` reads them all. :func:`live`
streams as the Python clients do in 2pass/online mode: at real-time pace, the older one closing 2 s
after its end frame whatever it has heard.
"""
from __future__ import annotations

import asyncio
import json
import re
import ssl
from dataclasses import dataclass, field

import websockets

FRAME_LIMIT_BYTES = 1024 * 1024


@dataclass
class Audio:
    data: bytes
    wav_name: str
    wav_format: str | None = "pcm"  # None: the key is left out
    audio_fs: int | None = 16000
    hotwords: str | None = None
    itn: bool | None = True
    mode: str | None = "offline"
    chunk_bytes: int = 19200  # the Python client's stride at 16 kHz
    extra: dict = field(default_factory=dict)  # more config keys (tingxie's extensions)


@dataclass
class Answer:
    result: dict | None = None  # the last result frame (a whole file's only one)
    ack: dict | None = None
    frames: list[dict] = field(default_factory=list)

    @property
    def text(self) -> str:
        """What a client shows: the text of every result frame, appended (FunASR clients append)."""
        return "".join(f.get("text", "") for f in self.frames)


def client_ssl() -> ssl.SSLContext:
    """As FunASR's clients do: TLS without verifying the (self-signed) certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _config(audio: Audio) -> str:
    message = {"chunk_size": [5, 10, 5], "chunk_interval": 10, "encoder_chunk_look_back": 4,
               "wav_name": audio.wav_name, "is_speaking": True}
    for key, value in (("mode", audio.mode), ("wav_format", audio.wav_format), ("audio_fs", audio.audio_fs),
                       ("hotwords", audio.hotwords), ("itn", audio.itn)):
        if value is not None:
            message[key] = value
    message.update(audio.extra)
    return json.dumps(message, ensure_ascii=False)


async def send_file(ws, audio: Audio, generation: str) -> None:
    await ws.send(_config(audio))
    for start in range(0, len(audio.data), audio.chunk_bytes):
        await ws.send(audio.data[start:start + audio.chunk_bytes])
    end = {"is_speaking": False}
    if generation == "new":
        end["is_end"] = True
    await ws.send(json.dumps(end))


async def _recv(ws, timeout_s: float) -> dict:
    raw = await asyncio.wait_for(ws.recv(), timeout_s)
    assert isinstance(raw, str), "the server sends text frames only"
    assert len(raw.encode()) < FRAME_LIMIT_BYTES
    return json.loads(raw)


def connect(url: str):
    """As FunASR clients connect: subprotocol "binary", no pings, unverified TLS for wss."""
    ctx = client_ssl() if url.startswith("wss://") else None
    return websockets.connect(url, subprotocols=["binary"], ping_interval=None, ssl=ctx,
                              max_size=FRAME_LIMIT_BYTES, open_timeout=120)


async def transcribe(url: str, files: list[Audio], *, generation: str = "new", pipelined: bool = False,
                     timeout_s: float = 300.0) -> list[Answer]:
    """Send ``files`` on one connection and collect each file's answer, in order."""
    answers: list[Answer] = []
    async with connect(url) as ws:
        assert ws.subprotocol == "binary"
        if pipelined:
            for audio in files:
                await send_file(ws, audio, generation)
            for _audio in files:
                answers.append(await read_answer(ws, generation, timeout_s))
        else:
            for audio in files:
                await send_file(ws, audio, generation)
                answers.append(await read_answer(ws, generation, timeout_s))
    return answers


def _piece(frame: dict) -> bool:
    """A frame for an earlier piece of a stream: more follow."""
    return frame.get("is_final") is False and not frame.get("is_end")


async def read_answer(ws, generation: str, timeout_s: float) -> Answer:
    answer = Answer()
    first = await _recv(ws, timeout_s)
    answer.frames.append(first)
    while _piece(first):
        first = await _recv(ws, timeout_s)
        answer.frames.append(first)
    answer.result = first
    # A failed file is one frame; a recognised one is followed by its acknowledgement (new only).
    if generation == "new" and first.get("is_final") is True and not first.get("is_end"):
        ack = await _recv(ws, timeout_s)
        answer.frames.append(ack)
        answer.ack = ack
    return answer


@dataclass
class Heard:
    """What a live client heard: every frame, and how many arrived before its end frame was sent."""

    frames: list[dict] = field(default_factory=list)
    before_end: int = 0

    @property
    def text(self) -> str:
        return "".join(f.get("text", "") for f in self.frames)


async def live(url: str, audio: Audio, *, generation: str = "old", chunk_s: float = 0.06, pace: float = 1.0,
               linger_s: float = 2.0, silence_until_heard: int = 0, timeout_s: float = 300.0) -> Heard:
    """Stream ``audio`` (pcm) as FunASR's Python client does in 2pass/online mode: ``chunk_s`` of audio
    every ``chunk_s * pace`` seconds (pace 1: real time, its only speed), then the end frame; the
    older generation closes ``linger_s`` later whatever it has heard, the newest reads until the
    acknowledgement. ``silence_until_heard``: after the audio, go on sending silence (an open
    microphone in a quiet room) until that many frames have arrived, within ``timeout_s``."""
    heard = Heard()
    stride = int(chunk_s * audio.audio_fs) * 2

    async def listen(ws):
        while True:
            frame = await _recv(ws, timeout_s)
            heard.frames.append(frame)
            if generation == "new" and frame.get("is_end"):
                return

    async with connect(url) as ws:
        listening = asyncio.create_task(listen(ws))
        await ws.send(_config(audio))
        for start in range(0, len(audio.data), stride):
            await ws.send(audio.data[start:start + stride])
            await asyncio.sleep(chunk_s * pace)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(heard.frames) < silence_until_heard:
            assert asyncio.get_running_loop().time() < deadline, f"heard {len(heard.frames)} frames in {timeout_s} s"
            assert not listening.done(), listening
            await ws.send(bytes(stride))
            await asyncio.sleep(chunk_s * pace)
        heard.before_end = len(heard.frames)
        await ws.send(json.dumps({"is_speaking": False, "is_end": True} if generation == "new"
                                 else {"is_speaking": False}))
        try:
            if generation == "new":
                await asyncio.wait_for(listening, timeout_s)
            else:
                await asyncio.sleep(linger_s)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
    return heard


def run(url: str, files: list[Audio], **kwargs) -> list[Answer]:
    return asyncio.run(transcribe(url, files, **kwargs))


def html5_walk(text: str, timestamp: str) -> int:
    """The html5 demo's handleWithTimestamp: how far into ``timestamp`` it indexes."""
    spans = json.loads(timestamp)
    index = 0
    for chunk in re.sub(r"。|？|，|、|\?|\.| ", ",", text).split(","):
        if not chunk:
            continue
        assert index < len(spans), f"html5 would read timestamp[{index}] of {len(spans)}"
        index += 1 if re.fullmatch(r"[a-zA-Z]+", chunk) else len(chunk)
    return index
