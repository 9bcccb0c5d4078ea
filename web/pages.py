"""The browser page: one HTML document plus plain JS/CSS, all served by tingxie itself.

There is no front-end build step and nothing is fetched from a CDN, so the page works on a
machine with no internet. The page talks only to the public REST API (and its WebSocket push).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Blueprint, render_template, request, url_for

STATIC_DIR = Path(__file__).parent / "static"

bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    # Our own URL so the page does not depend on how the app configures its /static.
    static_url_path="/assets",
)


@lru_cache(maxsize=32)
def _asset_version(filename: str, mtime_ns: int) -> str:
    """Short content hash, so browsers re-fetch an asset exactly when it changed."""
    digest = hashlib.sha256((STATIC_DIR / filename).read_bytes()).hexdigest()
    return digest[:10]


def asset_url(filename: str) -> str:
    """URL of a static asset with a cache-busting version; mtime keys the hash cache."""
    mtime_ns = (STATIC_DIR / filename).stat().st_mtime_ns
    return url_for("pages.static", filename=filename, v=_asset_version(filename, mtime_ns))


@bp.get("/")
def index() -> str:
    """The single page: upload, live job list and transcript view."""
    return render_template(
        "index.html",
        asset_url=asset_url,
        api_base=request.script_root + "/api/v1",
    )
