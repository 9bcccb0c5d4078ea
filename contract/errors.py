"""The one error base: a stable ``code`` (clients branch on it; a failed job stores it), a
``message`` for a person (it says what to change) and a ``detail`` for logs (a tool's own report).
Media, pipeline, the gateway's protocol and core's doors each extend it; the table of HTTP
statuses by code is here too, so every tier maps a code the same way.
"""
from __future__ import annotations

from http import HTTPStatus

# code -> HTTP status. A code missing here is a bug in whoever raised it: tests check that every
# error class's code is listed.
STATUS_BY_CODE: dict[str, int] = {
    # The request itself
    "bad_request": 400,
    "bad_option": 400,
    "bad_hotwords": 400,
    "bad_callback_url": 400,
    "bad_format": 400,
    "no_file": 400,
    "empty_file": 400,
    "unknown_profile": 400,
    "unsupported_language": 400,
    "bad_speakers": 400,
    "bad_channels": 400,
    "session_conflict": 400,
    "unsupported_task": 400,
    "bad_source_url": 400,
    "bad_output_url": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "csrf_failed": 403,
    "origin_not_allowed": 403,
    "unknown_model": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_timeout": 408,
    "not_ready": 409,
    "not_cancelable": 409,
    "canceled": 409,  # an OpenAI call whose job was canceled while the call waited
    "batch_closed": 409,  # a file sent into a batch that is closed or canceled
    "gone": 410,
    "media_expired": 410,
    "too_large": 413,
    "too_long": 413,
    "uri_too_long": 414,
    "bad_media": 415,
    "unsupported_media_type": 415,
    "no_audio": 422,
    "no_such_channel": 422,
    "truncated_media": 422,
    "media_timeout": 422,
    "fetch_refused": 422,  # a source_url the worker may not fetch (an internal address, a redirect to one)
    "rate_limited": 429,
    "too_many_jobs": 429,
    "quota_exceeded": 429,
    "headers_too_large": 431,
    # The server side
    "internal_error": 500,
    "pipeline_error": 500,
    "worker_lost": 500,
    "fetch_failed": 502,  # the source_url answered with an error, went away, or stalled
    "model_missing": 503,
    "engine_missing": 503,
    "bad_profile_options": 503,
    "ffmpeg_missing": 503,
    "unavailable": 503,
    "shutting_down": 503,
    "store_unavailable": 503,
    "no_worker": 503,
    "still_running": 504,
    "timeout": 504,
    "insufficient_storage": 507,
    "scratch_full": 507,
}


def http_status(code: str) -> int:
    """The status for ``code``; 500 for a code nobody declared (a bug, visible as such)."""
    return STATUS_BY_CODE.get(code, 500)


def reason(status: int) -> str:
    """The standard phrase for a status (``Not Found``)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class TingxieError(Exception):
    """Everything tingxie refuses or fails with: ``code`` (the class's, or one given), ``message``
    for a person, ``detail`` for logs (never shown to a client)."""

    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.detail = detail
        if code is not None:
            self.code = code

    @property
    def status(self) -> int:
        return http_status(self.code)

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}
