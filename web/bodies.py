"""Request bodies, read on the event loop before a request is given one of the web tier's threads
(web.server): a client that sends slowly holds a connection, a few kilobytes, never a thread.

A body is read under a size cap chosen by route (:class:`Limits`), a minimum average rate after
its first ``TINGXIE_REQUEST_IDLE_TIMEOUT_S`` and a total deadline; chunked bodies are read the same
way and reach Flask with their length. An upload's multipart body is parsed as it arrives
(werkzeug's sans-IO multipart decoder, the parser Flask itself uses): each file part is written
straight into a spool file on the scratch disk, the one copy the submission path then places in
the media store (core.submit). Every other body is held in memory, under its cap.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import IO, Callable

from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

# Set in a request's ASGI scope by the server's protocol when it begins a graceful shutdown.
STOPPING = "tingxie.stopping"
# Seconds a client is told to wait before sending again an upload a stopping server refused.
RETRY_AFTER_S = 10


class BodyRefused(Exception):
    """A body that is not taken: answered with ``status`` and the API's error shape. ``linger``: the
    client may still be sending it (read and drop it for a moment before closing, so that the close
    does not reset the connection before the client reads the answer)."""

    def __init__(self, status: int, code: str, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers
        self.linger = False


class ClientGone(Exception):
    """The client closed the connection before its body was whole: nobody to answer."""


@dataclass(frozen=True)
class Limits:
    """What one body may be: at most ``max_bytes`` (``setting`` names the cap in a 413), arriving
    at ``min_rate_bytes_s`` on average once ``grace_s`` have passed, and whole within ``timeout_s``."""

    max_bytes: int
    setting: str
    min_rate_bytes_s: int
    grace_s: float
    timeout_s: float


@dataclass
class Body:
    """A body read whole: ``data`` in memory, or (an upload) its ``form`` fields and files, each
    file an open spool file on the scratch disk that :meth:`discard` closes and removes."""

    length: int
    data: bytes = b""
    form: tuple[MultiDict, MultiDict] | None = None
    spooled: list[IO[bytes]] = field(default_factory=list)

    def discard(self) -> None:
        """Remove the spool files the request did not place (a placed one is already gone)."""
        for handle in self.spooled:
            _drop(handle)
        self.spooled.clear()


def _drop(handle: IO[bytes]) -> None:
    handle.close()
    try:
        os.unlink(handle.name)
    except FileNotFoundError:
        pass


def declared_length(scope: dict) -> int | None:
    """The Content-Length the client declared (h11 has checked it is one whole number), or None."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value)
    return None


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB" if size >= 2**20 else f"{size / 1024:g} KiB"


def too_large(size: int | None, limits: Limits) -> BodyRefused:
    said = f"is {_mib(size)}" if size is not None else "is longer"
    return BodyRefused(413, "too_large", f"the request's body {said}; the limit here is {_mib(limits.max_bytes)} "
                                         f"({limits.setting})")


class _Memory:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.spooled: list[IO[bytes]] = []

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)

    def finish(self, length: int) -> Body:
        return Body(length=length, data=b"".join(self.chunks))


