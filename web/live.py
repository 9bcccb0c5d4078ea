"""Job-events WebSockets served on the event loop: an open socket is a few kilobytes of memory and a
waiting coroutine, never a request thread, so a thousand watchers leave the web tier's threads to
uploads and the API.

The process's one event hub (:class:`core.hub.EventHub`) feeds every socket, as it feeds the
OpenAI calls waiting for their job's end (:mod:`web.waits`): one Redis subscription and one
database sweep for all of them. The process's one :class:`core.revocation.RevocationWatch`
re-checks the tokens of the open sockets (one query for all of them every few seconds): a watcher
whose token or page session was revoked or has expired is closed with 1008.

A watcher's handshake (authorization, the snapshot) runs as Flask code in a worker thread with a
request context built from the handshake (:func:`web.events.open_watch`); after that the socket
lives on the loop.
"""
from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging

from a2wsgi.wsgi import build_environ

from core import events
from core.errors import TingxieError
from core.hub import EventHub
from core.revocation import RevocationWatch
from web.events import NORMAL, event_message, open_watch
from web.headers import behind_proxies
from web.metrics import event_sockets

log = logging.getLogger("tingxie.live")

# A handshake that failed on our side (the database is down...): RFC 6455's internal error.
INTERNAL_ERROR = 1011
POLICY_VIOLATION = 1008
# Put in a watcher's queue when its token stops being valid.
_REVOKED = object()


def handshake_environ(scope: dict, trusted_proxies: int = 0) -> dict:
    """A WSGI environ for the WebSocket handshake, so Flask code sees it as a request (with the
    X-Forwarded-* headers of trusted proxies applied, as for HTTP requests)."""
    # The handshake is an HTTP request: its scheme is http(s) (the page's origin), not ws(s).
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "ws"), scope.get("scheme", "http"))
    environ = build_environ({**scope, "scheme": scheme, "method": "GET",
                             "http_version": scope.get("http_version", "1.1")}, io.BytesIO(b""))
    if trusted_proxies:
        seen: list[dict] = []
        behind_proxies(lambda env, _start: seen.append(env) or [], trusted_proxies)(environ, lambda *_: None)
        environ = seen[0]
    return environ


async def serve_watcher(flask_app, hub: EventHub, revocations: RevocationWatch, job_id: str, scope: dict,
                        receive, send) -> None:
    """One job-events socket, from the handshake to the close (message shapes: web.events)."""
    if (await receive())["type"] != "websocket.connect":
        return

    def opening():
        trusted = flask_app.extensions["tingxie"].settings.trusted_proxies
        with flask_app.request_context(handshake_environ(scope, trusted)):
            return open_watch(job_id)

    try:
        # In a context of its own: nothing of an earlier request on the connection (see web.server).
        first = await asyncio.to_thread(contextvars.Context().run, opening)
    except TingxieError as refused:  # credentials or Origin: answered before the socket is accepted
        await _refuse(scope, send, refused)
        return
    except Exception:
        log.exception("could not open the events of job %s", job_id)
        await send({"type": "websocket.close", "code": INTERNAL_ERROR})
        return
    try:
        await _stream(hub, revocations, job_id, first, receive, send)
    except OSError:  # the client went away while we were sending (uvicorn's ClientDisconnected)
        return


async def _refuse(scope: dict, send, refused: TingxieError) -> None:
    """An HTTP answer (401 or 403, the API's JSON error) to a handshake that may not watch, when
    the server lets the application answer before accepting; else a close before accept (403)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        return
    body = json.dumps(refused.to_json()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refused.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="tingxie"'))
    await send({"type": "websocket.http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


async def _stream(hub: EventHub, revocations: RevocationWatch, job_id: str, first, receive, send) -> None:
    await send({"type": "websocket.accept"})
    for message in first.messages:
        await send({"type": "websocket.send", "text": json.dumps(message, ensure_ascii=False)})
    if first.close is not None:
        await send({"type": "websocket.close", "code": first.close[0], "reason": first.close[1]})
        return
    watch = hub.watch(job_id, first.after_id)

    async def until_disconnect() -> None:
        while (await receive())["type"] != "websocket.disconnect":
            pass  # a watcher has nothing to say; whatever it sends is ignored
        watch.queue.put_nowait(None)

    listener = asyncio.create_task(until_disconnect())
    unwatch = revocations.watch(first.principal, lambda: watch.queue.put_nowait(_REVOKED))
    sockets = event_sockets()
    sockets.inc()
    try:
        while (message := await watch.queue.get()) is not None:
            if message is _REVOKED:
                await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": "token revoked or expired"})
                return
            await send({"type": "websocket.send", "text": json.dumps(event_message(message, first.links),
                                                                      ensure_ascii=False)})
            if message["type"] in events.TERMINAL_TYPES:
                await send({"type": "websocket.close", "code": NORMAL, "reason": "job finished"})
                return
    finally:
        sockets.dec()
        unwatch()
        hub.unwatch(watch)
        listener.cancel()
