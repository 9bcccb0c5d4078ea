"""The gateway for tests: on a background thread with its own event loop (tests that talk to it
over a real socket from synchronous code; the product runs it as a process of its own:
gateway.serve), as a ``tingxie gateway`` process beside a running service, and the PCM a FunASR
client sends."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
import wave
from pathlib import Path

from core.settings import Settings
from gateway import Gateway, GatewayConfig
from media import find_ffmpeg
from tests.support.service import free_port


class GatewayThread:
    def __init__(self, settings: Settings, config: GatewayConfig):
        self.settings, self.config = settings, config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._gateway: Gateway | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tingxie-gateway", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            gateway = Gateway(self.settings, self.config)
            await gateway.start()
            self._gateway = gateway
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                await gateway.stop()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            raise

    def start(self, timeout_s: float = 30.0) -> "GatewayThread":
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError("the gateway did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the gateway failed to start: {self._error}") from self._error
        return self

    @property
    def gateway(self) -> Gateway:
        return self._gateway

    @property
    def url(self) -> str:
        return self.gateway.url

    def stats(self) -> dict:
        async def read() -> dict:
            return self.gateway.stats()

        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(10)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)


def run_in_thread(settings: Settings, config: GatewayConfig | None = None) -> GatewayThread:
    return GatewayThread(settings, config or GatewayConfig.from_settings(settings)).start()



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


def convert(src: Path, dst: Path, *args: str) -> Path:
    """``src`` re-encoded by ffmpeg into ``dst`` (its format from the name, or ``args``)."""
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)
    return dst
