"""Hosts for system tests: Linux network namespaces on a private subnet (10.231.N.0/24), each
joined by a veth pair to a bridge in the test's own namespace, which holds the subnet's first
address (the test reaches every host over the bridge, as a client on the network would). Traffic
only ever goes to these namespaces' own addresses. Needs root (``ip netns add``).

``Network.remove`` kills whatever still runs inside its namespaces and deletes every namespace,
veth and the bridge, whatever state a failed test left them in."""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def available() -> str | None:
    """None when network namespaces can be made here, else why not."""
    probe = f"txprobe{os.getpid() % 100000}"
    try:
        result = _ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        return "iproute2's `ip` is not installed"
    if result.returncode != 0:
        return f"`ip netns add` failed: {result.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    """One namespace: ``address`` on the subnet, ``veth`` its link's end on the bridge."""

    name: str
    namespace: str
    address: str
    veth: str

    @property
    def prefix(self) -> tuple[str, ...]:
        """Runs a command inside this host's network (``ip netns exec`` execs: the pid stays the command's)."""
        return ("ip", "netns", "exec", self.namespace)

    def named(self, hostname: str) -> tuple[str, ...]:
        """As :attr:`prefix`, with the host name ``hostname`` (a UTS namespace of its own), so that a
        worker's Celery node is ``tingxie-<pid>@<hostname>``."""
        return (*self.prefix, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname)

    def cut(self) -> None:
        """The host's link goes down (its cable pulled): nothing reaches it, it reaches nothing."""
        _ip("link", "set", self.veth, "down")

    def pids(self) -> list[int]:
        result = _ip("netns", "pids", self.namespace, check=False)
        return [int(p) for p in result.stdout.split()]


@dataclass
class Network:
    tag: str = field(default_factory=lambda: str(os.getpid() % 10000))
    hosts: list[Host] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.octet = 20 + os.getpid() % 200
        self.bridge = f"tx{self.tag}br"
        self.cidr = f"10.231.{self.octet}.0/24"
        self.gateway = f"10.231.{self.octet}.1"

    def start(self) -> "Network":
        if f"10.231.{self.octet}." in _ip("-4", "addr").stdout:
            raise RuntimeError(f"{self.cidr} is in use here already")
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def add_host(self, name: str) -> Host:
        host = Host(name=name, namespace=f"tx{self.tag}{name}", veth=f"tx{self.tag}{name}",
                    address=f"10.231.{self.octet}.{2 + len(self.hosts)}")
        self.hosts.append(host)
        _ip("netns", "add", host.namespace)
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        _ip("link", "set", host.veth, "master", self.bridge, "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        return host

    def remove(self) -> list[str]:
        """Kill what still runs inside each host, delete the namespaces, links and bridge. Returns
        what could not be removed (empty when all is gone)."""
        for host in self.hosts:
            for pid in host.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        left = []
        for host in self.hosts:
            _ip("netns", "del", host.namespace, check=False)
            _ip("link", "del", host.veth, check=False)  # gone with its peer's namespace, normally
            if host.namespace in _ip("netns", "list").stdout.split():
                left.append(host.namespace)
        _ip("link", "del", self.bridge, check=False)
        left += [name for name in [self.bridge, *(h.veth for h in self.hosts)]
                 if _ip("link", "show", name, check=False).returncode == 0]
        return left
