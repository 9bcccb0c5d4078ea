"""Guards on what every request carries, before any route reads it.

- A NUL character in the URL (path or query) is refused: PostgreSQL cannot hold one in a text
  value, so a job id or a ``tenant`` filter with ``%00`` failed in the database (500).
- A JSON body is parsed once with a depth limit (core.jsonlimits), through the app's JSON provider,
  so a deeply nested body is a 400 on every route whatever later reads it (APIFlask's parser,
  webargs, parses again with the standard library, which is safe once the depth is known).
"""
from __future__ import annotations

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider

from core import jsonlimits
from core.errors import TingxieError


class DepthLimitedJSON(DefaultJSONProvider):
    """Flask's JSON, refusing bodies nested deeper than core.jsonlimits.MAX_DEPTH."""

    def loads(self, s, **kwargs):
        return jsonlimits.loads(s)


def _no_nul_in_url() -> None:
    if "\x00" in request.path or any("\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)):
        raise TingxieError("the URL contains a NUL character (%00)", code="bad_request")


def _json_depth() -> None:
    # request.get_json raises BadRequest (400) for a body that is not JSON or is too deep, and
    # caches what it parsed.
    if request.is_json and request.get_data(cache=True):
        request.get_json()


def install_url_check(app: Flask) -> None:
    """Before anything else reads the request."""
    app.before_request(_no_nul_in_url)


def install_json_check(app: Flask) -> None:
    """After the rate limit and authentication have had their say, before any route parses the body
    (the app's JSON provider is :class:`DepthLimitedJSON`)."""
    app.before_request(_json_depth)
