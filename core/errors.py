"""What a door refuses, on the contract's one error base (:class:`contract.TingxieError`), and the
one table that maps codes to HTTP statuses (:data:`contract.errors.STATUS_BY_CODE`), re-exported.

An error's ``code`` is stable (clients branch on it; a failed job stores it) and its ``message``
is for a person: it says what to change. Pipeline and media errors extend the same base; their
statuses are in the same table, so an OpenAI-style synchronous answer maps a failed job's code
the same way an upload refusal is mapped.
"""
from __future__ import annotations

from contract.errors import STATUS_BY_CODE, TingxieError, http_status, reason

__all__ = ["STATUS_BY_CODE", "BadOptionError", "ForbiddenError", "NotFoundError", "TingxieError", "UnauthorizedError",
           "http_status", "reason"]


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
