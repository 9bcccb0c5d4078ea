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
from typing import Callable

from flask import Response, g, request

log = logging.getLogger("tingxie.web")

SCOPE_KEY = "tingxie.deferral"
# Set on the view's placeholder response's request: web.metrics counts the real answer instead.
DEFERRED = "tingxie_answer_deferred"
# What of the request's flask.g the render does not inherit (files the first pass has placed).
_NOT_CARRIED = frozenset({DEFERRED, "spooled_files"})


@dataclass
class Pending:
    """A view's deferred answer: wait for ``job_id`` up to ``wait_s``, then ``render()``."""

    job_id: str
    wait_s: float
    render: Callable[[], object]
    environ: dict
    carried: dict = field(default_factory=dict)


class Deferral:
    """One request's slot for a deferred answer, made by the Tier and filled by :func:`defer`."""

    def __init__(self) -> None:
        self.pending: Pending | None = None

    def sender(self, send):
        """``send`` for the WSGI adapter: the response of a view that deferred is dropped."""
        async def sending(message: dict) -> None:
            if self.pending is None:
                await send(message)
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


async def serve_http(wsgi, flask_app, hub, executor: Executor, scope: dict, receive, send) -> None:
    """One HTTP request: to Flask through the WSGI adapter, then, when its view deferred, the wait
    for the job on ``hub`` and the answer rendered on ``executor`` (the request threads)."""
    deferral = Deferral()
    await wsgi({**scope, SCOPE_KEY: deferral}, receive, deferral.sender(send))
    pending = deferral.pending
    if pending is None:
        return
    waiting = asyncio.ensure_future(hub.wait_for_end(pending.job_id, pending.wait_s))
    leaving = asyncio.ensure_future(_until_disconnect(receive))
    try:
        await asyncio.wait((waiting, leaving), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        leaving.cancel()
    if leaving.done() and not leaving.cancelled():
        return  # the caller has gone: its job carries on, nobody is left to answer
    loop = asyncio.get_running_loop()
    try:
        # In a context of its own, as every request (see web.server).
        response = await loop.run_in_executor(executor, contextvars.Context().run, _render, flask_app, pending)
    except Exception:
        log.exception("could not answer the wait for job %s", pending.job_id)
        error = {"code": "internal_error", "message": "the server failed to answer; its logs have details"}
        response = Response(json.dumps({"error": error}), status=500, content_type="application/json")
    environ = pending.environ
    body = response.get_data()
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
