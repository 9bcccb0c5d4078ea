"""Uploads go straight to disk: multipart file parts are written into this host's scratch spool
as they arrive (never held in memory), then put in the media store by the submission path.

Under the server (web.server) the form was already parsed on the event loop, its files spooled as
they arrived (web.bodies): the request takes that form as it is, so an upload is spooled once.
Without it (Flask's test client, any other WSGI server) Flask parses the body here, in the
request's thread, into the same spool.
"""
from __future__ import annotations

import os

from flask import Request, current_app, g

from core import storage

# The WSGI environ key of a form parsed on the event loop (set by web.server).
FORM = "tingxie.form"


class UploadRequest(Request):
    def _load_form_data(self) -> None:
        parsed = self.environ.get(FORM)
        if parsed is None or "form" in self.__dict__:
            super()._load_form_data()
            return
        self.__dict__["form"], self.__dict__["files"] = parsed

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
