"""Batches: how long a batch of 1,000 short links takes to submit (one POST of its sources, timed
from the request to its 201, then a GET of the batch); how long a batch of 1,000 short files takes
(an open batch, the files uploaded into it by 8 clients at once, then closed); the web tier's RSS
meanwhile; then the zip of 1,000 transcripts (jobs ended directly through core) streamed, with the
web tier's RSS sampled as it goes.

    python -m bench.batches [--links 1000] [--files 1000] [--clients 8] [--only links files zip]

Runs its own web tier (one process) on a private PostgreSQL database and Redis number; no worker
(the jobs stay queued: submission is what is measured). Figures, not a timed test.
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench import stop_services_on_signals
from bench.event_sockets import REPO, Backends, _env, _free_port, _rss_mib, _start_web

TRANSCRIPT = {"text": "今天天气很好，我们去公园散步吧。", "language": "zh", "duration_ms": 1000, "segments": [
    {"start_ms": 0, "end_ms": 1000, "text": "今天天气很好，我们去公园散步吧。",
     "words": [{"start_ms": 0, "end_ms": 1000, "text": "今天天气很好"}]}]}


def _short_wav(target: Path) -> Path:
    """One second of real speech (the start of tests/data/speech/asr_example.wav)."""
    with wave.open(str(REPO / "tests" / "data" / "speech" / "asr_example.wav"), "rb") as src:
        frames = src.readframes(src.getframerate())
        params = src.getparams()
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return target


def _submit(base: str, wav: Path, files: int, clients: int, web) -> dict:
    rss = [_rss_mib(web)]
    started = time.perf_counter()
    batch = requests.post(base + "/api/v1/batches", json={"name": "bench"}, timeout=60).json()
    data = wav.read_bytes()

    def upload(n: int) -> int:
        r = requests.post(f"{base}/api/v1/batches/{batch['id']}/files", files={"file": (f"{n}.wav", data)},
                          data={"key": f"calls/{n:05d}.wav"}, timeout=120)
        if n % 100 == 0:
            rss.append(_rss_mib(web))
        return r.status_code

    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(upload, range(files)))
    closed = requests.post(f"{base}/api/v1/batches/{batch['id']}/close", timeout=60).json()
    elapsed = time.perf_counter() - started
    rss.append(_rss_mib(web))
    return {"elapsed_s": elapsed, "accepted": statuses.count(202), "total": closed["total"], "rss": rss}


class _Sampler:
    """The web tier's RSS every ``interval`` s on a thread, while a request is in flight."""

    def __init__(self, web, interval: float = 0.05) -> None:
        self.web, self.interval, self.rss = web, interval, [_rss_mib(web)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.rss.append(_rss_mib(self.web))

    def __enter__(self) -> "_Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.rss.append(_rss_mib(self.web))


def _links(base: str, count: int, web) -> dict:
    """One POST of a batch of ``count`` short http links (never fetched: no worker runs), then a GET of it."""
    sources = [f"http://media.example.com/calls/{n:05d}.wav" for n in range(count)]
    with _Sampler(web) as sampler:
        started = time.perf_counter()
        r = requests.post(base + "/api/v1/batches", json={"name": f"links-{count}", "sources": sources}, timeout=600)
        created_s = time.perf_counter() - started
        assert r.status_code == 201, (r.status_code, r.text[:500])
        started = time.perf_counter()
        got = requests.get(base + r.json()["links"]["self"], timeout=60)
        get_s = time.perf_counter() - started
        got.raise_for_status()
    time.sleep(1)  # what the web tier holds once the request is over
    body = got.json()
    return {"created_s": created_s, "get_s": get_s, "total": body["total"], "status": body["status"],
            "counts": body["counts"], "rss": sampler.rss + [_rss_mib(web)]}


def _finished_batch(database_url: str, count: int) -> str:
    """A closed batch of ``count`` done jobs with transcripts, written through core as workers write them."""
    from core import batches, jobs
    from core.db import make_engine, make_sessionmaker, session_scope
    from core.models import Batch
    from core.options import JobOptions

    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        batch_id = batches.create(s, JobOptions(profile="offline"), tenant="local", name="zip", open_=False).id
    for start in range(0, count, 200):
        with session_scope(factory) as s:
            for n in range(start, min(count, start + 200)):
                job_id = jobs.new_job_id()
                jobs.create_job(s, job_id=job_id, options=JobOptions(profile="offline"),
                                media_key=f"{job_id}/source.wav", filename=f"{n}.wav", size_bytes=1,
                                duration_ms=1000, tenant="local", batch_id=batch_id, batch_key=f"calls/{n:05d}.wav")
                jobs.complete(s, job_id, jobs.claim(s, job_id), TRANSCRIPT)
    with session_scope(factory) as s:
        batches.finish_if_ended(s, batch_id)
        assert s.get(Batch, batch_id).finished_at is not None
    engine.dispose()
    return batch_id


def _zip(base: str, batch_id: str, web) -> dict:
    rss = [_rss_mib(web)]
    started = time.perf_counter()
    size = 0
    with requests.get(f"{base}/api/v1/batches/{batch_id}/transcripts.zip?format=srt,json", stream=True,
                      timeout=300) as r:
        r.raise_for_status()
        for n, chunk in enumerate(r.iter_content(64 * 1024)):
            size += len(chunk)
            if n % 4 == 0:
                rss.append(_rss_mib(web))
    rss.append(_rss_mib(web))
    return {"elapsed_s": time.perf_counter() - started, "bytes": size, "rss": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--links", type=int, default=1000)
    parser.add_argument("--only", nargs="+", choices=("links", "files", "zip"), default=("links", "files", "zip"))
    args = parser.parse_args()
    stop_services_on_signals()
    with tempfile.TemporaryDirectory(prefix="tingxie-bench-batches-") as tmp_name, Backends() as backends:
        tmp = Path(tmp_name)
        env = _env(REPO, tmp / "data", backends, _free_port())
        env.update(TINGXIE_RATE_LIMIT="off", TINGXIE_UPLOAD_RATE_LIMIT="off",
                   TINGXIE_TENANT_MAX_JOBS=str((args.files + args.links) * 4))
        web = _start_web(REPO, env, tmp / "web.log", 1)
        base = f"http://127.0.0.1:{env['TINGXIE_PORT']}"
        try:
            requests.post(base + "/api/v1/batches", json={}, timeout=60)  # warm: the first request loads the app
            linked = _links(base, args.links, web) if "links" in args.only else None
            submitted = (_submit(base, _short_wav(tmp / "one.wav"), args.files, args.clients, web)
                         if "files" in args.only else None)
            zipped = _zip(base, _finished_batch(backends.database_url, args.files), web) if "zip" in args.only else None
        finally:
            web.terminate()
            web.wait(30)
    if linked:
        _report_links(args.links, linked)
    if submitted:
        _report_files(args, submitted)
    if zipped:
        _report_zip(args, zipped)


def _report_links(count: int, linked: dict) -> None:
    print(f"batch of {count} short http links, one POST /api/v1/batches (request to 201):")
    print(f"  {linked['created_s']:.2f} s ({count / linked['created_s']:.0f} links/s); target <= 10 s: "
          f"{'met' if linked['created_s'] <= 10 else 'NOT met'}")
    print(f"  GET of the batch: {linked['get_s'] * 1000:.0f} ms; status {linked['status']}, total {linked['total']}, "
          f"counts {linked['counts']}")
    s = linked["rss"]
    print(f"  web tier RSS: {s[0]:.0f} MiB before, {max(s):.0f} MiB at most, {s[-1]:.0f} MiB after "
          f"({len(s)} samples)")


def _report_files(args, submitted: dict) -> None:
    print(f"batch of {args.files} one-second files uploaded into an open batch by {args.clients} clients, then closed:")
    print(f"  {submitted['elapsed_s']:.1f} s ({args.files / submitted['elapsed_s']:.0f} files/s), "
          f"{submitted['accepted']} accepted, batch total {submitted['total']}")
    s = submitted["rss"]
    print(f"  web tier RSS: {s[0]:.0f} MiB before, {max(s):.0f} MiB at most, {s[-1]:.0f} MiB after "
          f"(samples every 100 files: {', '.join(f'{v:.0f}' for v in s)})")


def _report_zip(args, zipped: dict) -> None:
    z = zipped["rss"]
    print(f"zip of {args.files} transcripts (srt and json each, and jobs.jsonl): {zipped['bytes'] / 2**20:.1f} MiB "
          f"in {zipped['elapsed_s']:.1f} s")
    print(f"  web tier RSS: {z[0]:.0f} MiB before, {max(z):.0f} MiB at most, {z[-1]:.0f} MiB after")


if __name__ == "__main__":
    main()
