"""Slow callers against the production web tier as shipped (`tingxie web`, what compose runs:
2 processes, PostgreSQL + Redis), while /healthz is timed.

/healthz latency with no caller, then CALLERS connections that each hold a request open (spread
evenly over the kinds named by --kinds), /healthz timed again while they stay open. A kind of
caller is one coroutine in :data:`KINDS`: it opens its connection, says it is in, and holds its
request until told to stop. The kinds here send a request body one byte every --interval seconds:
`sign_in` to the public `POST /api/v1/session`, `upload` to `POST /api/v1/jobs` (multipart).
Printed: callers in and still held at the end (none answered early), the answers the others got,
/healthz p50/p95 idle and loaded, the web tier's memory.
With --openai-calls N, once the slow callers are in, N OpenAI calls (`POST /v1/audio/transcriptions`)
are made that wait for jobs no worker runs (bench.waiting_openai), and /healthz is timed again while
both kinds are open. Target: 200 slow bodies and 200 waiting OpenAI calls, /healthz p95 under 100 ms.

    python -m bench.slow_callers --callers 200 --openai-calls 200
    python -m bench.slow_callers --callers 200 --repo /path/to/other/checkout   # another version, same load

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (as the tests); takes a private
database and Redis database number and drops them after.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench import stop_services_on_signals
from bench.event_sockets import REPO, Backends, _env, _free_port, _healthz, _p, _rss_mib, _start_web


class Caller:
    """What a caller coroutine gets: where to connect, when to stop, and the shared tallies."""

    def __init__(self, host: str, port: int, interval_s: float, hold: asyncio.Event, stats: dict):
        self.host, self.port, self.interval_s, self.hold, self.stats = host, port, interval_s, hold, stats

    def entered(self) -> None:
        self.stats["in"] += 1
        self.stats["held"] += 1

    def answered(self, head: bytes) -> None:
        self.stats["held"] -= 1
        status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "closed"
        self.stats["answers"][status] = self.stats["answers"].get(status, 0) + 1


async def _trickle(caller: Caller, head: bytes, first: bytes) -> None:
    """Send ``head`` and ``first``, then a byte every interval until told to stop or answered."""
    reader, writer = await asyncio.open_connection(caller.host, caller.port)
    try:
        writer.write(head + first)
        await writer.drain()
        caller.entered()
        answer = asyncio.create_task(reader.read(65536))
        while not caller.hold.is_set():
            done, _ = await asyncio.wait({answer}, timeout=caller.interval_s)
            if done:
                caller.answered(answer.result())
                return
            writer.write(b" ")
            await writer.drain()
        answer.cancel()
        caller.stats["held"] -= 1
    finally:
        writer.close()


def _request(caller: Caller, method: str, path: str, content_type: str, length: int) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: {caller.host}:{caller.port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


async def sign_in(caller: Caller) -> None:
    """The public sign-in, its JSON body a byte at a time (no credentials needed)."""
    await _trickle(caller, _request(caller, "POST", "/api/v1/session", "application/json", 4000), b"{")


async def upload(caller: Caller) -> None:
    """An upload, its multipart body a byte at a time."""
    first = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.wav\"\r\n"
             b"Content-Type: audio/wav\r\n\r\nRIFF")
    await _trickle(caller, _request(caller, "POST", "/api/v1/jobs", "multipart/form-data; boundary=b", 10**6), first)


KINDS = {"sign_in": sign_in, "upload": upload}


async def _open_callers(caller: Caller, kinds: list[str], count: int) -> None:
    async def one(n: int) -> None:
        try:
            await KINDS[kinds[n % len(kinds)]](caller)
        except Exception as exc:  # refused, reset: counted, not raised
            caller.stats["errors"][type(exc).__name__] = caller.stats["errors"].get(type(exc).__name__, 0) + 1

    tasks = []
    for n in range(count):
        tasks.append(asyncio.create_task(one(n)))
        if n % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)


def run(args, repo: Path, backends: Backends, tmp: Path) -> dict:
    port = _free_port()
    env = _env(repo, tmp / "data", backends, port)
    if args.openai_calls:  # one token's 200 calls at once: past the upload limit (120/minute by default)
        env.update(TINGXIE_UPLOAD_RATE_LIMIT="off", TINGXIE_RATE_LIMIT="off", TINGXIE_OPENAI_WAIT_S="600")
    web = _start_web(repo, env, tmp / "web.log", args.workers)
    base = f"http://127.0.0.1:{port}"
    try:
        _healthz(base, 2)  # warm
        idle = _healthz(base, args.seconds)
        stats = {"in": 0, "held": 0, "answers": {}, "errors": {}}
        loop = asyncio.new_event_loop()
        hold = asyncio.Event()
        caller = Caller("127.0.0.1", port, args.interval, hold, stats)
        kinds = args.kinds.split(",")
        opener = threading.Thread(target=lambda: loop.run_until_complete(_open_callers(caller, kinds, args.callers)),
                                  daemon=True)
        started = time.monotonic()
        opener.start()
        while stats["in"] + sum(stats["errors"].values()) < args.callers and time.monotonic() - started < 60:
            time.sleep(0.2)
        loaded = _healthz(base, args.seconds)
        both = None
        if args.openai_calls:  # and, while the slow bodies are still open, OpenAI calls that wait
            from bench.waiting_openai import _token, measure

            token = _token(env["TINGXIE_DATABASE_URL"], "bench")
            both = measure(base, token, calls=args.openai_calls, seconds=args.seconds, web=web)
            both["slow_callers_still_held"] = stats["held"]
        rss = _rss_mib(web)
        held = stats["held"]
        loop.call_soon_threadsafe(hold.set)
        opener.join(args.interval + 30)
        return {"in": stats["in"], "held_at_end": held, "answers": stats["answers"], "errors": stats["errors"],
                "idle_p50": _p(idle, 0.5), "idle_p95": _p(idle, 0.95), "loaded_p50": _p(loaded, 0.5),
                "loaded_p95": _p(loaded, 0.95), "loaded_max": max(loaded), "loaded_n": len(loaded), "web_rss_mib": rss,
                "with_openai_calls": both}
    finally:
        os.killpg(web.pid, 15)
        try:
            web.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, 9)


def main() -> None:
    stop_services_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--kinds", default="sign_in,upload", help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a slow body's bytes")
    parser.add_argument("--seconds", type=float, default=15, help="how long /healthz is timed, idle and loaded")
    parser.add_argument("--workers", type=int, default=2, help="web processes (compose runs 2)")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose `tingxie web` is measured")
    parser.add_argument("--openai-calls", type=int, default=0,
                        help="then also this many OpenAI calls waiting for jobs that do not end (no worker runs)")
    args = parser.parse_args()
    with Backends() as backends, tempfile.TemporaryDirectory() as tmp:
        result = run(args, args.repo.resolve(), backends, Path(tmp))
    print(json.dumps(result))
    print(f"\n{args.callers} slow callers ({args.kinds}), {args.workers} web processes ({args.repo}):")
    print(f"  in {result['in']}, still held at the end {result['held_at_end']}, answered {result['answers']}, "
          f"errors {result['errors']}")
    print(f"  /healthz p95 idle {result['idle_p95']:.1f} ms -> with the callers open {result['loaded_p95']:.1f} ms "
          f"(p50 {result['loaded_p50']:.1f}, max {result['loaded_max']:.1f}, n {result['loaded_n']})")
    both = result["with_openai_calls"]
    if both:
        print(f"  then {both['taken_in']} waiting OpenAI calls beside {both['slow_callers_still_held']} slow callers "
              f"still held: /healthz p95 {both['loaded_p95_ms']:.1f} ms (p50 {both['loaded_p50_ms']:.1f}, max "
              f"{both['loaded_max_ms']:.1f}, n {both['loaded_n']}); GET /api/v1/jobs {both['api_status']}; "
              f"threads per web process {both.get('web_threads')}; target p95 < 100 ms")
    print(f"  web tier RSS: {result['web_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
