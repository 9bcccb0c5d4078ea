"""One look at a media file before anything decodes it: which demuxer, which streams, how long.

PyAV (libavformat) reads the container in a short-lived child process (:mod:`media._probe_child`)
with the ``file`` protocol and the demuxer allowlist only, no stdin, and limits on memory, CPU
time, file writes and wall-clock time. A hostile file that hangs or crashes the demuxer costs one
child, never the web tier or a worker; the child costs a Python start and ``import av`` per call.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from media import errors
from media.info import MediaInfo

# Limits on one probe. A normal file takes a fraction of a second and under 200 MiB of address
# space; the margins are for slow disks and busy hosts.
PROBE_TIMEOUT_S = 30.0
PROBE_CPU_S = 20
PROBE_MEMORY_BYTES = 512 << 20

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
_DETAIL_KEEP_CHARS = 4000


def check_file(path: Path) -> None:
    """Refuse a missing, empty or special file (a named pipe or a device would never end) before
    any child process is started for it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise errors.MediaError("The file does not exist (it may have been deleted); upload it again.") from None
    if not stat.S_ISREG(st.st_mode):
        raise errors.MediaError("This is not a regular file (a pipe, device or folder); upload the media file itself.")
    if st.st_size == 0:
        raise errors.EmptyMediaError("The file is empty (0 bytes); upload it again.")


def kill_group(proc: subprocess.Popen) -> None:
    """Kill a child started with ``start_new_session=True`` and everything it started, then reap it.

    Only while the child is unreaped: its pid (the group's id) cannot have been reused then.
    """
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def probe(
    path: str | os.PathLike,
    *,
    max_duration_ms: int | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    cpu_s: int = PROBE_CPU_S,
    memory_bytes: int = PROBE_MEMORY_BYTES,
) -> MediaInfo:
    """Probe ``path``; raise a :class:`~media.errors.MediaError` for anything that is not a
    self-contained media file with an audio track, cut short, or longer than ``max_duration_ms``.

    ``timeout_s`` bounds the wall-clock time, ``cpu_s`` the child's CPU seconds and
    ``memory_bytes`` its address space (RLIMIT_AS); past any of them the child is killed.
    """
    info, _ = _run(Path(path), (), timeout_s, cpu_s, memory_bytes)
    if max_duration_ms is not None and info.duration_ms is not None and info.duration_ms > max_duration_ms:
        raise too_long(info.duration_ms, max_duration_ms)
    return info


def probe_prefix(
    path: str | os.PathLike,
    *,
    max_duration_ms: int,
    whole_bytes: int | None = None,
    timeout_s: float = PROBE_TIMEOUT_S,
    cpu_s: int = PROBE_CPU_S,
    memory_bytes: int = PROBE_MEMORY_BYTES,
) -> MediaInfo:
    """Probe the first part of a file still arriving (a link being fetched), in the same child
    under the same limits as :func:`probe`, to refuse an over-long file before the rest arrives:
    :class:`~media.errors.MediaTooLongError` when the container declares more than
    ``max_duration_ms`` (an MP3 Xing/Info frame, FLAC STREAMINFO, an MP4 index at the front,
    Matroska's Duration; a WAV header where the whole file, ``whole_bytes`` when the source said
    it, holds what it declares), or when the part there already holds more (an estimate from its
    size and bit rate, an Ogg stream's last page, or a packet found past the cap where the
    container declares nothing). Not checked for truncation (it is cut short, by design); any
    other error may be the cut (an MP4 whose index comes last does not open before it arrives),
    and only the whole file's :func:`probe` can tell."""
    extra = (str(int(max_duration_ms)), str(int(whole_bytes)) if whole_bytes is not None else "-")
    info, past_cap = _run(Path(path), extra, timeout_s, cpu_s, memory_bytes)
    if info.duration_ms is not None and info.duration_ms > max_duration_ms:
        # Declared for the whole file, or estimated for the part there: at least this long either way.
        raise too_long(info.duration_ms, max_duration_ms, at_least=True)
    if past_cap:
        raise too_long(None, max_duration_ms)
    return info


def _run(path: Path, extra: tuple[str, ...], timeout_s: float, cpu_s: int,
         memory_bytes: int) -> tuple[MediaInfo, bool | None]:
    """The child's answer: what it found, and (a prefix) whether audio lies past the cap."""
    check_file(path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    # -P: the working directory is not on the child's import path.
    cmd = [sys.executable, "-P", "-m", "media._probe_child", str(path.resolve()), str(os.getpid()),
           str(memory_bytes), str(cpu_s), *extra]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.communicate()
        raise errors.MediaTimeoutError(
            f"Reading the file's header took longer than {timeout_s:g} s and was stopped; "
            "the file may be damaged. Converting it to a common format (e.g. mp3 or flac) usually helps."
        ) from None
    finally:
        kill_group(proc)
    stderr = err.decode("utf-8", "replace")[-_DETAIL_KEEP_CHARS:]
    return _result(proc.returncode, out, stderr, cpu_s)


def _result(returncode: int, out: bytes, stderr: str, cpu_s: int) -> tuple[MediaInfo, bool | None]:
    if returncode == -signal.SIGXCPU:
        raise errors.MediaTimeoutError(
            f"Reading the file's header used more than {cpu_s} s of CPU and was stopped; the file may be damaged.",
            detail=stderr,
        )
    if returncode < 0:
        raise errors.MediaError(
            "The media reader crashed on this file; it is damaged or not a media file. "
            "Converting it to a common format (e.g. mp3 or flac) usually helps.",
            detail=f"probe child killed by signal {-returncode}\n{stderr}",
        )
    try:
        result = json.loads(out)
    except ValueError:
        # Not something a file can cause: the child could not start (a broken environment).
        raise RuntimeError(f"the media probe failed (exit status {returncode}): {stderr}") from None
    if "error" in result:
        error = result["error"]
        cls = getattr(errors, error["type"], None)
        if not (isinstance(cls, type) and issubclass(cls, errors.MediaError)):
            raise RuntimeError(f"the media probe answered an unknown error {error['type']!r}")
        raise cls(error["message"], detail=error.get("detail") or stderr)
    return MediaInfo.from_dict(result["info"]), result.get("past_cap")


def too_long(duration_ms: int | None, max_duration_ms: int, *, at_least: bool = False) -> errors.MediaTooLongError:
    """``duration_ms``: the file's length when known (None when only decoding found it too long;
    ``at_least`` when it is what a first part of the file holds or declares)."""
    lasts = (f"lasts {'at least ' if at_least else ''}{format_duration(duration_ms)}, " if duration_ms is not None
             else "is ")
    return errors.MediaTooLongError(
        f"The file {lasts}longer than the {format_duration(max_duration_ms)} this service accepts; "
        "split it or ask the operator to raise the limit."
    )


def format_duration(ms: int) -> str:
    """7.9 s, 12m05s, 1h02m03s: tenths where a cap and a length could otherwise read the same."""
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    seconds = ms // 1000
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
