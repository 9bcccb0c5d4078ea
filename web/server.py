"""The web tier's server: one ASGI application on uvicorn (``tingxie web``, ``tingxie up``).

HTTP requests go to the Flask app through a2wsgi's WSGI adapter, which runs them in a pool of
``TINGXIE_WEB_THREADS`` threads per process. A request is given a thread only once its body is
whole: bodies are read on the event loop first (:mod:`web.bodies`: a cap by route, a minimum rate,
a deadline; an upload's files straight into spool files), so a slow client holds a connection,
never a thread. Job-events WebSockets are served on the event loop (:mod:`web.live`), so open
sockets cost memory, not threads. Requests whose head is over the limits, or that are not HTTP,
are answered in the API's JSON error shape, never as plain text.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import json
import logging
import re
import sys
from functools import lru_cache, partial

import h11
import uvicorn
from a2wsgi import WSGIMiddleware
from flask import g
from uvicorn.protocols.http.h11_impl import H11Protocol
from werkzeug.exceptions import HTTPException

from core import storage, workers
from core.db import session_scope
from core.errors import http_status, reason
from core.hub import EventHub
from core.metrics import use_multiprocess_dir
from core.revocation import RevocationWatch
from core.settings import PROFILES, Settings
from web import create_app, waits
from web.auth import PUBLIC, identify
from web.batches import MAX_BODY_BYTES
from web.errors import openai_type
from web.limits import UPLOADS
from web.live import handshake_environ, serve_watcher
from web.bodies import STOPPING, Body, BodyRefused, ClientGone, Limits, multipart_boundary, read_body
from web.uploads import FORM

log = logging.getLogger("tingxie.web")

# The request target, one header line, and the number of header lines (gunicorn's limits, which
# the previous server enforced): over them, 414 or 431 in the API's shape.
MAX_TARGET_BYTES = 8190
MAX_HEADER_BYTES = 8190
MAX_HEADERS = 100
# What uvicorn's HTTP parser buffers for one request head before it gives up (431).
MAX_HEAD_BYTES = 128 * 1024
# How long a refused connection's remaining input is read and dropped before it is closed.
LINGER_S = 2.0
EVENTS_PATH = re.compile(r"/api/v1/jobs/([^/]+)/events")
# Where a request's body, read on the loop, waits in its ASGI scope for the Flask request.
BODY = "tingxie.body"


def json_error_body(code: str, message: str, path: str = "", status: int | None = None) -> bytes:
    """The API's error shape; OpenAI's on the OpenAI-compatible routes (web.errors)."""
    if path == "/v1" or path.startswith("/v1/"):
        status = status or http_status(code)
        return json.dumps({"error": {"message": message, "type": openai_type(status), "param": None,
                                     "code": code}}).encode()
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def head_refusal(scope: dict) -> tuple[int, str, str] | None:
    """(status, code, message) for a request whose head is over the limits, else None."""
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
    if target > MAX_TARGET_BYTES:
        return 414, "uri_too_long", f"the request's URL is {target} bytes; at most {MAX_TARGET_BYTES} are read"
    headers = scope.get("headers", ())
    if len(headers) > MAX_HEADERS:
        return 431, "headers_too_large", f"the request has {len(headers)} header lines; at most {MAX_HEADERS} are read"
    for name, value in headers:
        if len(name) + len(value) + 2 > MAX_HEADER_BYTES:
            return 431, "headers_too_large", f"a header line is over {MAX_HEADER_BYTES} bytes"
    return None


async def _json_error(send, status: int, code: str, message: str, *, path: str = "", receive=None,
                      headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """Answer and close. With ``receive``, what the client is still sending is read and dropped
    for up to :data:`LINGER_S` before the close, so the close does not reset the connection before
    the client has read the answer."""
    if (path == "/v1" or path.startswith("/v1/")) and status in (415, 422):
        status = 400  # OpenAI's status for a body it cannot read (web.errors.error_response)
    body = json_error_body(code, message, path, status)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body, "more_body": receive is not None})
    if receive is None:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_S):
            while (message := await receive())["type"] == "http.request" and message.get("more_body"):
                pass
    await send({"type": "http.response.body", "body": b""})


class Tier:
    """The ASGI application: the job-events sockets natively, every HTTP request to Flask once its
    body is whole. The process's one event hub (``hub``) and one revocation watch serve every
    socket and every waiting call."""

    def __init__(self, flask_app, threads: int):
        services = flask_app.extensions["tingxie"]
        self.flask = flask_app
        self.settings = services.settings
        self.wsgi = WSGIMiddleware(self._flask_with_body, workers=threads)
        self.hub = EventHub(services.db, services.settings.events_url)
        self.revocations = RevocationWatch(services.db)

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        refusal = head_refusal(scope)
        if kind == "http":
            if refusal is not None:
                await _json_error(send, *refusal, path=scope["path"])
            else:
                await self._http(scope, receive, send)
            return
        if kind == "websocket":
            match = EVENTS_PATH.fullmatch(scope["path"])
            if match is None or refusal is not None:
                await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
                return
            await serve_watcher(self.flask, self.hub, self.revocations, match.group(1), scope, receive, send)

    async def _http(self, scope, receive, send) -> None:
        try:
            body = await self._read_body(scope, receive)
        except ClientGone:
            return
        except BodyRefused as refused:
            log.info("%s %s refused before its body was whole: %s", scope["method"], scope["path"], refused.message)
            await _json_error(send, refused.status, refused.code, refused.message, path=scope["path"],
                              receive=receive if refused.linger else None, headers=refused.headers)
            return
        scope[BODY] = body
        try:
            # Each request reaches Flask in a context of its own, never one inherited from the
            # connection's previous request (Flask would take up an app context it finds, with its
            # g and the caller's principal, as this request's). A view may defer its answer until
            # a job ends (web.waits): the wait is on the loop, not in a thread.
            await asyncio.get_running_loop().create_task(
                waits.serve_http(self.wsgi, self.flask, self.hub, self.wsgi.executor, scope, receive, send),
                context=contextvars.Context())
        finally:
            body.discard()  # spool files the request did not place in the media store

    async def _read_body(self, scope, receive) -> Body:
        """The request's body, read on the loop under its route's cap: an upload's multipart body
        (only from a caller whose credentials are good: nobody else fills the scratch disk) into
        spool files, any other in memory."""
        settings = self.settings
        limits = partial(Limits, min_rate_bytes_s=settings.body_min_rate_bytes_s,
                         grace_s=settings.request_idle_timeout_s, timeout_s=settings.body_timeout_s)
        endpoint = self._endpoint(scope)
        if endpoint in UPLOADS and multipart_boundary(scope) is not None:  # any other body: as JSON
            if not await self._may_upload(scope):
                return Body(length=0)  # Flask's guard answers (401); the body is never read
            return await read_body(scope, receive, limits(settings.max_upload_bytes, "TINGXIE_MAX_UPLOAD_MB"),
                                   open_spool=partial(storage.open_spool_file, settings),
                                   max_form_memory_bytes=self.flask.config["MAX_FORM_MEMORY_SIZE"],
                                   max_parts=self.flask.config["MAX_FORM_PARTS"])
        if endpoint is None or endpoint in PUBLIC:
            return await read_body(scope, receive, limits(settings.public_body_bytes, "TINGXIE_PUBLIC_BODY_KB"))
        if endpoint == "batches.create_batch":  # up to 10,000 links: a bigger body, from good credentials only
            if not await self._may_upload(scope):
                return Body(length=0)
            return await read_body(scope, receive, limits(max(MAX_BODY_BYTES, settings.max_body_bytes),
                                                          "a batch's 10,000 sources, or TINGXIE_MAX_BODY_KB"))
        return await read_body(scope, receive, limits(settings.max_body_bytes, "TINGXIE_MAX_BODY_KB"))

    def _endpoint(self, scope) -> str | None:
        """The Flask endpoint the request is for; None for no route (404, 405: a small body)."""
        try:
            return self.flask.url_map.bind("tingxie").match(scope["path"], method=scope["method"])[0]
        except HTTPException:
            return None

    async def _may_upload(self, scope) -> bool:
        """Whether the caller's credentials are good (the guard's own check, in a thread for a
        moment: a database lookup, not a wait on the client)."""
        def check() -> bool:
            environ = handshake_environ(scope, self.settings.trusted_proxies)
            with self.flask.request_context(environ):
                return identify() is not None and g.tingxie_auth_error is None

        try:
            return await asyncio.to_thread(contextvars.Context().run, check)
        except Exception:  # the database is down...: Flask answers the request as it can
            log.warning("could not check an upload's credentials before its body", exc_info=True)
            return True

    def _flask_with_body(self, environ, start_response):
        """The Flask app, given the body already read on the loop: in memory, or an upload's form
        parsed into spool files (web.uploads.UploadRequest takes it), with its length (a chunked
        body's too)."""
        body: Body | None = environ["asgi.scope"].get(BODY)
        if body is not None:
            environ["wsgi.input"] = io.BytesIO(body.data)
            environ["CONTENT_LENGTH"] = str(body.length if body.form is not None else len(body.data))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            if body.form is not None:
                environ[FORM] = body.form
        return self.flask(environ, start_response)

    async def _fail_unserved(self) -> None:
        """Fail the queued jobs no worker will take (core.workers.fail_unserved): the web tier does
        it too, since with no worker at all there is no worker's sweeper to do it."""
        within_s = self.settings.no_worker_s
        factory = self.flask.extensions["tingxie"].db
        while True:
            await asyncio.sleep(min(30.0, max(0.25, within_s / 4)))
            try:
                failed = await asyncio.to_thread(
                    lambda: _in_session(factory, workers.fail_unserved, within_s, PROFILES))
            except Exception:  # the database may blip: the next round tries again
                log.warning("could not fail the jobs no worker serves; trying again", exc_info=True)
                continue
            for job_id in failed:
                log.info("job %s failed: no worker served its profile for %g s", job_id, within_s)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.hub.start()
                await self.revocations.start()
                unserved = asyncio.create_task(self._fail_unserved(), name="tingxie-no-worker")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                unserved.cancel()
                await asyncio.gather(unserved, return_exceptions=True)
                await self.hub.close()
                await self.revocations.close()
                self.flask.extensions["tingxie"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _in_session(factory, function, *args):
    with session_scope(factory) as session:
        return function(session, *args)


def create_asgi_app(settings: Settings | None = None) -> Tier:
    """uvicorn's factory (one call per process): settings from the environment."""
    settings = settings or Settings.from_env()
    return Tier(create_app(settings), settings.web_threads)


@lru_cache(maxsize=1)
def _idle_timeout_s() -> float:
    """TINGXIE_REQUEST_IDLE_TIMEOUT_S, read once per server process (uvicorn makes the protocol)."""
    return Settings.from_env().request_idle_timeout_s


class JsonErrorsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering a request it cannot parse (malformed, or a head over
    :data:`MAX_HEAD_BYTES`) in the API's JSON error shape instead of plain text. It then reads and
    drops what the client is still sending for a moment before closing (a lingering close): closing
    with unread data would reset the connection, and the client would lose the answer.

    It also drops a client that stops sending: a connection that sends nothing, a request head
    that does not end, or a body that stops coming for ``TINGXIE_REQUEST_IDLE_TIMEOUT_S`` (a body
    is answered 408 first). Slow or stalled clients cannot hold the server's connections and
    threads; an application that is slow to read is not the client's idleness and is waited for.
    A connection upgraded to a WebSocket has no idle timeout: it is pinged instead (uvicorn's
    keepalive, ``TINGXIE_WS_PING_S``), and lives as long as the job it watches.

    At a graceful shutdown, a request whose body is still arriving is told so
    (:data:`web.bodies.STOPPING`): it is answered 503 with ``Retry-After`` and its spool removed."""

    _draining = False
    _upgraded = False
    _idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._draining:
            super().data_received(data)
            self._arm_idle()

    def _awaiting_client(self) -> bool:
        """A body is still coming, a request head has begun, or a new connection has sent nothing."""
        if self.conn.their_state is h11.SEND_BODY:
            return True
        return self.conn.their_state is h11.IDLE and (bool(self.conn.trailing_data[0]) or self.cycle is None)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        super().handle_websocket_upgrade(event)

    def shutdown(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and self.conn.their_state is h11.SEND_BODY:
            cycle.scope[STOPPING] = True
            cycle.message_event.set()  # the body's reader wakes, sees it and answers 503
        super().shutdown()

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self._upgraded:  # the socket is no longer this protocol's
            self._idle = None
            return
        self._idle = self.loop.call_later(_idle_timeout_s(), self._idle_expired) if self._awaiting_client() else None

    def _idle_expired(self) -> None:
        self._idle = None
        if self.transport.is_closing() or not self._awaiting_client():
            return
        if self.flow.read_paused:  # the application has not read what came: it is slow, not the client
            self._arm_idle()
            return
        log.info("dropped a request from %s: nothing received for %g s", (self.client or ("?",))[0], _idle_timeout_s())
        if self.conn.their_state is h11.SEND_BODY and self.conn.our_state is h11.SEND_RESPONSE:
            if self.cycle is not None:  # the application's read ends; whatever it answers is not sent
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self._answer(408, "request_timeout", f"the request's body stopped arriving for {_idle_timeout_s():g} s")
        else:
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        error = sys.exc_info()[1]  # called from the parser's except block: h11's error and its hint
        status = getattr(error, "error_status_hint", 400)
        if status == 431:
            code, message = "headers_too_large", f"the request's head is over {MAX_HEAD_BYTES // 1024} KiB"
        else:
            status, code, message = 400, "bad_request", f"the request is not valid HTTP/1.1 ({error or msg})"
        self._answer(status, code, message)

    def _answer(self, status: int, code: str, message: str) -> None:
        body = json_error_body(code, message)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=status, headers=headers, reason=reason(status)),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self._draining = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)


def serve(settings: Settings, *, workers: int = 1) -> None:
    """Run the web tier: ``workers`` processes (uvicorn's supervisor restarts one that dies), each
    with the event loop for sockets and ``settings.web_threads`` threads for HTTP requests."""
    # Every process's request counts in /metrics, whichever process answers the scrape.
    use_multiprocess_dir(settings.scratch_dir / "metrics" / "web")
    print(f"tingxie web on http://{settings.host}:{settings.port} ({workers} process"
          f"{'es' if workers > 1 else ''} x {settings.web_threads} threads)", flush=True)
    uvicorn.run(
        "web.server:create_asgi_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        http=JsonErrorsH11Protocol,
        ws="websockets-sansio",
        # A client gone without closing is noticed within TINGXIE_WS_PING_S (a ping every half of
        # it, unanswered for the other half).
        ws_ping_interval=settings.ws_ping_s / 2,
        ws_ping_timeout=settings.ws_ping_s / 2,
        lifespan="on",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        server_header=False,  # web.headers names the server without a version
        proxy_headers=False,  # X-Forwarded-* are trusted only from TINGXIE_TRUSTED_PROXIES (web.headers.behind_proxies)
        backlog=4096,
        timeout_graceful_shutdown=10,
        # A web process whose start (imports, the Flask app) holds the GIL on a busy host is not
        # hung: uvicorn's 5 s default had the supervisor kill and restart it over and over.
        timeout_worker_healthcheck=60,
        log_config=LOG_CONFIG,
    )


# Every process logs as the other tingxie commands do (uvicorn's spawned workers configure
# logging from this, not from the parent).
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {"uvicorn": {"level": "INFO"}, "uvicorn.access": {"level": "INFO"}},
}
