"""One error base for everything a door can refuse, and the one table that maps codes to HTTP statuses.

An error's ``code`` is stable (clients branch on it; a failed job stores it) and its ``message``
is for a person: it says what to change. Pipeline and media errors carry codes too; their
statuses are in the same table, so an OpenAI-style synchronous answer maps a failed job's code
the same way an upload refusal is mapped.
"""
from __future__ import annotations

from http import HTTPStatus

# code -> HTTP status. A code missing here is a bug in whoever raised it: tests check that every
# code raised by core, web and the gateway is listed.
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
    "rate_limited": 429,
    "too_many_jobs": 429,
    "quota_exceeded": 429,
    "headers_too_large": 431,
    # The server side
    "internal_error": 500,
    "worker_lost": 500,
    "model_missing": 503,
    "engine_missing": 503,
    "bad_profile_options": 503,
    "ffmpeg_missing": 503,
    "unavailable": 503,
    "shutting_down": 503,
    "store_unavailable": 503,
    "still_running": 504,
    "timeout": 504,
    "insufficient_storage": 507,
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
    """What a door refuses: a stable ``code`` and a ``message`` saying what to change."""

    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def status(self) -> int:
        return http_status(self.code)

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class BadOptionError(TingxieError, ValueError):
    """A job option (or a query parameter) that is not one of the values allowed."""

    code = "bad_option"


class NotFoundError(TingxieError):
    code = "not_found"


class UnauthorizedError(TingxieError):
    """No credentials where they are needed, or credentials that are not (or no longer) valid."""

    code = "unauthorized"


class ForbiddenError(TingxieError):
    """Valid credentials, a request they may not make (a cross-site request, an admin command)."""

    code = "forbidden"
