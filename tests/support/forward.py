"""A TCP forwarder: a server's address that a test can bring back pointing at another server
already in the state the test wants (an S3 store back with its object, not first empty)."""
from __future__ import annotations

import socket
import socketserver
import threading


def pump(source: socket.socket, target: socket.socket) -> None:
    """Copy ``source`` to ``target`` until ``source`` ends, then end ``target``'s sending side."""
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)  # the other side sees the end; the other pump goes on
        except OSError:
            pass


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with socket.create_connection(self.server.target) as upstream:
            back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
            back.start()
            pump(self.request, upstream)
            back.join()


class Forwarder(socketserver.ThreadingTCPServer):
    """Listens on ``port`` of 127.0.0.1 and forwards each connection to ``target`` (host, port)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, target: tuple[str, int]):
        super().__init__(("127.0.0.1", port), _Handler)
        self.target = target
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
