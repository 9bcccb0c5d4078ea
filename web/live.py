"""Job-events WebSockets served on the event loop: an open socket is a few kilobytes of memory and a
waiting coroutine, never a request thread, so a thousand watchers leave the web tier's threads to
uploads and the API.

One :class:`EventHub` per process feeds every watcher of that process: the sockets, and the
OpenAI calls waiting for their job's end (:meth:`EventHub.wait_for_end`, :mod:`web.waits`). The
database is the truth (the order and content of each job's events, as the REST API and a late
watcher see them); Redis, when configured, only says which jobs have news: one pattern
subscription per process marks them, and one batched read fetches the new events of all of them
at once. The database is also swept every few seconds for every watched job in case a
publication was lost, and, without Redis (the embedded default), every quarter second. The hub
also re-checks the tokens of its open sockets (:mod:`core.revocation`, one query for all of them
every few seconds): a watcher whose token or page session was revoked or has expired is closed
with 1008.

A watcher's handshake (authorization, the snapshot) runs as Flask code in a worker thread with a
request context built from the handshake (:func:`web.events.open_watch`); after that the socket
lives on the loop.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import json
import logging
from dataclasses import dataclass, field

from sqlalchemy import select, union_all
from sqlalchemy.orm import sessionmaker

from core import events
from core.errors import TingxieError
from core.models import JobEvent
from core.revocation import RevocationWatch

log = logging.getLogger("tingxie.live")

# Jobs per statement when the hub reads (one UNION ALL of per-job index lookups).
_READ_CHUNK = 100
# A handshake that failed on our side (the database is down...): RFC 6455's internal error.
INTERNAL_ERROR = 1011
POLICY_VIOLATION = 1008
# Put in a watcher's queue when its token stops being valid.
_REVOKED = object()


@dataclass(eq=False)
class Watch:
    """One socket's subscription: events of ``job_id`` after ``after_id`` go to ``queue``; None
    in the queue means the client left."""

    job_id: str
    after_id: int
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


class EventHub:
    def __init__(self, factory: sessionmaker, events_url: str = "", *, poll_s: float = 0.25, sweep_s: float = 5.0):
        self.factory = factory
        self.events_url = events_url
        # Without Redis nothing says which job has news: every watched job is read every poll_s.
        self.sweep_s = sweep_s if events_url else poll_s
        self._watches: dict[str, set[Watch]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.revocations = RevocationWatch(factory)

    @property
    def watchers(self) -> int:
        return sum(len(w) for w in self._watches.values())

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._read_loop(), name="tingxie-events-read"))
        await self.revocations.start()
        if self.events_url:
            self._tasks.append(asyncio.create_task(self._redis_loop(), name="tingxie-events-redis"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.revocations.close()

    def watch(self, job_id: str, after_id: int) -> Watch:
        """Start feeding a watcher. Its job is read at once, so an event committed between its
        snapshot and now is not missed."""
        watch = Watch(job_id, after_id)
        self._watches.setdefault(job_id, set()).add(watch)
        self._mark(job_id)
        return watch

    def unwatch(self, watch: Watch) -> None:
        watchers = self._watches.get(watch.job_id)
        if watchers is not None:
            watchers.discard(watch)
            if not watchers:
                del self._watches[watch.job_id]

    async def wait_for_end(self, job_id: str, timeout_s: float) -> dict | None:
        """The job's terminal event (done, failed or canceled), or None when ``timeout_s`` passes
        first. A job that has already ended answers at once (its history is read from the start)."""
        watch = self.watch(job_id, 0)
        try:
            async with asyncio.timeout(timeout_s):
                while (message := await watch.queue.get())["type"] not in events.TERMINAL_TYPES:
                    pass
                return message
        except TimeoutError:
            return None
        finally:
            self.unwatch(watch)

    def _mark(self, job_id: str) -> None:
        self._dirty.add(job_id)
        self._wake.set()

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.sweep_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_sweep - loop.time()))
            self._wake.clear()
            if loop.time() >= next_sweep:
                jobs, next_sweep = set(self._watches), loop.time() + self.sweep_s
            else:
                jobs = self._dirty & set(self._watches)
            self._dirty.clear()
            after = {job: min(w.after_id for w in self._watches[job]) for job in jobs if job in self._watches}
            if not after:
                continue
            try:
                rows = await asyncio.to_thread(self._read, after)
            except Exception:  # the database may blip: the next sweep reads again
                log.warning("could not read job events; trying again at the next sweep", exc_info=True)
                continue
            for message in rows:
                for watch in tuple(self._watches.get(message["job_id"], ())):
                    if message["id"] > watch.after_id:
                        watch.after_id = message["id"]
                        watch.queue.put_nowait(message)

    def _read(self, after: dict[str, int]) -> list[dict]:
        """Every watched job's events after its watchers' position, in commit-id order: one
        statement per :data:`_READ_CHUNK` jobs, each job an index lookup of its own."""
        found: list[dict] = []
        items = sorted(after.items())
        with self.factory() as session:
            for start in range(0, len(items), _READ_CHUNK):
                parts = [select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id)
                         for job_id, after_id in items[start:start + _READ_CHUNK]]
                statement = parts[0] if len(parts) == 1 else select(JobEvent).from_statement(union_all(*parts))
                found.extend(events.as_message(row) for row in session.execute(statement).scalars())
        found.sort(key=lambda message: message["id"])
        return found

    async def _redis_loop(self) -> None:
        import redis.asyncio as aredis
        from redis.exceptions import RedisError

        prefix = events.channel("")
        while True:
            client = aredis.Redis.from_url(self.events_url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(events.channel("*"))
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None:
                        continue
                    job_id = message["channel"].decode()[len(prefix):]
                    if job_id in self._watches:
                        self._mark(job_id)
            except (RedisError, OSError):
                log.warning("lost the Redis event channel; the database sweep carries on", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                await pubsub.aclose()
                await client.aclose()


def handshake_environ(scope: dict, trusted_proxies: int = 0) -> dict:
    """A WSGI environ for the WebSocket handshake, so Flask code sees it as a request (with the
    X-Forwarded-* headers of trusted proxies applied, as for HTTP requests)."""
    from a2wsgi.wsgi import build_environ

    # The handshake is an HTTP request: its scheme is http(s) (the page's origin), not ws(s).
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "ws"), scope.get("scheme", "http"))
    environ = build_environ({**scope, "scheme": scheme, "method": "GET",
                             "http_version": scope.get("http_version", "1.1")}, io.BytesIO(b""))
    if trusted_proxies:
        from web import behind_proxies

        seen: list[dict] = []
        behind_proxies(lambda env, _start: seen.append(env) or [], trusted_proxies)(environ, lambda *_: None)
        environ = seen[0]
    return environ


async def serve_watcher(flask_app, hub: EventHub, job_id: str, scope: dict, receive, send) -> None:
    """One job-events socket, from the handshake to the close (message shapes: web.events)."""
    from web.events import open_watch

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
        await _stream(hub, job_id, first, receive, send)
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


async def _stream(hub: EventHub, job_id: str, first, receive, send) -> None:
    from web.events import NORMAL, event_message
    from web.metrics import event_sockets

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
    unwatch = hub.revocations.watch(first.principal, lambda: watch.queue.put_nowait(_REVOKED))
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
