"""The threaded development server `tingxie up` and `tingxie web --dev` use (werkzeug's)."""
from __future__ import annotations

import json

from werkzeug.serving import WSGIRequestHandler, make_server

from core.settings import Settings

# What the HTTP parser refuses before the application sees the request.
_PARSER_CODES = {400: "bad_request", 414: "uri_too_long", 431: "headers_too_large"}


def json_error_body(status: int, message: str) -> bytes:
    """The API's error shape for a request the HTTP server refused before the application saw it."""
    code = _PARSER_CODES.get(status, "bad_request")
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class _Handler(WSGIRequestHandler):
    """Requests the HTTP parser refuses (request line or headers too long) get the API's JSON
    error shape, not http.server's HTML page; a finished WebSocket closes its connection; the
    ``Server`` header names no versions; a connection that sends nothing for ``timeout`` seconds
    (``TINGXIE_REQUEST_IDLE_TIMEOUT_S``: idle keep-alive, stalled headers or body) is dropped."""

    def version_string(self) -> str:
        return "tingxie"

    def connection_dropped(self, error, environ=None) -> None:
        """A finished WebSocket (see _quiet_after_websocket) ends its TCP connection too. Left open, the handler would
        wait on it for a next HTTP request, and a client that waits for the server to close (as
        RFC 6455 asks, e.g. the ``websockets`` package) would hang until its own timeout."""
        self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.log_error("code %d, message %s", code, message)
        body = json_error_body(code, message or explain or self.responses.get(code, ("error",))[0])
        self.send_response(code, message)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _quiet_after_websocket(wsgi_app):
    """flask-sock hands werkzeug an ordinary response once a WebSocket handler returns, and the
    dev server would write ``HTTP/1.1 200`` after the close frame (browsers then report 1006).
    Raising ConnectionError from start_response makes werkzeug treat the socket as done."""

    def app(environ, start_response):
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket" or "werkzeug.socket" not in environ:
            return wsgi_app(environ, start_response)

        def refuse(status, headers, exc_info=None):
            if status.startswith("101") or status.startswith("200"):
                raise ConnectionError("websocket finished")
            return start_response(status, headers, exc_info)

        return wsgi_app(environ, refuse)

    return app


def serve(settings: Settings) -> None:
    from core.access import describe
    from web import create_app

    app = create_app(settings)
    app.wsgi_app = _quiet_after_websocket(app.wsgi_app)
    handler = type("Handler", (_Handler,), {"timeout": settings.request_idle_timeout_s})
    server = make_server(settings.host, settings.port, app, threaded=True, request_handler=handler)
    print(f"tingxie web on http://{settings.host}:{settings.port}: {describe(settings)}", flush=True)
    server.serve_forever()
