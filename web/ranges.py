"""A stored file as an HTTP response with Range support (RFC 9110 §14), read from the media store
in chunks, so players can seek in an hour-long recording whether the store is a directory or a
bucket on another host. One path for both stores: the web tier needs no shared disk."""
from __future__ import annotations

from flask import Request, Response
from werkzeug.http import http_date, parse_date, quote_etag, unquote_etag

from core.storage import MediaStore


def _if_range_allows(request: Request, etag: str, modified) -> bool:
    """A Range under If-Range applies only while the file is the one the client has part of."""
    value = request.headers.get("If-Range")
    if not value:
        return True
    if value.startswith(('"', 'W/"')):
        tag, weak = unquote_etag(value)
        return not weak and tag == etag
    date = parse_date(value)
    return date is not None and modified.replace(microsecond=0) <= date


def stored_file_response(request: Request, store: MediaStore, key: str, *, mimetype: str) -> Response:
    """200 with the whole file, 206 with one byte range, 304 when the client's copy is current,
    416 for a range outside the file; several ranges at once get the whole file (as RFC 9110 allows).
    HEAD reads nothing from the store."""
    stat = store.stat(key)
    size = stat.size_bytes
    headers = {"Accept-Ranges": "bytes", "ETag": quote_etag(stat.etag), "Last-Modified": http_date(stat.modified)}
    if stat.etag in request.if_none_match or (
            not request.if_none_match and request.if_modified_since is not None
            and stat.modified.replace(microsecond=0) <= request.if_modified_since):
        return Response(status=304, headers=headers)
    status, start, stop = 200, 0, size
    byte_range = request.range if _if_range_allows(request, stat.etag, stat.modified) else None
    if byte_range is not None and len(byte_range.ranges) == 1:
        bounds = byte_range.range_for_length(size)
        if bounds is None:
            return Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        status, (start, stop) = 206, bounds
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    headers["Content-Length"] = str(stop - start)
    body = () if request.method == "HEAD" else store.read(key, start, stop)
    response = Response(body, status=status, headers=headers, mimetype=mimetype, direct_passthrough=True)
    response.automatically_set_content_length = False
    return response
