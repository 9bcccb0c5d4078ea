"""One look at a media file before anything decodes it: which demuxer, which streams, how long.

PyAV (libavformat) reads the container in a short-lived process of its own, forked for that one
file by the probe's fork server (:mod:`media._probe_zygote`, started once per process that probes,
PyAV loaded once), with the ``file`` protocol and the demuxer allowlist only, no stdin, and limits
on memory, CPU time, file writes and wall-clock time. A hostile file that hangs or crashes the
demuxer costs that process, never the web tier or a worker; a probe costs a fork, not a Python
start and ``import av``.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from media import errors
from media.info import MediaInfo

# Limits on one probe. A normal file takes a fraction of a second and under 200 MiB of address
# space; the margins are for slow disks and busy hosts.
PROBE_TIMEOUT_S = 30.0
PROBE_CPU_S = 20
PROBE_MEMORY_BYTES = 512 << 20

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


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
    info, _ = _run(Path(path), (None, None), timeout_s, cpu_s, memory_bytes)
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
    extra = (str(int(max_duration_ms)), str(int(whole_bytes)) if whole_bytes is not None else None)
    info, past_cap = _run(Path(path), extra, timeout_s, cpu_s, memory_bytes)
    if info.duration_ms is not None and info.duration_ms > max_duration_ms:
        # Declared for the whole file, or estimated for the part there: at least this long either way.
        raise too_long(info.duration_ms, max_duration_ms, at_least=True)
    if past_cap:
        raise too_long(None, max_duration_ms)
    return info


class _ForkServer:
    """This process's :mod:`media._probe_zygote`, started on first use (and again in a forked
    child, or after it died). It is started from a thread that lives as long as it does: the
    kernel's parent-death signal follows the thread that started a process, not the process."""

    def __init__(self):
        self._forget()

    def _forget(self) -> None:
        """In a forked child: another thread of the parent may have held the lock, and the parent's
        server is the parent's (its socket is closed here; the child starts its own)."""
        if getattr(self, "_sock", None) is not None:
            self._sock.close()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        # -P: the working directory is not on the server's import path.
        cmd = [sys.executable, "-P", "-m", "media._probe_zygote", str(os.getpid()), str(theirs.fileno())]
        started: dict = {}
        ready = threading.Event()

        def keep() -> None:
            try:
                started["proc"] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                   pass_fds=(theirs.fileno(),), env=env, start_new_session=True)
            except BaseException as exc:  # told to the caller below
                started["error"] = exc
            finally:
                ready.set()
            if "proc" in started:
                started["proc"].wait()

        threading.Thread(target=keep, name="media-probe-server", daemon=True).start()
        ready.wait()
        theirs.close()
        if "error" in started:
            ours.close()
            raise started["error"]
        if self._sock is not None:
            self._sock.close()  # a server that died
        self._proc, self._sock = started["proc"], ours

    def _server(self, restart: bool) -> socket.socket:
        with self._lock:
            if restart or self._proc is None or self._proc.poll() is not None:
                self._start()
            return self._sock

    def ask(self, args: list, timeout_s: float) -> dict | None:
        """The watcher's report on one read of a file, or None when none came in ``timeout_s``."""
        for attempt in range(2):
            sock = self._server(restart=attempt > 0)
            read_end, write_end = os.pipe()
            try:
                try:
                    socket.send_fds(sock, [json.dumps(args).encode()], [write_end])
                except OSError:  # the server is gone: start another, once
                    if attempt:
                        raise
                    continue
                finally:
                    os.close(write_end)
                answer = _read_all(read_end, timeout_s)
            finally:
                os.close(read_end)
            if answer is None:
                return None
            if answer:
                return json.loads(answer)
            # No answer at all: the server died with the request (it is started again, once).
        raise RuntimeError("the media probe's fork server ended without answering")


def _read_all(fd: int, timeout_s: float) -> bytes | None:
    """Everything written to ``fd`` until every writer has closed it, or None after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    data = bytearray()
    with select.epoll() as poller:
        poller.register(fd, select.EPOLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not poller.poll(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return bytes(data)
            data += chunk


_SERVER = _ForkServer()
os.register_at_fork(after_in_child=_SERVER._forget)
# How long past its own alarm a reader's report may take (a busy host) before the caller gives up.
_REPORT_GRACE_S = 10.0


def _run(path: Path, extra: tuple[str | None, str | None], timeout_s: float, cpu_s: int,
         memory_bytes: int) -> tuple[MediaInfo, bool | None]:
    """The reader's answer: what it found, and (a prefix) whether audio lies past the cap."""
    check_file(path)
    report = _SERVER.ask([str(path.resolve()), memory_bytes, cpu_s, timeout_s, *extra], timeout_s + _REPORT_GRACE_S)
    if report is None or report["returncode"] == -signal.SIGALRM:
        # The reader's alarm ended it; it kills itself whatever the file does, so none is left.
        raise errors.MediaTimeoutError(
            f"Reading the file's header took longer than {timeout_s:g} s and was stopped; "
            "the file may be damaged. Converting it to a common format (e.g. mp3 or flac) usually helps."
        )
    return _result(report["returncode"], report["out"].encode(), report["err"], cpu_s)


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
