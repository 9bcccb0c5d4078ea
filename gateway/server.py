"""The FunASR-protocol WebSocket gateway: FunASR clients, unchanged, get tingxie jobs.

An asyncio server (the ``websockets`` package) on its own port, so hundreds of connections
cost a coroutine each, not a thread. Every file a client sends is spooled to disk as it
arrives and becomes an ordinary job (source ``gateway``, interactive priority so it does not
wait behind batch work), visible in the REST API; the answer is read from the stored
transcript once the job has ended. Jobs are made by the one submission path every door uses
(:func:`core.submit.submit_job`): probed, checked, committed, then enqueued. ``gateway.protocol``
holds the frame rules. Like the web tier, the gateway imports core only.

Who is connecting is settled in the opening handshake, before the socket is accepted
(:meth:`Gateway.admit`): a browser page's ``Origin`` must be tingxie's own page or one listed in
``TINGXIE_ALLOWED_ORIGINS`` (FunASR's html5 page served elsewhere works once its origin is listed;
opened from disk it sends ``Origin: null``, allowed only with ``TINGXIE_GATEWAY_ALLOW_FILE_PAGES``,
and otherwise told why in an error frame, since a page cannot read a refused handshake's answer);
a token, sent as ``Authorization: Bearer`` or as the URL's ``token`` parameter, is always checked,
and makes the connection's jobs its tenant's; without one, the jobs belong to the gateway's tenant
(``--tenant``), unless ``--require-token`` refuses such connections. FunASR's own clients send no
credentials and keep working under the default. A connection's token is re-checked every few
seconds while it is open (:mod:`core.revocation`): once it is revoked or expired, the connection gets
an ``unauthorized`` error frame and a 1008 close, and makes no more jobs.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.protocol import State

from core import access, dispatch, jobs, storage, tokens
from core.access import Principal
from core.db import session_scope
from core.errors import TingxieError, UnauthorizedError
from core.hotwords import Hotwords, load_hotword_file, merge
from core.hub import EventHub
from core.models import Job, Transcript
from core.options import INTERACTIVE_PRIORITY, JobOptions, Source, speaker_fields
from core.revocation import RevocationWatch
from core.services import Services
from core.settings import Settings
from core.submit import Upload, submit_job
from gateway.protocol import (
    STEREO_WARNING,
    FileRequest,
    ProtocolError,
    ack_frame,
    encode,
    empty_result_frame,
    error_frame,
    is_end_frame,
    StereoProbe,
    is_wav_container,
    parse_config,
    parse_text_frame,
    result_frame,
    wav_header,
)
from gateway.tls import ensure_self_signed, server_context
from gateway.segmenter import PauseCutter, joined_text, piece_name

log = logging.getLogger("tingxie.gateway")
# What a client is told of an unexpected failure; what failed (a traceback, paths, SQL) stays in the log.
INTERNAL_ERROR_MESSAGE = "the gateway failed to answer; its logs have details"

_SIZE_CODES = frozenset({"too_large", "too_long"})
# Modes whose raw pcm streams are answered piece by piece as they arrive (gateway.segmenter).
_STREAMING_MODES = frozenset({"2pass", "online"})


@dataclass(frozen=True)
class GatewayConfig:
    """How the gateway listens and what it accepts.

    certfile: "" makes (once) and uses a self-signed certificate under ``<data dir>/gateway``;
    "0" serves plain ws (FunASR's ``--certfile 0``); else a PEM certificate, with ``keyfile``.
    hotword_file: FunASR's ``--hotword``, one ``word weight`` a line, merged with each
    connection's hotwords (the deployment-wide ``TINGXIE_HOTWORD_FILE`` is merged at submission, as for
    every door).
    idle_timeout_s: seconds a file may go without a frame (or a new connection without its
    config frame) before it is refused; default 60.
    max_frame_bytes: largest single message accepted; default 8 MiB (FunASR's C++ client
    sends 200 KiB blocks).
    tenant: the tenant of jobs from connections that send no token (TINGXIE_GATEWAY_TENANT).
    require_token: refuse connections without a valid token (TINGXIE_GATEWAY_REQUIRE_TOKEN).
    """

    host: str = "127.0.0.1"
    port: int = 10095
    certfile: str = ""
    keyfile: str = ""
    hotword_file: Path | None = None
    idle_timeout_s: float = 60.0
    max_frame_bytes: int = 8 * 1024 * 1024
    priority: int = INTERACTIVE_PRIORITY
    tenant: str = access.LOCAL_TENANT
    require_token: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> "GatewayConfig":
        base = cls(
            host=settings.host,
            port=settings.gateway_port,
            certfile=settings.gateway_certfile,
            keyfile=settings.gateway_keyfile,
            tenant=settings.gateway_tenant,
            require_token=settings.gateway_require_token,
        )
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def tls(self) -> bool:
        return self.certfile != "0"


class _Connection(ServerConnection):
    """Sends an error frame before the close when a client's message is over the size limit:
    FunASR clients print error frames, while websockets alone would only send a close code.
    ``principal`` is who connected (set in the handshake)."""

    too_big_frame: str = encode(error_frame(None, "frame_too_large", "a frame was over the size limit"))
    principal: Principal | None = None
    refusal: str | None = None  # why the connection is closed at once (a page from disk, not allowed)

    def __init__(self, protocol, *args, **kwargs):
        super().__init__(protocol, *args, **kwargs)
        fail = protocol.fail

        def fail_with_frame(code, reason: str = "") -> None:
            if code == CloseCode.MESSAGE_TOO_BIG and protocol.state is State.OPEN:
                protocol.send_text(self.too_big_frame.encode())
            fail(code, reason)

        protocol.fail = fail_with_frame


def _select_subprotocol(connection, offered):
    return "binary" if "binary" in offered else None


class _Upload:
    """One file being received, written to a spool file as it arrives (mp4 needs seeking, and
    nothing is held in memory). Raw PCM gets a WAV header so the worker's ffmpeg resamples it."""

    def __init__(self, settings: Settings, request: FileRequest):
        self.settings = settings
        self.request = request
        self.handle = storage.open_spool_file(settings)
        self.path = Path(self.handle.name)
        self.audio_bytes = 0
        self.raw: bool | None = None  # decided by the first audio frame
        self.stereo = StereoProbe()
        self.warning: str | None = None  # what was guessed about the audio, for the result frame
        self._channels: int | None = None
        # A 2pass/online pcm stream is cut at pauses as it arrives (each piece its own job).
        self.cutter: PauseCutter | None = None
        self.pieces = 0  # pieces cut so far
        self.piece_start = 0  # audio byte offset where the next piece begins
        self.offset_ms = 0  # where this audio starts in the client's stream (a whole file: 0)

    def write(self, chunk: bytes) -> list[int]:
        """Spool ``chunk``; the audio byte offsets where finished pieces end (a 2pass/online pcm
        stream), else none."""
        if self.raw is None:
            # The html5 client sends a whole .wav (header included) as "PCM".
            self.raw = self.request.raw_pcm and not is_wav_container(chunk)
            if self.raw:
                self.handle.write(wav_header(self.request.audio_fs_hz, 0))
                if self.request.mode in _STREAMING_MODES:
                    self.cutter = PauseCutter(self.request.audio_fs_hz)
        total = self.audio_bytes + len(chunk)
        if total > self.settings.max_upload_bytes:
            raise ProtocolError(
                "too_large",
                f"{self.request.wav_name}: more than {self.settings.max_upload_bytes // 2**20} MiB of audio "
                "(TINGXIE_MAX_UPLOAD_MB)",
            )
        if self.raw:
            # Declared channels (2, or "separate") share the samples; undeclared audio counts as mono.
            seconds = total / (2 * (self.request.channels or 1) * self.request.audio_fs_hz)
            if seconds > self.settings.max_duration_s:
                raise ProtocolError(
                    "too_long",
                    f"{self.request.wav_name}: more than {self.settings.max_duration_s / 60:.0f} min of audio "
                    "(TINGXIE_MAX_DURATION_S)",
                )
        self.handle.write(chunk)
        self.audio_bytes = total
        if self.raw:
            self.stereo.feed(chunk)
        return self.cutter.feed(chunk) if self.cutter is not None else []

    def channels(self) -> int:
        """Raw pcm's interleaved channels, decided once (at the first piece or at the end)."""
        if self._channels is None:
            channels = self.request.channels
            if channels is None:
                channels = 2 if self.stereo.interleaved else 1
                if channels == 2:
                    log.info("%s: raw audio looks like two interleaved channels; read as stereo", self.request.wav_name)
                    self.warning = STEREO_WARNING.format(wav_name=self.request.wav_name)
            self._channels = channels
        return self._channels

    def finish(self) -> None:
        if self.raw:
            self.handle.seek(0)
            self.handle.write(wav_header(self.request.audio_fs_hz, self.audio_bytes, self.channels()))
        self.handle.close()

    def cut(self, end: int) -> "_Piece":
        """The audio from the previous cut to ``end`` as a WAV file of its own, for its own job.
        Copied from the spool (written, not yet closed) on the event loop, as the spool is
        written: a piece is at most ``max_piece_ms`` of audio."""
        if not self.handle.closed:
            self.handle.flush()
        start, self.piece_start = self.piece_start, end
        self.pieces += 1
        channels = self.channels()
        fs = self.request.audio_fs_hz
        handle = storage.open_spool_file(self.settings)
        try:
            handle.write(wav_header(fs, end - start, channels))
            with open(self.path, "rb") as spool:
                spool.seek(len(wav_header(fs, 0)) + start)
                handle.write(spool.read(end - start))
        except BaseException:
            handle.close()
            Path(handle.name).unlink(missing_ok=True)
            raise
        handle.close()
        return _Piece(Path(handle.name), piece_name(self.filename, self.pieces), end - start,
                      start * 1000 // (2 * channels * fs), self.warning)

    def discard(self) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)

    @property
    def filename(self) -> str:
        """The job's display name: the client's wav_name, with an extension that says what it is."""
        name = os.path.basename(self.request.wav_name) or "audio"
        if self.raw:
            return name if name.lower().endswith(".wav") else f"{name}.wav"
        if os.path.splitext(name)[1]:
            return name
        fmt = self.request.wav_format
        return f"{name}.{fmt}" if fmt not in ("others", "pcm", "raw", "s16le") else name


