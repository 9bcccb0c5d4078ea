"""A ``tingxie gateway`` process beside a running service, and the PCM a FunASR client sends."""
from __future__ import annotations

import socket
import time
import wave
from pathlib import Path

from tests.support.service import free_port


def start_gateway(service, *args: str, port: int | None = None) -> str:
    """A ``tingxie gateway`` process beside the service; returns its URL once it listens."""
    port = port or free_port()
    proc = service.spawn(f"gateway{port}", "gateway", "--port", str(port), *args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {service.log(f'gateway{port}')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        raise RuntimeError(f"gateway did not listen: {service.log(f'gateway{port}')}")
    plain = "--certfile" in args and args[args.index("--certfile") + 1] == "0"
    scheme = "ws" if plain else "wss"
    return f"{scheme}://127.0.0.1:{port}"


def pcm_of(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return wav.readframes(wav.getnframes()), wav.getframerate()
