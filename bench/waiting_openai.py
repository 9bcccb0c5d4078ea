"""OpenAI calls left waiting against the production web tier as shipped (`tingxie web`, what compose
runs: 2 processes, PostgreSQL + Redis, no worker: every job stays queued), while /healthz is timed.

/healthz latency idle, then CALLS OpenAI calls (the real SDK, one token, each uploading a short real
recording) are made at once; once every one has been taken in and is waiting for its job,
/healthz is timed again and an API request is made, then the jobs are canceled and every call
must be answered (409 canceled). Printed: calls taken in, /healthz p50/p95 idle and with the
calls waiting, the web processes' threads, their Redis pattern subscriptions, the calls answered.
Target: 200 calls, /healthz p95 under 100 ms.

    python -m bench.waiting_openai --calls 200
    python -m bench.waiting_openai --calls 200 --repo /path/to/other/checkout   # another version, same load

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (as the tests); takes a private
database and Redis database number and drops them after. :func:`measure` is the load itself, for
a bench that combines it with others.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import requests

from bench import stop_services_on_signals
from bench.event_sockets import REPO, Backends, _env, _free_port, _healthz, _p, _start_web
from tests.support.speech import SPEECH_DIR

SPEECH = SPEECH_DIR / "asr_example.mp3"


def _token(database_url: str, tenant: str) -> str:
    from core import tokens
    from core.db import make_engine, make_sessionmaker, session_scope

    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            return tokens.create(session, tenant=tenant).secret
    finally:
        engine.dispose()


def _threads(proc: subprocess.Popen) -> list[int]:
    """Threads of each web process (uvicorn's supervisor's children, or the one process; not
    multiprocessing's resource tracker)."""
    root = psutil.Process(proc.pid)
    children = [p for p in root.children() if "resource_tracker" not in " ".join(p.cmdline())]
    return [p.num_threads() for p in (children or [root])]


def _pattern_subscribers(redis_url: str) -> int:
    """Connections on the run's Redis database number that hold a pattern subscription."""
    import redis

    number = int(redis_url.rsplit("/", 1)[1])
    return sum(1 for c in redis.Redis.from_url(redis_url).client_list() if int(c["psub"]) and int(c["db"]) == number)


def measure(base: str, token: str, *, calls: int, seconds: float, path: Path = SPEECH,
            redis_url: str = "", web: subprocess.Popen | None = None) -> dict:
    """/healthz while ``calls`` OpenAI calls wait for jobs that do not end (the service runs no
    worker); the jobs are canceled at the end, which answers the calls."""
    from tests.support.waiting import Callers, release, wait_for_waiting_calls

    headers = {"Authorization": f"Bearer {token}"}
    callers = Callers(base, token, path, calls)
    started = time.monotonic()
    callers.start()
    job_ids = wait_for_waiting_calls(SimpleNamespace(base_url=base), headers, calls, callers, deadline_s=600)
    taken_in_s = time.monotonic() - started
    loaded = _healthz(base, seconds)
    api = requests.get(base + "/api/v1/jobs?per_page=1", headers=headers, timeout=60)
    result = {"calls": calls, "taken_in": len(job_ids), "taken_in_s": round(taken_in_s, 1),
              "loaded_p50_ms": _p(loaded, 0.5), "loaded_p95_ms": _p(loaded, 0.95), "loaded_max_ms": max(loaded),
              "loaded_n": len(loaded), "api_status": api.status_code, "api_total": api.json().get("total")}
    if web is not None:
        result["web_threads"] = _threads(web)
    if redis_url:
        result["redis_pattern_subscribers"] = _pattern_subscribers(redis_url)
    release(SimpleNamespace(base_url=base), headers, job_ids)
    callers.join(300)
    answered = [r for r in callers.results if getattr(r, "status_code", None) == 409]
    result["answered_canceled"] = len(answered)
    return result


def main() -> None:
    stop_services_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15, help="how long /healthz is timed, idle and loaded")
    parser.add_argument("--workers", type=int, default=2, help="web processes (compose runs 2)")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose `tingxie web` is measured")
    args = parser.parse_args()
    repo = args.repo.resolve()
    with Backends() as backends, tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        env = _env(repo, Path(tmp) / "data", backends, port)
        env.update(TINGXIE_UPLOAD_RATE_LIMIT="off", TINGXIE_RATE_LIMIT="off", TINGXIE_OPENAI_WAIT_S="600")
        web = _start_web(repo, env, Path(tmp) / "web.log", args.workers)
        base = f"http://127.0.0.1:{port}"
        try:
            token = _token(backends.database_url, "bench")
            _healthz(base, 2)  # warm
            idle = _healthz(base, args.seconds)
            result = {"idle_p50_ms": _p(idle, 0.5), "idle_p95_ms": _p(idle, 0.95),
                      **measure(base, token, calls=args.calls, seconds=args.seconds, redis_url=backends.redis_url,
                                web=web)}
        finally:
            os.killpg(web.pid, 15)
            try:
                web.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(web.pid, 9)
    print(json.dumps(result))
    print(f"\n{args.calls} OpenAI calls waiting, {args.workers} web processes ({repo}):")
    print(f"  taken in: {result['taken_in']} in {result['taken_in_s']} s; answered when canceled: "
          f"{result['answered_canceled']}")
    print(f"  /healthz p95 idle {result['idle_p95_ms']:.1f} ms -> with the calls waiting {result['loaded_p95_ms']:.1f} ms "
          f"(p50 {result['loaded_p50_ms']:.1f}, max {result['loaded_max_ms']:.1f}, {result['loaded_n']} probes); "
          f"GET /api/v1/jobs meanwhile: {result['api_status']}")
    print(f"  web threads per process: {result.get('web_threads')}; Redis pattern subscriptions on the run's "
          f"database: {result.get('redis_pattern_subscribers')}")


if __name__ == "__main__":
    main()
