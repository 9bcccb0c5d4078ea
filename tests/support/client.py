"""``client_cli`` runs the client CLI in a process of its own against a server (the tests' running
tingxie is ``shared_service``, tests/support/fixtures.py)."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.support.settings import REPO


def client_env(server: str | None = None, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    environ["PYTHONPATH"] = str(REPO)
    if server:
        environ["TINGXIE_SERVER"] = server
    environ.update(extra)
    return environ


def client_cli(*args: str, server: str | None = None, env: dict | None = None, timeout_s: float = 300):
    """``tingxie ARGS...`` in a process of its own, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          env=client_env(server, **(env or {})), timeout=timeout_s, cwd=REPO)