@dataclass
class _Piece:
    """One piece of a 2pass/online stream, spooled as a WAV file: answered as a file is, its
    timestamps moved by ``offset_ms``."""

    path: Path
    filename: str
    audio_bytes: int
    offset_ms: int
    warning: str | None

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Close:
    """The last thing a connection sends: an optional error frame, then a close."""

    frame: str | None
    code: int
    reason: str


class _Conversation:
    """One client connection: reads frames in order, answers each file in order.

    Reading and answering run side by side, so a client may send its next file (the C++ client
    does) while an earlier one is still being recognised. The server closes first only when
    nothing is pending, or to refuse bad input after every earlier file has been answered.
    """

    def __init__(self, gateway: "Gateway", ws: _Connection):
        self.gw = gateway
        self.ws = ws
        self.upload: _Upload | None = None
        self.hotwords: Hotwords = ()
        self.files_seen = 0
        self.pending = 0
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.answers: set[asyncio.Task] = set()

    def revoked(self) -> None:
        """The connection's token was revoked or expired: an error frame, then a 1008 close (its
        read loop then ends, and its pending answers are dropped)."""
        task = asyncio.create_task(self._close_revoked())
        self.answers.add(task)
        task.add_done_callback(self.answers.discard)

    async def _close_revoked(self) -> None:
        log.info("closing a connection: its token was revoked or has expired")
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(encode(error_frame(None, "unauthorized", "the connection's token was revoked or has "
                                                  "expired; connect again with a valid one")))
        await self.ws.close(CloseCode.POLICY_VIOLATION, "token revoked or expired")

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        try:
            close = await self._read_loop()
            if close is not None:
                self.outbox.put_nowait(close)
                await sender
        except ConnectionClosed:
            pass
        finally:
            if not sender.done():
                sender.cancel()
            for task in list(self.answers):
                task.cancel()
            await asyncio.gather(sender, *self.answers, return_exceptions=True)
            if self.upload is not None:
                self.upload.discard()
                self.upload = None

    async def _read_loop(self) -> _Close | None:
        timeout_s = self.gw.config.idle_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(self.ws.recv(), timeout_s)
            except TimeoutError:
                if self.upload is not None:
                    request = self.upload.request
                    self._drop_upload()
                    return self._refuse(ProtocolError(
                        "idle_timeout",
                        f"{request.wav_name}: no audio for {timeout_s:g} s and no end frame; the file is dropped",
                    ), request)
                if self.pending:
                    continue  # the client is waiting for its results
                if self.files_seen == 0:
                    return self._refuse(ProtocolError(
                        "no_config", f"no config frame within {timeout_s:g} s of connecting"), None)
                return _Close(None, CloseCode.NORMAL_CLOSURE, "idle")
            except ConnectionClosed:
                return None
            try:
                try:
                    self._on_message(message)
                except OSError as exc:  # the spool disk is full or gone
                    log.error("could not store audio: %s", exc)
                    raise ProtocolError("server_error", f"the server could not store the audio: {exc.strerror}") from exc
            except ProtocolError as exc:
                request = self.upload.request if self.upload is not None else None
                self._drop_upload()
                return self._refuse(exc, request)
            except Exception:
                log.exception("handling a client's frame failed")
                request = self.upload.request if self.upload is not None else None
                self._drop_upload()
                return self._refuse(ProtocolError("server_error", INTERNAL_ERROR_MESSAGE), request)

    def _refuse(self, exc: ProtocolError, request: FileRequest | None) -> _Close:
        log.info("refusing a client: %s: %s", exc.code, exc.message)
        if exc.code in _SIZE_CODES:
            code = CloseCode.MESSAGE_TOO_BIG
        elif exc.code == "server_error":
            code = CloseCode.INTERNAL_ERROR
        else:
            code = CloseCode.POLICY_VIOLATION
        return _Close(encode(error_frame(request, exc.code, exc.message)), code, exc.code)

    def _drop_upload(self) -> None:
        if self.upload is not None:
            self.upload.discard()
            self.upload = None

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            if self.upload is None:
                raise ProtocolError(
                    "no_config",
                    "binary audio arrived before the JSON config frame; send "
                    '{"mode": "offline", "wav_name": ..., "wav_format": ..., "is_speaking": true} first',
                )
            for end in self.upload.write(message):
                self._answer_later(self.upload.cut(end), self.upload.request, ack=False, final=False)
            return
        frame = parse_text_frame(message)
        if is_end_frame(frame):
            if self.upload is None:
                if self.files_seen == 0:
                    raise ProtocolError("no_config", "an end frame arrived before any config frame")
                return  # some clients repeat the end frame after their result: nothing to do
            self._end_upload(ack=frame.get("is_end") is True)
            return
        base = self.upload.request if self.upload is not None else FileRequest()
        request = parse_config(frame, base)
        if request.hotwords is not None:
            self.hotwords = request.hotwords  # hotwords last for the connection
        if self.upload is None:
            self.upload = _Upload(self.gw.settings, request)
            self.files_seen += 1
        else:
            self.upload.request = request
        self.ws.too_big_frame = encode(error_frame(
            request, "frame_too_large", f"a frame was over {self.gw.config.max_frame_bytes} bytes"))

    def _end_upload(self, ack: bool) -> None:
        upload, self.upload = self.upload, None
        upload.finish()
        request = upload.request
        if upload.pieces:  # a stream already cut: what came after the last cut is its last piece
            tail = upload.audio_bytes - upload.piece_start
            # Under one frame left (nothing to recognise): the closing frame has no text.
            piece = upload.cut(upload.audio_bytes) if tail >= upload.cutter.frame_bytes else None
            upload.discard()
            self._answer_later(piece, request, ack, final=True)
            return
        self._answer_later(upload, request, ack, final=True)

    def _answer_later(self, upload: _Upload | _Piece | None, request: FileRequest, ack: bool, final: bool) -> None:
        """Answer a file (or a stream's piece) in the order it ended, after every earlier one."""
        request = replace(request, hotwords=self.hotwords)
        task = asyncio.create_task(self._answer(upload, request, ack, final))
        self.answers.add(task)
        task.add_done_callback(self.answers.discard)
        self.pending += 1
        self.outbox.put_nowait(task)

    async def _answer(self, upload: _Upload | _Piece | None, request: FileRequest, ack: bool,
                      final: bool = True) -> list[str]:
        """The frames for one file: its result (and acknowledgement), or one error frame. A piece
        of a stream (``upload`` a :class:`_Piece`) is answered the same way, ``is_final`` only on
        the last one; None: a stream's end with no audio after its last piece."""
        if upload is None:
            frames = [encode(empty_result_frame(request))]
            return frames + ([encode(ack_frame(request))] if ack else [])
        if upload.audio_bytes == 0:
            upload.discard()
            return [encode(error_frame(request, "empty_audio", f"{request.wav_name}: no audio arrived"))]
        # Shielded: once started, the job is created (and the spool file placed) even if the
        # client leaves meanwhile, so no spool file is left behind half-handled; then canceled.
        creating = self.gw.in_thread(self.gw.create_job, upload, request, self.ws.principal)
        try:
            job_id = await asyncio.shield(creating)
        except TingxieError as exc:
            return [encode(error_frame(request, exc.code, exc.message))]
        except asyncio.CancelledError:
            creating.add_done_callback(self.gw.abandon_when_created)
            raise
        try:
            await self.gw.hub.wait_for_end(job_id)
        except asyncio.CancelledError:
            self.gw.abandon(job_id)  # the connection closed before its result: nobody reads it
            raise
        return await self.gw.in_thread(self.gw.answer_frames, job_id, request, ack, upload.warning,
                                       upload.offset_ms, final)

    async def _send_loop(self) -> None:
        while True:
            item = await self.outbox.get()
            if isinstance(item, _Close):
                if item.frame is not None:
                    await self.ws.send(item.frame)
                await self.ws.close(item.code, item.reason)
                return
            try:
                frames = await item
            except Exception:
                log.exception("answering a file failed")
                frames = [encode(error_frame(None, "internal_error", INTERNAL_ERROR_MESSAGE))]
            for frame in frames:
                await self.ws.send(frame)
            self.pending -= 1


