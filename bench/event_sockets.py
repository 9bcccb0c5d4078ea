"""Open job-events sockets against the production web tier as shipped (`tingxie web`, what compose
runs: 2 processes, PostgreSQL + Redis), while /healthz is timed and a file is uploaded.

Per round: /healthz latency with no socket open, then SOCKETS sockets are opened (spread over
queued jobs; a few of the jobs get progress events written as a worker writes them, so pushes
flow), /healthz is timed again while they stay open, and a file is uploaded. Printed: sockets
accepted and still open at the end, events delivered, /healthz p50/p95 idle and loaded, their
ratio (median over rounds), the upload's status and time, the web tier's memory.
Target: 1,000 sockets, /healthz p95 under 100 ms, the upload accepted.

    python -m bench.event_sockets --sockets 1000 --rounds 3
    python -m bench.event_sockets --sockets 200 --repo /path/to/other/checkout   # another version, same load

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (as the tests); takes a private
database and Redis database number and drops them after.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import requests

from bench import stop_services_on_signals
from tests.support.speech import SPEECH_DIR

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SPEECH = SPEECH_DIR / "jfk.flac"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Backends:
    """A private PostgreSQL database and Redis database number for the run."""

    def __enter__(self):
        import psycopg
        import redis

        self.db_name = f"tingxie_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self.database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.db_name}"
        for number in range(1, 16):
            client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{number}")
            if client.set("tingxie-test-lock", "1", nx=True, ex=3600):
                client.flushdb()
                client.set("tingxie-test-lock", "1", ex=3600)
                self.redis = client
                self.redis_url = f"redis://127.0.0.1:6379/{number}"
                return self
        raise RuntimeError("no free Redis database number")

    def __exit__(self, *exc):
        import psycopg

        self.redis.flushdb()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


def _env(repo: Path, data_dir: Path, backends: Backends, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINGXIE_")}
    env.update(PYTHONPATH=str(repo), PYTHONUNBUFFERED="1", TINGXIE_DATA_DIR=str(data_dir),
               TINGXIE_DATABASE_URL=backends.database_url, TINGXIE_BROKER_URL=backends.redis_url,
               TINGXIE_HOST="127.0.0.1", TINGXIE_PORT=str(port))
    return env


def _start_web(repo: Path, env: dict, log: Path, workers: int) -> subprocess.Popen:
    subprocess.run([sys.executable, "-m", "cli", "db", "upgrade"], cwd=repo, env=env, check=True,
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "cli", "web", "--workers", str(workers)], cwd=repo, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{env['TINGXIE_PORT']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/healthz", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"web did not start: {log.read_text()[-2000:]}")


def _rss_mib(proc: subprocess.Popen) -> float:
    root = psutil.Process(proc.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def _healthz(base: str, seconds: float) -> list[float]:
    """Latency of sequential GET /healthz, a new connection each (as a load balancer probes), in ms;
    a request that fails or takes over 10 s counts as 10 s."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            ok = requests.get(base + "/healthz", timeout=10).status_code == 200
        except requests.RequestException:
            ok = False
        samples.append((time.perf_counter() - started) * 1000 if ok else 10_000.0)
        time.sleep(0.05)
    return samples


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Progress(threading.Thread):
    """Writes progress events for some jobs, as a worker's heartbeat does (committed, then published
    on Redis), so the sockets watching them get pushes."""

    def __init__(self, database_url: str, redis_url: str, job_ids: list[str], per_second: float):
        super().__init__(daemon=True)
        from core.db import make_engine, make_sessionmaker

        self.factory = make_sessionmaker(make_engine(database_url), redis_url)
        self.job_ids, self.interval_s = job_ids, 1.0 / per_second
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        from core import jobs
        from core.db import session_scope

        attempts = {}
        with session_scope(self.factory) as session:
            for job_id in self.job_ids:
                attempts[job_id] = jobs.claim(session, job_id)
        step = 0
        while not self.stop.is_set():
            step += 1
            with session_scope(self.factory) as session:
                for job_id in self.job_ids:
                    jobs.report_progress(session, job_id, attempts[job_id], "asr", min(0.99, step / 10_000))
                    self.written += 1
            self.stop.wait(self.interval_s)


