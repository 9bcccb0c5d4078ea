"""Where a job's files live: ``media/<job id>/source<ext>`` under the data directory.

Uploads are spooled into ``work/uploads`` (same filesystem) and renamed into place, so a file
is either wholly there or not at all. A spool file is locked (``flock``) by the process writing it,
so that :func:`clean_spool` can tell a file being received from one a dead process left behind.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
import unicodedata
from pathlib import Path

from core.settings import Settings

_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def ensure_dirs(settings: Settings) -> None:
    for path in (settings.data_dir, settings.media_dir, settings.work_dir, upload_spool_dir(settings), settings.cache_dir):
        path.mkdir(parents=True, exist_ok=True)


def upload_spool_dir(settings: Settings) -> Path:
    return settings.work_dir / "uploads"


log = logging.getLogger("tingxie.storage")

SPOOL_SUFFIX = ".part"
# A spool file is locked while its upload is received; one unlocked but written this recently may
# still be on its way into storage (the gateway closes its file before submitting it).
_UNLOCKED_GRACE_S = 60.0


def open_spool_file(settings: Settings):
    """A named temporary file for an incoming upload, locked while it is open; the caller renames
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


def job_dir(settings: Settings, job_id: str) -> Path:
    return settings.media_dir / job_id


def media_path_for(settings: Settings, job_id: str, filename: str) -> Path:
    return job_dir(settings, job_id) / f"source{safe_extension(filename)}"


def place_upload(settings: Settings, spooled: Path, job_id: str, filename: str) -> Path:
    target = media_path_for(settings, job_id, filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(spooled, target)
    return target


def job_work_dir(settings: Settings, job_id: str) -> Path:
    return settings.work_dir / "jobs" / job_id


def job_work_dirs(settings: Settings) -> dict[str, Path]:
    """Every job's scratch folder, by job id."""
    root = settings.work_dir / "jobs"
    return {p.name: p for p in root.iterdir() if p.is_dir()} if root.is_dir() else {}


def delete_job_files(settings: Settings, job_id: str) -> None:
    shutil.rmtree(job_dir(settings, job_id), ignore_errors=True)
    shutil.rmtree(job_work_dir(settings, job_id), ignore_errors=True)
