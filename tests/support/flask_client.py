"""The Flask test client the tests use (every app's ``test_client()``, set in tests/conftest.py):
Flask's own, less two files it leaves to the garbage collector.

- A multipart body is built by werkzeug in a temporary file (its ``stream_encode_multipart``)
  that becomes the request's ``wsgi.input`` and is never closed; it is closed once the answer
  is in.
- An answer is read whole and its iterable closed (``buffered``), so a file the app sends
  (``send_file``: the page's assets, the API docs) is closed too. No test reads an answer as a
  stream through this client; the streaming answers are tested against a running web tier."""
from __future__ import annotations

from flask.testing import FlaskClient


class ClosingClient(FlaskClient):
    def open(self, *args, buffered: bool = True, **kwargs):
        response = super().open(*args, buffered=buffered, **kwargs)
        for answer in [*response.history, response]:
            body = answer.request.environ.get("wsgi.input")
            if body is not None:
                body.close()
        return response
