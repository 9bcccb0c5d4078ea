"""Requests that wait for a job without holding a thread (the OpenAI call's synchronous answer).

A Flask view that must answer only once a job has ended calls :func:`defer` with the job and a
function that renders the answer. Under the web tier (:class:`web.server.Tier`) its request
thread is then free at once: the Tier drops the view's placeholder response (it never reaches the
client), awaits the job's end on the process's one event hub (:meth:`core.hub.EventHub.wait_for_end`:
no Redis subscription or thread per waiting call), then runs the render function in a short thread
call, as Flask code in the request's own context (its caller, its after-request hooks: headers,
metrics), and sends what it returns. A client that leaves while waiting ends the wait.

What crosses from the view to the Tier is an object in the request's ASGI scope, put there by the
Tier for each request: nothing a client sends can name a job to wait for, and the render function
reads the job for the caller who made the request (another tenant's job is not found).

A view that streams (:func:`defer_stream`: the OpenAI call with ``stream=true``) has its
response's head sent at once (``200 text/event-stream``); while the job runs the Tier sends a
server-sent-events comment for each of the job's events and every :data:`KEEPALIVE_S` (so that
neither the client nor a proxy takes the quiet connection for a dead one), then the events the
render function gives once the job has ended. The job's events come from :func:`job_events`,
the one place that says where they come from.

Under a bare WSGI server (Flask's test client, no Tier) there is no loop to wait on: the answer
is rendered at once from the job as it stands.
"""
from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from flask import Response, g, request

log = logging.getLogger("tingxie.web")

SCOPE_KEY = "tingxie.deferral"
# Set on the view's placeholder response's request: web.metrics counts the real answer instead.
DEFERRED = "tingxie_answer_deferred"
# What of the request's flask.g the render does not inherit (files the first pass has placed).
_NOT_CARRIED = frozenset({DEFERRED, "spooled_files"})
# A stream that has had nothing to send for this long gets a comment line.
KEEPALIVE_S = 15.0
TERMINAL_TYPES = frozenset({"done", "failed", "canceled"})


@dataclass
class Pending:
    """A view's deferred answer: wait for ``job_id`` up to ``wait_s``, then ``render()``."""

    job_id: str
    wait_s: float
    render: Callable[[], object]
    environ: dict
    carried: dict = field(default_factory=dict)
    # The view's own response head goes out at once; the render's body follows the wait.
    stream: bool = False


class Deferral:
    """One request's slot for a deferred answer, made by the Tier and filled by :func:`defer`."""

    def __init__(self) -> None:
        self.pending: Pending | None = None

    def sender(self, send):
        """``send`` for the WSGI adapter: the response of a view that deferred is dropped; that of
        a view that streams is sent without its end (the Tier sends the rest)."""
        async def sending(message: dict) -> None:
            if self.pending is None:
                await send(message)
            elif self.pending.stream:
                await send({**message, "more_body": True} if message["type"] == "http.response.body" else message)
        return sending


def defer(job_id: str, wait_s: float, render: Callable[[], object]):
    """The view's return value: answer with ``render()`` once the job has ended or ``wait_s`` has
    passed, without holding this thread. ``render`` runs in this request's context (a fresh one
    under the Tier) and returns what a view returns."""
    deferral = request.environ.get("asgi.scope", {}).get(SCOPE_KEY)
    if not isinstance(deferral, Deferral):
        return render()
    carried = {name: value for name, value in vars(g).items() if name not in _NOT_CARRIED}
    deferral.pending = Pending(job_id, wait_s, render, request.environ, carried)
    setattr(g, DEFERRED, True)
    return Response(status=202)  # never sent: the Tier answers once the wait is over


def defer_stream(job_id: str, wait_s: float, head: Response, render: Callable[[], object]):
    """As :func:`defer`, for an answer streamed as server-sent events: ``head`` (the view's
    response, with no body) goes out at once, ``render()``'s body once the job has ended or
    ``wait_s`` has passed. Without the Tier: ``render()`` at once."""
    deferral = request.environ.get("asgi.scope", {}).get(SCOPE_KEY)
    if not isinstance(deferral, Deferral):
        return render()
    carried = {name: value for name, value in vars(g).items() if name not in _NOT_CARRIED}
    deferral.pending = Pending(job_id, wait_s, render, request.environ, carried, stream=True)
    setattr(g, DEFERRED, True)
    return head


