"""The web tier's server: one ASGI application on uvicorn (``tingxie web``, ``tingxie up``).

HTTP requests go to the Flask app through a2wsgi's WSGI adapter, which runs them in a pool of
``TINGXIE_WEB_THREADS`` threads per process and streams request and response bodies both ways
(an upload is read from the socket as the app reads it, never buffered whole). Job-events
WebSockets are served on the event loop (:mod:`web.live`), so open sockets cost memory, not
threads. Requests whose head is over the limits, or that are not HTTP, are answered in the API's
JSON error shape, never as plain text.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import sys
from functools import lru_cache

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from core.errors import reason
from core.settings import Settings
from web import waits

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


def json_error_body(code: str, message: str) -> bytes:
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


async def _json_error(send, status: int, code: str, message: str) -> None:
    body = json_error_body(code, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class Tier:
    """The ASGI application: the job-events sockets natively, every HTTP request to Flask."""

    def __init__(self, flask_app, threads: int):
        from a2wsgi import WSGIMiddleware

        from web.live import EventHub

        services = flask_app.extensions["tingxie"]
        self.flask = flask_app
        self.wsgi = WSGIMiddleware(flask_app, workers=threads)
        self.hub = EventHub(services.db, services.settings.events_url)

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        refusal = head_refusal(scope)
        if kind == "http":
            if refusal is not None:
                await _json_error(send, *refusal)
            else:
                # Each request reaches Flask in a context of its own, never one inherited from the
                # connection's previous request: a2wsgi reads a body from the request's thread
                # through the event loop, which re-arms the connection's reader inside that thread's
                # context, Flask's app context (its g, the caller's principal) included, and Flask
                # would take up an app context it finds as this request's.
                # A view may defer its answer until a job ends (web.waits): the wait is on the loop.
                await asyncio.get_running_loop().create_task(
                    waits.serve_http(self.wsgi, self.flask, self.hub, self.wsgi.executor, scope, receive, send),
                    context=contextvars.Context())
            return
        if kind == "websocket":
            match = EVENTS_PATH.fullmatch(scope["path"])
            if match is None or refusal is not None:
                await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
                return
            from web.live import serve_watcher

            await serve_watcher(self.flask, self.hub, match.group(1), scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.hub.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.hub.close()
                self.flask.extensions["tingxie"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_asgi_app(settings: Settings | None = None) -> Tier:
    """uvicorn's factory (one call per process): settings from the environment."""
    from web import create_app

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
    threads; an application that is slow to read is not the client's idleness and is waited for."""

    _draining = False
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

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
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
    import uvicorn

    from core.metrics import use_multiprocess_dir

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
        lifespan="on",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        server_header=False,  # web.headers names the server without a version
        proxy_headers=False,  # X-Forwarded-* are trusted only from TINGXIE_TRUSTED_PROXIES (web.behind_proxies)
        backlog=4096,
        timeout_graceful_shutdown=10,
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