async def _open_sockets(base_ws: str, job_ids: list[str], count: int, hold: asyncio.Event, stats: dict) -> None:
    from websockets.asyncio.client import connect

    async def one(n: int) -> None:
        url = f"{base_ws}/api/v1/jobs/{job_ids[n % len(job_ids)]}/events"
        try:
            async with connect(url, open_timeout=30, ping_interval=None, close_timeout=1) as ws:
                first = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if first.get("type") != "snapshot":
                    return
                stats["accepted"] += 1
                stats["open"] += 1
                try:
                    while not hold.is_set():
                        try:
                            await asyncio.wait_for(ws.recv(), 0.5)
                            stats["events"] += 1
                        except TimeoutError:
                            continue
                finally:
                    stats["open"] -= 1
        except Exception as exc:  # refused, timed out, reset: counted, not raised
            stats["errors"][type(exc).__name__] = stats["errors"].get(type(exc).__name__, 0) + 1

    tasks = []
    for n in range(count):
        tasks.append(asyncio.create_task(one(n)))
        if n % 50 == 49:
            await asyncio.sleep(0.05)  # a browser fleet does not connect in one instant
    await asyncio.gather(*tasks)


def run_round(args, repo: Path, backends: Backends, tmp: Path, round_no: int) -> dict:
    port = _free_port()
    env = _env(repo, tmp / f"data{round_no}", backends, port)
    web = _start_web(repo, env, tmp / f"web{round_no}.log", args.workers)
    base, base_ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    progress = None
    try:
        job_ids = []
        for _ in range(args.jobs):
            with open(SPEECH, "rb") as fh:
                job_ids.append(requests.post(base + "/api/v1/jobs", files={"file": ("jfk.flac", fh)},
                                             timeout=60).json()["id"])
        _healthz(base, 2)  # warm
        idle = _healthz(base, args.seconds)
        progress = Progress(backends.database_url, backends.redis_url, job_ids[:args.active_jobs], 2.0)
        progress.start()
        stats = {"accepted": 0, "open": 0, "events": 0, "errors": {}}
        hold = asyncio.Event()
        loop = asyncio.new_event_loop()
        opener = threading.Thread(target=lambda: loop.run_until_complete(
            _open_sockets(base_ws, job_ids, args.sockets, hold, stats)), daemon=True)
        started = time.monotonic()
        opener.start()
        while stats["accepted"] + sum(stats["errors"].values()) < args.sockets and time.monotonic() - started < 120:
            time.sleep(0.2)
        opened_s = time.monotonic() - started
        upload_result: dict = {}

        def upload() -> None:
            t0 = time.perf_counter()
            with open(SPEECH, "rb") as fh:
                r = requests.post(base + "/api/v1/jobs", files={"file": ("during.flac", fh)}, timeout=120)
            upload_result.update(status=r.status_code, seconds=time.perf_counter() - t0)

        uploader = threading.Thread(target=upload)
        uploader.start()
        loaded = _healthz(base, args.seconds)
        uploader.join(130)
        rss = _rss_mib(web)
        still_open = stats["open"]
        loop.call_soon_threadsafe(hold.set)
        opener.join(30)
        return {"accepted": stats["accepted"], "still_open": still_open, "events": stats["events"],
                "errors": stats["errors"], "opened_s": opened_s, "idle_p50": _p(idle, 0.5), "idle_p95": _p(idle, 0.95),
                "loaded_p50": _p(loaded, 0.5), "loaded_p95": _p(loaded, 0.95), "loaded_max": max(loaded),
                "loaded_n": len(loaded), "upload": upload_result, "web_rss_mib": rss,
                "progress_events_written": progress.written}
    finally:
        if progress is not None:
            progress.stop.set()
        os.killpg(web.pid, 15)
        try:
            web.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, 9)


def main() -> None:
    stop_services_on_signals()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=50, help="queued jobs the sockets watch")
    parser.add_argument("--active-jobs", type=int, default=10, help="jobs that get 2 progress events a second")
    parser.add_argument("--seconds", type=float, default=15, help="how long /healthz is timed, idle and loaded")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="web processes (compose runs 2)")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose `tingxie web` is measured")
    args = parser.parse_args()
    results = []
    with Backends() as backends, tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            result = run_round(args, args.repo.resolve(), backends, Path(tmp), n)
            results.append(result)
            print(f"round {n + 1}: {json.dumps(result)}", flush=True)
    ratios = [r["loaded_p95"] / r["idle_p95"] for r in results]
    print(f"\n{args.sockets} sockets requested, {args.workers} web processes ({args.repo}):")
    print(f"  accepted {[r['accepted'] for r in results]}, still open at the end {[r['still_open'] for r in results]}, "
          f"events delivered {[r['events'] for r in results]}")
    print(f"  /healthz p95 idle {[round(r['idle_p95'], 1) for r in results]} ms -> with the sockets open "
          f"{[round(r['loaded_p95'], 1) for r in results]} ms (p50 {[round(r['loaded_p50'], 1) for r in results]}, "
          f"max {[round(r['loaded_max'], 1) for r in results]}); loaded/idle median {statistics.median(ratios):.2f}")
    print(f"  upload during: {[r['upload'] for r in results]}")
    print(f"  web tier RSS with the sockets open: {[round(r['web_rss_mib']) for r in results]} MiB")


if __name__ == "__main__":
    main()
