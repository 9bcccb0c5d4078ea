"""The media store's seam: what every store offers (:class:`MediaStore`), what it answers with, and
its errors. :mod:`core.storage` (the local directory, the spool) and :mod:`core.s3` (object
storage) both build on it; neither imports the other's internals.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ContextManager, Iterator, Protocol

from core.errors import TingxieError

_KEY = re.compile(r"^[0-9a-f]{32}/source\.[A-Za-z0-9]{1,8}$")
# Bytes per read when streaming a stored file out.
CHUNK_BYTES = 256 * 1024


class MediaGoneError(TingxieError):
    """The job's file is no longer in the store (deleted by hand, a lifecycle rule...)."""

    code = "gone"


class StorageUnavailableError(TingxieError):
    """The store could not be reached or refused the request; the message names the store."""

    code = "unavailable"


@dataclass(frozen=True)
class StoredObject:
    size_bytes: int
    etag: str
    modified: datetime


class MediaStore(Protocol):
    """What the submission path, the worker and ``/media`` need of a store."""

    url: str  # where it is, for messages and the README (never a secret)

    def put(self, path: Path, key: str, *, content_type: str) -> None:
        """Store the local file ``path`` under ``key``, consuming it (moved or uploaded, then removed)."""

    def local_copy(self, key: str, scratch: Path) -> ContextManager[Path]:
        """A local file with the stored bytes for as long as the context lasts: the stored file
        itself for a local store, a download into ``scratch`` (removed after) for object storage."""

    def stat(self, key: str) -> StoredObject:
        """Size, entity tag and modification time; :class:`MediaGoneError` when it is not there."""

    def read(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``stop - 1``, in chunks, without holding the file in memory."""

    def delete_job(self, job_id: str) -> None:
        """Remove every object of the job."""

    def keys(self) -> list[str]:
        """Every key in the store (tests and operators: what is left behind)."""

    def check(self) -> None:
        """Return when the store answers now; :class:`StorageUnavailableError` naming it when not
        (``/readyz``). Quick: one request, no retries."""

    def abort_incomplete(self, older_than_s: float) -> list[str]:
        """Abort the uploads into the store begun over ``older_than_s`` ago and never completed
        (an object store's multipart uploads whose uploader died); their keys."""


def check_key(key: str) -> str:
    """Keys come from our own database; one that is not of our making is refused, never opened."""
    if not _KEY.match(key):
        raise MediaGoneError(f"the job's media key {key!r} is not one tingxie writes")
    return key
