"""Uploads go straight to disk: multipart file parts are written into this host's scratch spool
as they arrive (never held in memory), then put in the media store by the submission path."""
from __future__ import annotations

import os

from flask import Request, current_app, g

from core import storage


class UploadRequest(Request):
    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        settings = current_app.extensions["tingxie"].settings
        spooled = storage.open_spool_file(settings)
        g.setdefault("spooled_files", []).append(spooled.name)
        return spooled


def discard_spooled() -> None:
    """Remove spool files a request created and did not place (errors, extra parts)."""
    for path in g.pop("spooled_files", []):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
