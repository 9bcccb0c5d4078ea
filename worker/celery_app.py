"""The worker's Celery app: built from Settings by ``create_worker_app``; nothing happens at import."""
from __future__ import annotations

import logging
import os
import socket

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from core import storage
from core.queue import QUEUES, make_celery
from core.settings import Settings
from worker import runtime

log = logging.getLogger("tingxie.worker")

TASK_MODULES = ("worker.tasks", "worker.webhooks")


def create_worker_app(settings: Settings) -> Celery:
    storage.ensure_dirs(settings)
    rt = runtime.configure(settings)
    app = make_celery(settings, include=TASK_MODULES)
    sweeper: list[runtime.Sweeper] = []

    @worker_process_init.connect(weak=False)
    def _load_models(**_):
        if settings.preload_models:
            log.info("loading the %s model set", settings.profile)
            rt.engine(settings.profile)

    @worker_ready.connect(weak=False)
    def _start_sweeper(**_):
        thread = runtime.Sweeper(rt)
        thread.start()
        sweeper.append(thread)

    @worker_shutdown.connect(weak=False)
    def _stop_sweeper(**_):
        for thread in sweeper:
            thread.stopped.set()

    return app


def run_worker(settings: Settings, *, concurrency: int = 1, loglevel: str = "INFO") -> None:
    """One process per model set: ``concurrency`` child processes, each loading its own models.
    Prefork means a child killed mid-file is noticed by the parent and its message requeued."""
    app = create_worker_app(settings)
    app.worker_main([
        "worker",
        "--queues", ",".join(QUEUES),
        "--concurrency", str(concurrency),
        "--pool", "prefork",
        "--loglevel", loglevel,
        "--hostname", f"tingxie-{os.getpid()}@{socket.gethostname()}",
        "--without-gossip",
        "--without-mingle",
    ])