async def job_events(hub, job_id: str, timeout_s: float, idle_s: float = KEEPALIVE_S) -> AsyncIterator[dict | None]:
    """The job's events from its start, as they are committed, up to and including its end;
    None after each ``idle_s`` without one. Ends after the terminal event or ``timeout_s``.
    The one place the web tier's streams take a job's events from."""
    watch = hub.watch(job_id, 0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while (left := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(watch.queue.get(), min(idle_s, left))
            except TimeoutError:
                yield None
                continue
            yield message
            if message["type"] in TERMINAL_TYPES:
                return
    finally:
        hub.unwatch(watch)


async def _stream_until_end(hub, pending: Pending, send) -> None:
    """A comment line per event of the job and per quiet :data:`KEEPALIVE_S`, until it ends."""
    async for message in job_events(hub, pending.job_id, pending.wait_s):
        note = "waiting" if message is None else message["type"]
        if message is not None and message["type"] in TERMINAL_TYPES:
            return
        await send({"type": "http.response.body", "body": f": {note}\n\n".encode(), "more_body": True})


async def serve_http(wsgi, flask_app, hub, executor: Executor, scope: dict, receive, send) -> None:
    """One HTTP request: to Flask through the WSGI adapter, then, when its view deferred, the wait
    for the job on ``hub`` and the answer rendered on ``executor`` (the request threads)."""
    deferral = Deferral()
    await wsgi({**scope, SCOPE_KEY: deferral}, receive, deferral.sender(send))
    pending = deferral.pending
    if pending is None:
        return
    if pending.stream:
        waiting = asyncio.ensure_future(_stream_until_end(hub, pending, send))
    else:
        waiting = asyncio.ensure_future(hub.wait_for_end(pending.job_id, pending.wait_s))
    leaving = asyncio.ensure_future(_until_disconnect(receive))
    try:
        await asyncio.wait((waiting, leaving), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        leaving.cancel()
    if leaving.done() and not leaving.cancelled():
        return  # the caller has gone: its job carries on, nobody is left to answer
    if waiting.done() and not waiting.cancelled() and waiting.exception() is not None:
        if pending.stream and isinstance(waiting.exception(), OSError):
            return  # the client went away while a comment line was being sent
        raise waiting.exception()
    loop = asyncio.get_running_loop()
    try:
        # In a context of its own, as every request (see web.server).
        response = await loop.run_in_executor(executor, contextvars.Context().run, _render, flask_app, pending)
    except Exception:
        log.exception("could not answer the wait for job %s", pending.job_id)
        error = {"code": "internal_error", "message": "the server failed to answer; its logs have details"}
        if pending.stream:  # the head has gone out: the error is the stream's last event
            await send({"type": "http.response.body", "body": f"data: {json.dumps({'error': error})}\n\n".encode()})
            return
        response = Response(json.dumps({"error": error}), status=500, content_type="application/json")
    environ = pending.environ
    body = response.get_data()
    if pending.stream:  # the head went out before the wait: the answer is the rest of the body
        response.close()
        await send({"type": "http.response.body", "body": body})
        return
    headers = [(name.lower().encode("latin1"), value.encode("latin1"))
               for name, value in response.get_wsgi_headers(environ).items()]
    response.close()
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _until_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the body was read by the view: nothing else comes but the disconnect


def _render(flask_app, pending: Pending) -> Response:
    """The deferred answer, as Flask code in the request's context: its g (the caller, the
    metrics clock) carried over from the view, its after-request hooks run on the answer."""
    environ = {**pending.environ, "wsgi.input": io.BytesIO(b"")}  # the body was read by the view
    environ.pop("werkzeug.request", None)
    with flask_app.request_context(environ):
        vars(g).update(pending.carried)
        try:
            answer = pending.render()
        except Exception as exc:  # the app's error handlers give the route's error shape
            answer = flask_app.handle_user_exception(exc)
        return flask_app.finalize_request(answer)
