"""Benchmarks: scripts that print figures (``python -m bench.NAME``), never timed tests."""
from __future__ import annotations

import signal


def stop_services_on_signals() -> None:
    """SIGTERM and SIGHUP end a bench as Ctrl-C does, so its ``finally`` blocks (and the test
    support's exit hook) stop every server and tingxie process it started; a second signal while it
    cleans up is ignored, so the clean-up is not cut short."""

    def interrupt(signum, _frame):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
