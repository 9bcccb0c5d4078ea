"""The interactive API docs page, served by tingxie itself: Swagger UI from the ``swagger-ui-py``
package's files (Apache-2.0), no CDN, so the page works on a machine with no internet.

``GET /api/v1/docs`` renders ``/api/v1/openapi.json``, the document APIFlask generates from the
schemas that validate requests.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, abort, render_template, send_from_directory, url_for

bp = Blueprint("docs", __name__, template_folder="templates")

# Where APIFlask serves the OpenAPI document (web.create_app) and the page reads it.
SPEC_PATH = "/api/v1/openapi.json"

# The only Swagger UI files the page loads.
_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})


@lru_cache(maxsize=1)
def swagger_ui_dir() -> Path:
    """Where the installed swagger-ui-py package keeps Swagger UI's files (the package is not imported)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the docs page needs the swagger-ui-py package: pip install swagger-ui-py")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@bp.get("/api/v1/docs")
def page():
    return render_template("docs.html", spec_url=SPEC_PATH, asset=lambda name: url_for("docs.asset", name=name),
                           init_js=url_for("pages.static", filename="docs.js"))


@bp.get("/api/v1/docs/assets/<name>")
def asset(name: str):
    if name not in _ASSETS:
        abort(404)
    return send_from_directory(swagger_ui_dir(), name, max_age=86400)