class Gateway:
    """The server: one per process. ``start``/``stop`` run inside an event loop."""

    def __init__(self, settings: Settings, config: GatewayConfig):
        self.settings = settings
        self.config = config
        self.server_hotwords: Hotwords = load_hotword_file(config.hotword_file) if config.hotword_file else ()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tingxie-gateway")
        self._server = None
        self.services: Services | None = None
        self.hub: EventHub | None = None  # the process's one event hub: every answer waits on it
        self.revocations: RevocationWatch | None = None

    @property
    def scheme(self) -> str:
        return "wss" if self.config.tls else "ws"

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = self.config.host if self.config.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}"

    def _ssl_context(self):
        if not self.config.tls:
            return None
        if self.config.certfile:
            return server_context(Path(self.config.certfile), Path(self.config.keyfile) if self.config.keyfile else None)
        cert, key = ensure_self_signed(self.settings.data_dir / "gateway")
        return server_context(cert, key)

    async def start(self) -> None:
        self.services = Services.start(self.settings)
        self.hub = EventHub(self.services.db, self.settings.events_url)
        await self.hub.start()
        self.revocations = RevocationWatch(self.services.db)
        await self.revocations.start()
        self._server = await ws_serve(
            self._handle,
            self.config.host,
            self.config.port,
            ssl=self._ssl_context(),
            select_subprotocol=_select_subprotocol,
            create_connection=_Connection,
            process_request=self.admit,
            compression=None,  # audio does not deflate; spare the CPU
            max_size=self.config.max_frame_bytes,
            max_queue=4,
            ping_interval=20,
            ping_timeout=60,
            backlog=1024,
            server_header="tingxie",  # no software name or version, as the web tier
            logger=log,
        )
        log.info("FunASR gateway on %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.hub is not None:
            await self.hub.close()
        if self.revocations is not None:
            await self.revocations.close()
        self._executor.shutdown(wait=True)
        if self.services is not None:
            self.services.close()

    def stats(self) -> dict:
        """Open connections, asyncio tasks and watched jobs: what a leak would make grow."""
        return {
            "connections": len(self._server.connections) if self._server is not None else 0,
            "tasks": len(asyncio.all_tasks()),
            "watched_jobs": self.hub.watched_jobs if self.hub is not None else 0,
        }

    async def _handle(self, ws: _Connection) -> None:
        if ws.refusal is not None:
            with contextlib.suppress(ConnectionClosed):
                # In ``text`` too: it is what FunASR's html5 page shows.
                await ws.send(encode(dict(error_frame(None, "origin_not_allowed", ws.refusal), text=ws.refusal)))
            await ws.close(CloseCode.POLICY_VIOLATION, "origin_not_allowed")
            return
        conversation = _Conversation(self, ws)
        unwatch = self.revocations.watch(ws.principal, conversation.revoked)
        try:
            await conversation.run()
        finally:
            unwatch()

    async def admit(self, connection: _Connection, request):
        """The opening handshake: refuse a browser page from another origin (403) and a missing
        (where required) or bad token (401) before the socket is accepted; else remember who it is.
        A page from disk (``Origin: null``) not allowed is accepted, told why and closed (:meth:`_handle`)."""
        headers = request.headers
        malformed = _malformed(headers)
        if malformed:
            log.info("refused a malformed handshake: %s", malformed)
            return _refusal(connection, HTTPStatus.BAD_REQUEST, "bad_request", malformed)
        origin = headers.get("Origin")
        own = access.gateway_origins(self.settings, headers.get("Host", ""))
        if origin is not None and access.normalise_origin(origin) == "null":
            if not self.settings.gateway_allow_file_pages:
                log.info("refused a page opened from a file (Origin: null)")
                # Accepted, then closed with the reason: the page sees the socket's frames, never a 403.
                connection.refusal = FILE_PAGE_REFUSAL
                return None
        elif not access.origin_allowed(origin, own, self.settings):
            log.info("refused a connection from the page at %s (not an allowed origin)", origin)
            return _refusal(connection, HTTPStatus.FORBIDDEN, "origin_not_allowed",
                            f"pages at {origin} may not connect (TINGXIE_ALLOWED_ORIGINS lists the ones that may)")
        query = parse_qs(urlsplit(request.path).query)
        try:
            connection.principal = await self.in_thread(
                lambda: access.gateway_principal(
                    self.services.db, self.settings, authorization=headers.get("Authorization"),
                    query_token=query["token"][0] if "token" in query else None,
                    require_token=self.config.require_token, tenant=self.config.tenant))
        except UnauthorizedError as exc:
            log.info("refused a connection: %s", exc.message)
            response = _refusal(connection, HTTPStatus.UNAUTHORIZED, exc.code, exc.message)
            response.headers["WWW-Authenticate"] = 'Bearer realm="tingxie"'
            return response
        return None

    def in_thread(self, fn, *args):
        """Database and broker calls are blocking: they run on a small pool, off the event loop."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def create_job(self, upload: _Upload, request: FileRequest, principal: Principal) -> str:
        """One file becomes a job of the connection's tenant through the one submission path. The
        gateway's own hotword file (FunASR's ``--hotword``) is merged under the connection's words,
        as FunASR's server does. ``"channels": "separate"`` is the job's ``channels`` option, as REST's."""
        options = JobOptions(
            itn=request.itn,
            hotwords=merge(self.server_hotwords, request.hotwords or ()),
            source=Source.GATEWAY,
            priority=self.config.priority,
            **speaker_fields(request.diarize or None, request.num_speakers),
            **({"channels": "separate", "channel_names": request.channel_names} if request.separate_channels else {}),
        )
        if principal.token_id is not None:  # revoked since the handshake, before the periodic check saw it
            with session_scope(self.services.db) as session:
                if tokens.invalid(session, {principal.token_id}):
                    upload.discard()
                    raise UnauthorizedError("the connection's token was revoked or has expired; connect again "
                                            "with a valid one")
        submitted = submit_job(self.services, Upload(upload.path, upload.filename), options,
                               tenant=principal.tenant)
        return submitted.id

    def abandon(self, job_id: str) -> None:
        """Cancel a job whose connection closed before its result (queued: it never runs; running:
        its worker stops at its next heartbeat), off the event loop; the pool finishes it on stop."""
        self._executor.submit(self._cancel_job, job_id)

    def abandon_when_created(self, creating: asyncio.Future) -> None:
        """The client left while its job was being created: cancel the job once it exists."""
        if not creating.cancelled() and creating.exception() is None:
            self.abandon(creating.result())

    def _cancel_job(self, job_id: str) -> None:
        try:
            with session_scope(self.services.db) as session:
                job = session.get(Job, job_id)
                canceled = job is not None and jobs.cancel(session, job_id)
                tenant = job.tenant if job is not None else None
            if canceled:
                log.info("canceled job %s: its client left before the result", job_id)
                dispatch.pump(self.services, [tenant])  # its slot is free for the tenant's next job
        except Exception:
            log.exception("canceling job %s, whose client left, failed", job_id)

    def answer_frames(self, job_id: str, request: FileRequest, ack: bool, warning: str | None = None,
                      offset_ms: int = 0, final: bool = True) -> list[str]:
        """A finished job's frames. A stream's piece (``offset_ms``: where it starts in the stream)
        gets ``is_final`` only when ``final``; an earlier piece that failed gets an error frame
        without ``is_end``, so the client reads on."""
        with session_scope(self.services.db) as session:
            job = session.get(Job, job_id)
            transcript = session.get(Transcript, job_id)
            status = job.status if job is not None else "gone"
            if status == jobs.DONE and transcript is not None:
                frame = result_frame(request, transcript.read(), job_id, warning, offset_ms=offset_ms)
                frame.update(text=joined_text(frame["text"], offset_ms > 0), is_final=final)
                frames = [encode(frame)]
                if ack:
                    frames.append(encode(ack_frame(request)))
                return frames
            if status == jobs.FAILED:
                frame = error_frame(request, job.error_code or "failed", job.error_message or "the job failed", job_id)
            else:
                frame = error_frame(request, status, f"job {job_id} was {status} before it finished", job_id)
        if not final:
            frame["is_end"] = False
        return [encode(frame)]


