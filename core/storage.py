"""Where a job's upload lives: a media store, addressed by key (``<job id>/source<ext>``).

Two stores behind one seam (:class:`core.media_store.MediaStore`): :class:`LocalStore`, a directory (the embedded
default, ``$DATA_DIR/media``), and :class:`core.s3.S3Store`, S3-compatible object storage that the
web tier and workers on several hosts share instead of a disk (``TINGXIE_STORAGE_URL=s3://…``).
The database keeps keys, never paths. Everything local to one host (upload spooling, the copy a
worker decodes, decoded PCM) lives in the scratch directory (``TINGXIE_SCRATCH_DIR``), never in the
store. A spool file is locked (``flock``) by the process writing it, so that :func:`clean_spool`
can tell a file being received from one a dead process left behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
import unicodedata
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Iterator

from core.media_store import (  # the seam's names, as every caller reads them from here
    CHUNK_BYTES,
    MediaGoneError,
    MediaStore,
    StorageUnavailableError,
    StoredObject,
    check_key,
)
from core.s3 import S3Store
from core.settings import Settings

_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def media_key(job_id: str, filename: str) -> str:
    return f"{job_id}/source{safe_extension(filename)}"


class LocalStore:
    """A directory on this host: ``<root>/<job id>/source<ext>``. Placing an upload is a rename when
    the spool is on the same filesystem (the default), else a copy."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*PurePosixPath(check_key(key)).parts)

    def put(self, path: Path, key: str, *, content_type: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)
        except OSError:  # another filesystem (TINGXIE_SCRATCH_DIR elsewhere): copy, then remove
            shutil.move(str(path), str(target))

    @contextlib.contextmanager
    def local_copy(self, key: str, scratch: Path) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise MediaGoneError("the media file of this job is no longer stored")
        yield path

    def stat(self, key: str) -> StoredObject:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            raise MediaGoneError("the media file of this job is no longer stored") from None
        return StoredObject(st.st_size, f"{st.st_mtime_ns:x}-{st.st_size:x}",
                            datetime.fromtimestamp(st.st_mtime, timezone.utc))

    def read(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        with open(self._path(key), "rb") as fh:
            fh.seek(start)
            left = stop - start
            while left > 0:
                chunk = fh.read(min(CHUNK_BYTES, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    def delete_job(self, job_id: str) -> None:
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def check(self) -> None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailableError(f"the media directory {self.root} is missing or not writable")

    def abort_incomplete(self, older_than_s: float) -> list[str]:
        return []  # a file is placed by one rename or move; a spool file left behind is clean_spool's


def open_store(settings: Settings) -> MediaStore:
    """The store ``settings`` name. Connects to nothing: an object store's client is made on first use."""
    if settings.object_storage:
        return S3Store.from_settings(settings)
    return LocalStore(settings.media_dir)


def ensure_dirs(settings: Settings) -> None:
    paths = [settings.data_dir, settings.scratch_dir, upload_spool_dir(settings), settings.cache_dir]
    if not settings.object_storage:
        paths.append(settings.media_dir)
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)


def upload_spool_dir(settings: Settings) -> Path:
    return settings.scratch_dir / "uploads"


log = logging.getLogger("tingxie.storage")

SPOOL_SUFFIX = ".part"
# A spool file is locked while its upload is received; one unlocked but written this recently may
# still be on its way into storage (the gateway closes its file before submitting it).
_UNLOCKED_GRACE_S = 60.0


def open_spool_file(settings: Settings):
    """A named temporary file for an incoming upload, locked while it is open; the caller stores
    or deletes it."""
    spool = upload_spool_dir(settings)
    spool.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=spool, prefix="upload-", suffix=SPOOL_SUFFIX, delete=False)
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def clean_spool(settings: Settings, max_age_s: float) -> list[Path]:
    """Remove spool files that no process holds (its upload failed or its process died), and any
    not written for ``max_age_s``. Run when the web tier starts and by every worker's sweeper."""
    removed = []
    spool = upload_spool_dir(settings)
    if not spool.is_dir():
        return removed
    now = time.time()
    for path in spool.glob("*" + SPOOL_SUFFIX):
        try:
            age_s = now - path.stat().st_mtime
            if age_s > max_age_s or (age_s > _UNLOCKED_GRACE_S and not _locked(path)):
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    if removed:
        log.info("removed %d upload spool file(s) left behind", len(removed))
    return removed


def _locked(path: Path) -> bool:
    with open(path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


MAX_FILENAME_CHARS = 255


def clean_filename(name: str | None, default: str = "audio") -> str:
    """A display name from what a client called its file: the last path component, control and
    format characters (CR/LF, NUL, bidi overrides) dropped, whitespace collapsed, at most
    :data:`MAX_FILENAME_CHARS` characters. It is shown on the page and put into headers, never
    used as a path."""
    name = re.split(r"[/\\]", name or "")[-1]
    name = "".join(" " if unicodedata.category(ch) in ("Zl", "Zp") or ch in "\t\r\n" else ch for ch in name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    name = " ".join(name.split()).strip(" .")
    if len(name) > MAX_FILENAME_CHARS:
        stem, ext = os.path.splitext(name)
        ext = ext if len(ext) <= 16 else ""
        name = stem[: MAX_FILENAME_CHARS - len(ext)] + ext
    return name or default


def safe_extension(filename: str) -> str:
    ext = os.path.splitext(filename or "")[1].lower()
    return ext if _SAFE_EXT.match(ext) else ".bin"


def job_work_dir(settings: Settings, job_id: str) -> Path:
    """This host's scratch for one job: the media copied from object storage, decoded PCM."""
    return settings.scratch_dir / "jobs" / job_id


def job_work_dirs(settings: Settings) -> dict[str, Path]:
    """Every job's scratch folder, by job id."""
    root = settings.work_dir / "jobs"
    return {p.name: p for p in root.iterdir() if p.is_dir()} if root.is_dir() else {}


def delete_job_files(settings: Settings, store: MediaStore, job_id: str) -> None:
    """The job's objects in the store, and whatever this host still has of it in scratch."""
    store.delete_job(job_id)
    shutil.rmtree(job_work_dir(settings, job_id), ignore_errors=True)
