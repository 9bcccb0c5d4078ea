"""The probe's fork server: ``python -P -m media._probe_zygote PARENT_PID SOCKET_FD``.

Started once per process that probes (:mod:`media.probe`), it loads PyAV once and then, for each
request on its socket (a JSON list of arguments and the write end of a pipe), forks:

- a *watcher*, in a session of its own, which forks
- the *reader*: resource limits and a wall-clock alarm set first, then libavformat parses the
  untrusted file (:func:`media._probe_child.answer`), its stdout and stderr going to the watcher.

The watcher waits for the reader and writes one line of JSON to the pipe: the reader's exit
status (negative: the signal that ended it, ``SIGALRM`` for its time, ``SIGXCPU`` for its CPU),
its stdout and the end of its stderr. A file that hangs, crashes or eats memory takes down the
reader only; the reader is killed when the watcher dies, the watcher when this server dies, and
this server when the process that started it dies. The socket closing ends this server.

A probe costs a fork instead of a Python start and ``import av`` (about 80 ms of CPU each).
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys

from media._probe_child import _DETAIL_KEEP_CHARS
from media._rlimited import die_with_parent, set_limits

_MAX_OUT_BYTES = 1 << 20


def _reader(args: list, out_w: int, err_w: int) -> None:
    """The forked reader: never returns (``os._exit``)."""
    code = 1
    try:
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        path, memory_bytes, cpu_s, timeout_s, cap_ms, whole_bytes = args
        set_limits(int(memory_bytes), int(cpu_s), 0)  # a probe writes no file
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, float(timeout_s))
        from media._probe_child import answer

        result = answer(path, cap_ms, whole_bytes)
        os.write(1, (json.dumps(result) + "\n").encode())
        code = 0
    finally:
        os._exit(code)


def _watch(args: list, result_fd: int) -> None:
    """The forked watcher: never returns (``os._exit``)."""
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this one waits for its child
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        watcher = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(out_r)
                os.close(err_r)
                os.close(result_fd)
                die_with_parent(watcher)
                _reader(args, out_w, err_w)
            finally:
                os._exit(1)
        os.close(out_w)
        os.close(err_w)
        chunks: dict[int, bytearray] = {out_r: bytearray(), err_r: bytearray()}
        with selectors.DefaultSelector() as selector:
            for fd in chunks:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                for key, _ in selector.select():
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fd)
                        os.close(key.fd)
                    elif key.fd == out_r and len(chunks[out_r]) < _MAX_OUT_BYTES:
                        chunks[out_r] += data
                    elif key.fd == err_r:
                        chunks[err_r] = chunks[err_r][-_DETAIL_KEEP_CHARS:] + data
        _, status = os.waitpid(pid, 0)
        returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        report = {"returncode": returncode, "out": chunks[out_r].decode("utf-8", "replace"),
                  "err": chunks[err_r].decode("utf-8", "replace")[-_DETAIL_KEEP_CHARS:]}
        os.write(result_fd, (json.dumps(report) + "\n").encode())
    finally:
        os._exit(0)


def serve(parent_pid: int, sock: socket.socket) -> None:
    die_with_parent(parent_pid)
    try:  # loaded once here, shared by every reader; without it each reader reports it missing
        import av  # noqa: F401
    except ImportError:
        pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # watchers are reaped by the kernel
    me = os.getpid()
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 65536, 1)
        except InterruptedError:
            continue
        if not message:
            return  # the process that started this one closed its end
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            continue
        if os.fork() == 0:
            try:
                sock.close()
                die_with_parent(me)
                _watch(json.loads(message), fds[0])
            finally:
                os._exit(1)
        os.close(fds[0])


if __name__ == "__main__":
    serve(int(sys.argv[1]), socket.socket(fileno=int(sys.argv[2])))
