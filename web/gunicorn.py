"""The production web server's worker class: gunicorn's threaded worker, with requests that
gunicorn's HTTP parser refuses (request line or headers over its limits, malformed requests)
answered in the API's JSON error shape instead of gunicorn's HTML page."""
from __future__ import annotations

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
from gunicorn.workers.gthread import ThreadWorker

from core.errors import reason
from web.devserver import json_error_body

_STATUS = ((LimitRequestLine, 414), (LimitRequestHeaders, 431), (ParseException, 400))
# Not the client's malformed request: gunicorn's own answers (500, 501, 417) stand.
_GUNICORNS = (InvalidResponseHeader, InvalidResponseHeaderName, ConfigurationProblem, UnsupportedTransferCoding,
              ExpectationFailed)


class JsonErrorsThreadWorker(ThreadWorker):
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