FILE_PAGE_REFUSAL = (
    "tingxie refused this page: it was opened from a file (Origin: null), which this gateway does not "
    "allow. Serve the page over http(s) from an origin listed in TINGXIE_ALLOWED_ORIGINS, or set "
    "TINGXIE_GATEWAY_ALLOW_FILE_PAGES=1 on the gateway (any local file or sandboxed page may then use it)"
)

# Headers a handshake may carry once at most: two of any of them cannot be read one way.
_SINGLE_HEADERS = ("Host", "Origin", "Authorization", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version")


def _malformed(headers) -> str | None:
    """Why a handshake cannot be read (answered 400), or None."""
    for name in _SINGLE_HEADERS:
        count = len(headers.get_all(name))
        if count > 1:
            return f"the handshake has {count} {name} headers; send one"
    if not headers.get_all("Host"):
        return "the handshake has no Host header"
    return None


def _refusal(connection: _Connection, status: HTTPStatus, code: str, message: str):
    """A handshake refused with the API's JSON error shape."""
    response = connection.respond(status, json.dumps({"error": {"code": code, "message": message}}) + "\n")
    response.headers["Content-Type"] = "application/json"
    return response


def serve(settings: Settings, config: GatewayConfig | None = None) -> None:
    """Run the gateway in this process until SIGINT or SIGTERM."""
    config = config or GatewayConfig.from_settings(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        gateway = Gateway(settings, config)
        await gateway.start()
        try:
            await stop.wait()
        finally:
            await gateway.stop()

    asyncio.run(main())
