"""Closing a websocket-client connection (``websocket.create_connection``) for good.

Once ``recv_data`` has read the server's close frame, websocket-client answers it and marks the
connection closed, so its ``close()`` returns at once and leaves the TCP socket to the garbage
collector (a ResourceWarning in whichever test collects it). ``shutdown()`` closes the socket."""
from __future__ import annotations


def close_ws(ws) -> None:
    ws.close()
    ws.shutdown()
