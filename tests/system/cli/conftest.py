"""A running tingxie for the client commands' tests: one web tier and worker for the session
(starting a worker loads its models), and ``client_cli`` to run the CLI against a server."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, make_settings
from tests.support.service import Service


@pytest.fixture(scope="session")
def shared_service(tmp_path_factory):
    """Real web and worker processes on the embedded default, shared by the tests that only add jobs."""
    from core.migrate import upgrade

    root = tmp_path_factory.mktemp("client-service")
    settings = make_settings(root)
    upgrade(settings)
    (root / "logs").mkdir()
    service = Service(settings=settings, log_dir=root / "logs")
    try:
        service.start_web()
        service.start_worker()
        yield service
    finally:
        service.stop()


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
