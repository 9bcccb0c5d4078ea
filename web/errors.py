"""Every error the web tier answers, in one of two shapes, never as HTML.

Native API and pages: ``{"error": {"code", "message"}}``. OpenAI-compatible routes (``/v1/...``):
OpenAI's ``{"error": {"message", "type", "param", "code"}}``, so OpenAI clients read tingxie's
errors as they read OpenAI's. The status of a code comes from the one table in
:mod:`core.errors`.
"""
from __future__ import annotations

import logging

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from flask import jsonify, request
from werkzeug.exceptions import ClientDisconnected, HTTPException, InternalServerError

from core.errors import TingxieError, http_status

log = logging.getLogger("tingxie.web")

# Werkzeug's own errors (routing, body size, bad requests) get the codes of the table.
_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
}
# A validation error on one of these fields has the field's own code.
_FIELD_CODES = {
    "file": "no_file",
    "hotwords": "bad_hotwords",
    "callback_url": "bad_callback_url",
    "source_url": "bad_source_url",
    "output_url": "bad_output_url",
    "output_formats": "bad_output_url",
    "profile": "unknown_profile",
    "format": "bad_format",
    "model": "unknown_model",
}
_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "invalid_request_error",
                 409: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
                 422: "invalid_request_error", 429: "rate_limit_error"}


def openai_type(status: int) -> str:
    """OpenAI's error ``type`` for a status."""
    return _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def _openai_route() -> bool:
    return request.path.startswith("/v1/") or request.path == "/v1"


def error_response(code: str, message: str, status: int | None = None, *, headers=None, param: str | None = None,
                   extra: dict | None = None):
    """The response for an error, in the shape the route's clients expect."""
    status = status or http_status(code)
    if _openai_route():
        # OpenAI answers media it cannot read (not media, no audio, cut short) with 400.
        status = 400 if status in (415, 422) else status
        body = {"error": {"message": message, "type": openai_type(status), "param": param, "code": code, **(extra or {})}}
    else:
        body = {"error": {"code": code, "message": message, **(extra or {})}}
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _validation(error: HTTPError):
    """APIFlask's validation errors: ``{location: {field: [messages]}}`` -> one code and one sentence."""
    problems: list[tuple[str, str]] = []
    for fields in (error.detail or {}).values():
        for field, messages in (fields or {}).items():
            text = "; ".join(messages) if isinstance(messages, list) else str(messages)
            problems.append((field.removesuffix("[]"), text))
    code = next((_FIELD_CODES[f] for f, _ in problems if f in _FIELD_CODES), "bad_option")
    message = "; ".join(f"{field}: {text}" if field != "_schema" else text for field, text in problems)
    param = problems[0][0] if problems else None
    return error_response(code, message or "the request is not valid", http_status(code), param=param)


def install(app: APIFlask) -> None:
    @app.error_processor
    def _apiflask_error(error: HTTPError):
        if error.status_code in (400, 422) and error.detail:
            return _validation(error)
        code = _CODE_BY_STATUS.get(error.status_code, "bad_request")
        return error_response(code, error.message or code, error.status_code, headers=error.headers)

    @app.errorhandler(TingxieError)
    def _tingxie_error(exc: TingxieError):
        return error_response(exc.code, exc.message, exc.status)

    @app.errorhandler(HTTPException)
    def _http_exception(exc: HTTPException):
        if isinstance(exc, InternalServerError):
            return _internal(exc.original_exception or exc)
        if isinstance(exc, ClientDisconnected) and isinstance(exc.__context__, TimeoutError):
            return _stalled(exc.__context__)
        code = _CODE_BY_STATUS.get(exc.code or 500, "bad_request")
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(code, exc.description or exc.name, exc.code, headers=headers)

    @app.errorhandler(TimeoutError)
    def _stalled(exc: TimeoutError):
        """The client stopped sending its body (the server's read timed out)."""
        log.info("%s %s: the request body stopped arriving", request.method, request.path)
        return error_response("request_timeout", "the request stopped arriving before it was complete "
                              "(TINGXIE_REQUEST_IDLE_TIMEOUT_S); send it again", 408, headers={"Connection": "close"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        return _internal(exc)


def _internal(exc: BaseException):
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response("internal_error", "the server failed to answer; its logs have details", 500)

