"""The production web server's worker class: gunicorn's threaded worker, with requests that
gunicorn's HTTP parser refuses (request line or headers over its limits, malformed requests)
answered in the API's JSON error shape instead of gunicorn's HTML page, and a connection that
stops sending its request (headers or body) for ``TINGXIE_REQUEST_IDLE_TIMEOUT_S`` dropped, so a
slow or stalled client cannot hold one of the worker's threads for ever."""
from __future__ import annotations

import logging

from gunicorn.http.errors import (
    ConfigurationProblem,
    ExpectationFailed,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import TConn, ThreadWorker

from core.errors import reason
from core.settings import Settings
from web.devserver import json_error_body

_STATUS = ((LimitRequestLine, 414), (LimitRequestHeaders, 431), (ParseException, 400))
# Not the client's malformed request: gunicorn's own answers (500, 501, 417) stand.
_GUNICORNS = (InvalidResponseHeader, InvalidResponseHeaderName, ConfigurationProblem, UnsupportedTransferCoding,
              ExpectationFailed)


class _IdleTimeoutConn(TConn):
    """A connection whose reads time out: gunicorn's thread reads a request's headers and body
    with a blocking socket and no limit; ``idle_timeout_s`` bounds each read (a WebSocket resets
    it: web.create_app)."""

    idle_timeout_s: float = 60.0

    def init(self):
        super().init()
        self.sock.settimeout(self.idle_timeout_s)


class _StalledClients(logging.Filter):
    """A connection dropped for stalling is routine: one line, not gunicorn's socket-error traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], TimeoutError):
            record.msg, record.args, record.exc_info = (
                "dropped a connection that stopped sending its request (TINGXIE_REQUEST_IDLE_TIMEOUT_S)", (), None)
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class JsonErrorsThreadWorker(ThreadWorker):
    def init_process(self):
        _IdleTimeoutConn.idle_timeout_s = Settings.from_env().request_idle_timeout_s
        logging.getLogger("gunicorn.error").addFilter(_StalledClients())
        super().init_process()

    def handle(self, conn):
        if type(conn) is TConn:
            conn.__class__ = _IdleTimeoutConn
        return super().handle(conn)

    def handle_error(self, req, client, addr, exc):
        status = None if isinstance(exc, _GUNICORNS) else next(
            (code for kind, code in _STATUS if isinstance(exc, kind)), None)
        if status is None:  # the application's own failures: gunicorn's handling (500, logged)
            return super().handle_error(req, client, addr, exc)
        self.log.warning("refused a request from %s: %s", (addr or ("",))[0], exc)
        body = json_error_body(status, str(exc))
        head = (f"HTTP/1.1 {status} {reason(status)}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        try:
            write_nonblock(client, head + body)
        except OSError:
            self.log.debug("could not send the error answer")
