"""Hosts with nothing shared: a services host (PostgreSQL, Redis, an S3 server), a web host and
worker hosts, each a Linux network namespace on a private subnet, each tingxie host with its own
data and scratch directories. Jobs submitted to the web host over the network finish on both
workers; a worker host whose link is cut mid-job loses the job to the other worker once its lease
runs out; a host added at run time takes work with nobody restarted."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.settings import make_settings
from tests.support.service import Service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

LEASE_S = 6.0


def _node(proc: subprocess.Popen, hostname: str) -> str:
    return f"tingxie-{proc.pid}@{hostname}"


def _longer(audio: Path, times: int, out: Path) -> Path:
    """``audio`` ``times`` over, one file: a job long enough to be cut in the middle of."""
    from media import find_ffmpeg

    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", str(times - 1),
                    "-i", str(audio), "-c:a", "flac", str(out)], check=True)
    return out


def _nothing_in_common(hosts: list) -> bool:
    """No host's data or scratch directory is, holds or lies within another host's."""
    dirs = [[Path(s.data_dir).resolve(), Path(s.scratch_dir).resolve()] for s in hosts]
    return all(not (a.is_relative_to(b) or b.is_relative_to(a))
               for i, mine in enumerate(dirs) for theirs in dirs[i + 1:] for a in mine for b in theirs)


def test_three_hosts_nothing_shared(subnet, tmp_path, speech_path):
    from core.migrate import upgrade
    from tests.support.s3 import S3Server
    from tests.support.servers import PrivatePostgres, PrivateRedis

    services = subnet.add_host("svc")
    web_host = subnet.add_host("web")
    worker_hosts = [subnet.add_host("wa"), subnet.add_host("wb")]

    pg = PrivatePostgres(host=services.address, prefix=services.prefix, clients=subnet.cidr)
    redis = PrivateRedis(host=services.address, prefix=services.prefix)
    s3 = None
    service = None
    try:
        pg.start()
        redis.start()
        (tmp_path / "services").mkdir()
        s3 = S3Server.start(tmp_path / "services" / "moto.log", host=services.address, prefix=services.prefix)
        bucket = s3.new_bucket()
        shared = dict(database_url=pg.url, broker_url=redis.url, job_lease_s=LEASE_S,
                      **s3.storage_settings(bucket))
        web = make_settings(tmp_path / "web-host", host=web_host.address, **shared)
        workers = {h.name: make_settings(tmp_path / f"{h.name}-host", **shared) for h in worker_hosts}
        assert _nothing_in_common([web, *workers.values()])

        upgrade(web)  # the migration, run from outside every host as an operator's job would be
        # Off the loopback the web tier asks every caller for a token (auth "auto").
        from core import tokens
        from core.db import make_engine, make_sessionmaker, session_scope

        token_engine = make_engine(web.database_url)
        with session_scope(make_sessionmaker(token_engine)) as session:
            auth = {"Authorization": f"Bearer {tokens.create(session, tenant='hosts').secret}"}
        token_engine.dispose()
        (tmp_path / "logs").mkdir()
        service = Service(settings=web, log_dir=tmp_path / "logs", web_prefix=web_host.prefix)
        service.start_web()
        assert service.base_url.startswith(f"http://{web_host.address}:")
        procs = {h.name: service.start_worker(settings=workers[h.name], prefix=h.named(h.name))
                 for h in worker_hosts}
        nodes = {name: _node(proc, name) for name, proc in procs.items()}
        engine = create_engine(pg.url)

        def ran_on(job_id: str) -> str:
            with engine.connect() as conn:
                return conn.execute(text("select worker from jobs where id = :id"), {"id": job_id}).scalar_one()

        # 1. Jobs submitted to the web host over the network finish on both workers.
        audio = speech_path("jfk.flac")
        ids = [service.submit(audio, headers=auth, language="en")["id"] for _ in range(4)]
        for job_id in ids:
            assert service.wait(job_id, headers=auth)["status"] == "done"
        first = {job_id: ran_on(job_id) for job_id in ids}
        print("jobs per worker host:", {n: list(first.values()).count(node) for n, node in nodes.items()})
        assert set(first.values()) == set(nodes.values()), first

        # 2. A worker host's link is cut mid-job: the other worker takes the job once its lease runs out.
        long_audio = _longer(audio, 4, tmp_path / "long.flac")
        job_id = service.submit(long_audio, headers=auth, language="en")["id"]
        deadline = time.monotonic() + 300
        while (job := service.job(job_id, auth))["status"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job["status"] == "running", job
        cut_node = ran_on(job_id)
        cut_name = next(name for name, node in nodes.items() if node == cut_node)
        other = next(name for name in nodes if name != cut_name)
        cut_at = time.monotonic()
        next(h for h in worker_hosts if h.name == cut_name).cut()
        job = service.wait(job_id, timeout_s=600, headers=auth)
        recovered_s = time.monotonic() - cut_at
        assert job["status"] == "done", job
        assert ran_on(job_id) == nodes[other]
        with engine.connect() as conn:
            attempt, lost = conn.execute(text("select attempt, lost_attempts from jobs where id = :id"),
                                         {"id": job_id}).one()
            events = conn.execute(text("select type, data, created_at from job_events where job_id = :id order by id"),
                                  {"id": job_id}).all()
            transcripts = conn.execute(text("select count(*) from transcripts where job_id = :id"),
                                       {"id": job_id}).scalar_one()
        assert attempt == 2 and lost == 1, (attempt, lost)
        assert transcripts == 1 and [e.type for e in events].count("done") == 1
        requeued = [e for e in events if e.type == "queued" and e.data.get("lost_attempts") == 1]
        assert len(requeued) == 1, events
        claimed = [e for e in events if e.type == "running"]
        requeue_after_s = (requeued[0].created_at - claimed[0].created_at).total_seconds()
        print(f"link cut on {cut_name} mid-job: finished on {other}, lease {LEASE_S:.0f} s, "
              f"requeued {requeue_after_s:.1f} s after the first claim, done {recovered_s:.1f} s after the cut; "
              f"jobs lost 0, duplicated 0")

        # 3. A fourth host joins at run time and takes work; nobody else is restarted.
        survivor = procs[other]
        added = subnet.add_host("wc")
        added_settings = make_settings(tmp_path / "wc-host", **shared)
        assert _nothing_in_common([web, *workers.values(), added_settings])
        added_proc = service.start_worker(settings=added_settings, prefix=added.named("wc"))
        added_node = _node(added_proc, "wc")
        ids = [service.submit(audio, headers=auth, language="en")["id"] for _ in range(3)]
        for new_id in ids:
            assert service.wait(new_id, headers=auth)["status"] == "done"
        later = [ran_on(new_id) for new_id in ids]
        print("after the fourth host joined:", {"wc": later.count(added_node), other: later.count(nodes[other])})
        assert added_node in later, later
        assert service.web.poll() is None and survivor.poll() is None  # never restarted
        assert set(later) <= {added_node, nodes[other]}
        service.kill_worker(procs[cut_name])  # the cut host: nothing more to hear from it
        engine.dispose()
    finally:
        if service is not None:
            service.discard()
        if s3 is not None:
            s3.stop()
        redis.stop()
        pg.remove()
