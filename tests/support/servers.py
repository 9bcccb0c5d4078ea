"""Private Redis and PostgreSQL servers for tests (and benchmarks) that stop, restart or flush
them: each on a port of its own, in a temporary folder, never the shared ones on 5432/6379.

PostgreSQL refuses to run as root: as root, its folder is given to the ``postgres`` user and its
programs run as that user (``runuser``)."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.service import free_port


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class PrivateRedis:
    """``host``: the address it listens on; ``prefix`` runs it inside another host's network
    (``ip netns exec HOST``)."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    host: str = "127.0.0.1"
    prefix: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> "PrivateRedis":
        self.proc = subprocess.Popen(
            [*self.prefix, "redis-server", "--port", str(self.port), "--bind", self.host, "--save", "",
             "--appendonly", "no",
             # Off the loopback it answers only with protected mode off (a private test subnet).
             *(["--protected-mode", "no"] if self.host != "127.0.0.1" else []),
             "--dir", tempfile.gettempdir()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._wait()
        return self

    def _wait(self) -> None:
        import redis

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if redis.Redis(host=self.host, port=self.port, socket_connect_timeout=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"private redis-server on port {self.port} did not start")

    def flushall(self) -> None:
        import redis

        redis.Redis(host=self.host, port=self.port).flushall()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@dataclass
class PrivatePostgres:
    """``host``: the address it listens on; ``prefix`` runs it inside another host's network
    (``ip netns exec HOST``); ``clients``: a subnet (CIDR) also let in, besides this host."""

    port: int = field(default_factory=free_port)
    root: Path | None = None
    database: str = "tingxie"
    host: str = "127.0.0.1"
    prefix: tuple[str, ...] = ()
    clients: str = ""

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{self.database}"

    def start(self) -> "PrivatePostgres":
        """initdb on first start, then start (and wait until it answers)."""
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="tingxie-pg-"))
            if os.geteuid() == 0:
                os.chown(self.root, pwd.getpwnam("postgres").pw_uid, -1)
            subprocess.run(_as_postgres(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                                         "-E", "UTF8", "--no-sync"]),
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self.clients:
                with open(self.data / "pg_hba.conf", "a") as hba:
                    hba.write(f"host all all {self.clients} trust\n")
            self._pg_ctl("start")
            import psycopg

            with psycopg.connect(f"postgresql://postgres@{self.host}:{self.port}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.database}"')
            return self
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, command: str, *extra: str) -> None:
        options = f"-p {self.port} -k /tmp -c listen_addresses={self.host} -c fsync=off -c max_connections=200"
        subprocess.run([*self.prefix, *_as_postgres(["pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                                     "-o", options, command, *extra])],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as if it crashed); the data stays for :meth:`start`."""
        if self.root is not None and (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", mode)

    def remove(self) -> None:
        self.stop("immediate")
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