class _Multipart:
    """A multipart/form-data body parsed as it arrives: fields in memory (at most
    ``max_form_memory_bytes`` each), files into spool files from ``open_spool``. A body that is not
    valid multipart gives no fields and no files, as Flask's own parser does (the view then says
    which field is missing)."""

    def __init__(self, boundary: bytes, open_spool: Callable[[], IO[bytes]], max_form_memory_bytes: int,
                 max_parts: int):
        self.decoder = MultipartDecoder(boundary, max_form_memory_size=max_form_memory_bytes, max_parts=max_parts)
        self.open_spool = open_spool
        self.max_form_memory_bytes = max_form_memory_bytes
        self.fields: list[tuple[str, str]] = []
        self.files: list[tuple[str, FileStorage]] = []
        self.spooled: list[IO[bytes]] = []
        self.part: Field | File | None = None
        self.field_chunks: list[bytes] = []
        self.malformed = False

    def feed(self, data: bytes | None) -> None:
        if self.malformed:
            return
        try:
            self.decoder.receive_data(data)
            event = self.decoder.next_event()
            while not isinstance(event, (Epilogue, NeedData)):
                self._take(event)
                event = self.decoder.next_event()
        except RequestEntityTooLarge:
            raise BodyRefused(413, "too_large", f"a form field is over {self.max_form_memory_bytes} bytes, or the "
                                                "form has too many parts") from None
        except ValueError:
            self.malformed = True
            for handle in self.spooled:
                _drop(handle)
            self.spooled.clear()
            self.fields.clear()
            self.files.clear()

    def _take(self, event) -> None:
        if isinstance(event, Field):
            self.part, self.field_chunks = event, []
        elif isinstance(event, File):
            self.part = event
            self.spooled.append(self.open_spool())
        elif isinstance(event, Data):
            if isinstance(self.part, Field):
                self.field_chunks.append(event.data)
                if sum(map(len, self.field_chunks)) > self.max_form_memory_bytes:
                    raise RequestEntityTooLarge()
                if not event.more_data:
                    charset = _charset(self.part.headers.get("content-type"))
                    self.fields.append((self.part.name, b"".join(self.field_chunks).decode(charset, "replace")))
            else:
                spool = self.spooled[-1]
                spool.write(event.data)
                if not event.more_data:
                    spool.flush()
                    spool.seek(0)
                    self.files.append((self.part.name, FileStorage(spool, self.part.filename, self.part.name,
                                                                   headers=self.part.headers)))

    def finish(self, length: int) -> Body:
        self.feed(None)
        return Body(length=length, form=(MultiDict(self.fields), MultiDict(self.files)), spooled=self.spooled)


def _charset(content_type: str | None) -> str:
    charset = parse_options_header(content_type or "")[1].get("charset", "").lower()
    return charset if charset in {"ascii", "us-ascii", "utf-8", "iso-8859-1"} else "utf-8"


def multipart_boundary(scope: dict) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            mimetype, options = parse_options_header(value.decode("latin-1"))
            if mimetype == "multipart/form-data" and options.get("boundary"):
                return options["boundary"].encode("latin-1")
    return None


async def read_body(scope: dict, receive, limits: Limits, *, open_spool: Callable[[], IO[bytes]] | None = None,
                    max_form_memory_bytes: int = 500_000, max_parts: int = 1000) -> Body:
    """Read a request's body whole, on the loop. With ``open_spool``, a multipart body's files go
    to spool files as they arrive. Raises :class:`BodyRefused` (over the cap, too slow, the spool
    cannot be written, the server is stopping) or :class:`ClientGone`; nothing is left on disk then."""
    declared = declared_length(scope)
    if declared is not None and declared > limits.max_bytes:
        raise too_large(declared, limits)
    boundary = multipart_boundary(scope) if open_spool is not None else None
    sink = _Multipart(boundary, open_spool, max_form_memory_bytes, max_parts) if boundary else _Memory()
    loop = asyncio.get_running_loop()
    started = loop.time()
    received = 0
    try:
        while True:
            deadline = min(started + limits.timeout_s,
                           started + limits.grace_s + received / limits.min_rate_bytes_s)
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _slow(limits, whole=deadline >= started + limits.timeout_s) from None
            if scope.get(STOPPING):
                raise BodyRefused(503, "shutting_down", "the server is restarting; send the request again",
                                  ((b"retry-after", str(RETRY_AFTER_S).encode()),))
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limits.max_bytes:
                raise too_large(None, limits)
            if chunk:
                sink.feed(chunk)
            if not message.get("more_body", False):
                return sink.finish(received)
    except OSError as exc:  # the spool cannot be written: the scratch disk is full, or failing
        for handle in sink.spooled:
            _drop(handle)
        refused = BodyRefused(507, "insufficient_storage", f"the server has no room to receive this upload now "
                                                           f"({exc.strerror or exc}); send it again later")
        refused.linger = True
        raise refused from None
    except BodyRefused as refused:
        for handle in sink.spooled:
            _drop(handle)
        refused.linger = refused.status != 408  # a client too slow is not waited for
        raise
    except BaseException:
        for handle in sink.spooled:
            _drop(handle)
        raise


def _slow(limits: Limits, *, whole: bool) -> BodyRefused:
    if whole:
        message = f"the request's body was not whole within {limits.timeout_s:g} s (TINGXIE_BODY_TIMEOUT_S)"
    else:
        message = (f"the request's body arrived at under {limits.min_rate_bytes_s / 1024:g} KiB/s "
                   "(TINGXIE_BODY_MIN_RATE_KB_S); send it again")
    return BodyRefused(408, "request_timeout", message)
