"""``python -I -S _rlimited.py PARENT_PID MEMORY_BYTES CPU_S FSIZE_BYTES -- PROGRAM ARGS...``: set the
limits, then become PROGRAM (same pid, same process group).

The limits are in force before PROGRAM's first instruction, without a ``preexec_fn`` (which is not
safe in a parent that runs threads, as workers do). On Linux PROGRAM is also killed when the
process that started it dies (a worker killed with ``kill -9`` leaves no decoder running). Stdlib
only: it runs without site-packages, and the probe's child imports the same two functions.
"""
import ctypes
import os
import resource
import signal
import sys

_PR_SET_PDEATHSIG = 1


def set_limits(memory_bytes: int, cpu_s: int, fsize_bytes: int) -> None:
    """RLIMIT_AS, RLIMIT_CPU and RLIMIT_FSIZE for this process and what it execs; -1 means none."""
    for which, value, hard_extra in ((resource.RLIMIT_AS, memory_bytes, 0),
                                     (resource.RLIMIT_CPU, cpu_s, 1),
                                     (resource.RLIMIT_FSIZE, fsize_bytes, 0)):
        if value >= 0:
            # For CPU the soft limit sends SIGXCPU, the hard one a second later SIGKILL.
            resource.setrlimit(which, (value, value + hard_extra))


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGKILL when the parent dies (Linux; kept across exec). If it died
    before this ran, go now."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def main(argv: list[str]) -> None:
    parent_pid, memory_bytes, cpu_s, fsize_bytes, sep, *program = argv
    if sep != "--" or not program:
        sys.exit("usage: _rlimited.py PARENT_PID MEMORY_BYTES CPU_S FSIZE_BYTES -- PROGRAM ARGS...")
    die_with_parent(int(parent_pid))
    set_limits(int(memory_bytes), int(cpu_s), int(fsize_bytes))
    # Python ignores these two; the program gets the defaults it would get from a shell.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    try:
        os.execv(program[0], program)
    except OSError as exc:
        sys.exit(f"cannot run {program[0]}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
