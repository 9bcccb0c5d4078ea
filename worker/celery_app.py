"""The worker's Celery app: built from Settings by ``create_worker_app``; nothing happens at import."""
from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown

from core import storage
from core.metrics import use_multiprocess_dir
from core.queue import make_celery, queues_for
from core.settings import Settings
from worker import metrics as worker_metrics
from worker import runtime
from worker.engines import check_profile_options
from worker.registry import Announcer, node_name

log = logging.getLogger("tingxie.worker")

TASK_MODULES = ("worker.tasks", "worker.webhooks")


def create_worker_app(settings: Settings) -> Celery:
    storage.ensure_dirs(settings)
    rt = runtime.configure(settings)
    app = make_celery(settings, include=TASK_MODULES)
    worker_metrics.install(settings)
    sweeper: list[runtime.Sweeper] = []
    announcer: list[Announcer] = []

    def _load_models(**_):
        if settings.preload_models:
            for profile in settings.served_profiles:
                log.info("loading the %s model set", profile)
                rt.engine(profile)

    # prefork: in each child (never in the parent, which forks them); threads: in the one process.
    if settings.worker_threads > 1:
        worker_init.connect(_load_models, weak=False)
    else:
        worker_process_init.connect(_load_models, weak=False)

    @worker_ready.connect(weak=False)
    def _start_sweeper(**_):
        thread = runtime.Sweeper(rt)
        thread.start()
        sweeper.append(thread)
        announcing = Announcer(rt, node_name(), collect=worker_metrics.collect)
        announcing.start()
        announcer.append(announcing)

    @worker_shutdown.connect(weak=False)
    def _stop_sweeper(**_):
        for thread in sweeper:
            thread.stopped.set()
        for announcing in announcer:
            announcing.stop()

    return app


def run_worker(settings: Settings, *, concurrency: int = 1, loglevel: str = "INFO") -> None:
    """One process per model set: ``concurrency`` child processes, each loading its own models.
    It consumes the queues of ``settings.served_profiles`` only (and webhook deliveries). Prefork means a child killed mid-file is noticed by the parent and its message requeued.

    With ``settings.worker_threads`` above 1 the worker is one process running that many jobs at
    once in threads over one model set (a GPU worker); a killed process's jobs come back through
    the broker and the sweeper like any other.
    """
    if settings.worker_threads > 1 and concurrency > 1:
        raise ValueError(
            f"TINGXIE_WORKER_THREADS={settings.worker_threads} runs one process holding one model set; "
            f"for more processes start more workers (several may share a GPU: TINGXIE_DEVICE=cuda:N) "
            f"instead of --concurrency {concurrency}"
        )
    check_profile_options(settings)  # a misspelled TINGXIE_MODEL_* stops the worker here, not each job
    pool, slots = ("threads", settings.worker_threads) if settings.worker_threads > 1 else ("prefork", concurrency)
    # The pool's processes share their metrics through files the announcer reads (worker.metrics).
    use_multiprocess_dir(settings.scratch_dir / "metrics" / f"worker-{os.getpid()}")
    app = create_worker_app(settings)
    app.worker_main([
        "worker",
        "--queues", ",".join(queues_for(settings.served_profiles)),
        "--concurrency", str(slots),
        "--pool", pool,
        "--loglevel", loglevel,
        "--hostname", node_name(),
        "--without-gossip",
        "--without-mingle",
    ])
