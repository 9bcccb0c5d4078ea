"""``python -I -S _rlimited.py MEMORY_BYTES CPU_S FSIZE_BYTES -- PROGRAM ARGS...``: set the limits, then
become PROGRAM (same pid, same process group).

The limits are in force before PROGRAM's first instruction, without a ``preexec_fn`` (which is not
safe in a parent that runs threads, as workers do). Stdlib only: it runs without site-packages.
A limit of -1 means none.
"""
import os
import resource
import signal
import sys


def main(argv: list[str]) -> None:
    memory_bytes, cpu_s, fsize_bytes, sep, *program = argv
    if sep != "--" or not program:
        sys.exit("usage: _rlimited.py MEMORY_BYTES CPU_S FSIZE_BYTES -- PROGRAM ARGS...")
    for which, value, hard_extra in ((resource.RLIMIT_AS, int(memory_bytes), 0),
                                     (resource.RLIMIT_CPU, int(cpu_s), 1),
                                     (resource.RLIMIT_FSIZE, int(fsize_bytes), 0)):
        if value >= 0:
            # For CPU the soft limit sends SIGXCPU, the hard one a second later SIGKILL.
            resource.setrlimit(which, (value, value + hard_extra))
    # Python ignores these two; the program gets the defaults it would get from a shell.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    try:
        os.execv(program[0], program)
    except OSError as exc:
        sys.exit(f"cannot run {program[0]}: {exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
