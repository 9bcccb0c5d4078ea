"""The worker's Celery app: built from Settings by ``create_worker_app``; nothing happens at import."""
from __future__ import annotations

import logging
import os
import threading

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown, worker_shutting_down

from core import storage
from core.metrics import use_multiprocess_dir
from core.queue import make_celery, queues_for
from core.settings import Settings
from worker import lifeline
from worker import metrics as worker_metrics
from worker import runtime
from worker.engines import check_profile_options
from worker.registry import Announcer, node_name
from worker.startup import LoadGuard, load_in_background

log = logging.getLogger("tingxie.worker")

TASK_MODULES = ("worker.tasks", "worker.webhooks", "worker.delivery")


def create_worker_app(settings: Settings) -> Celery:
    storage.ensure_dirs(settings)
    rt = runtime.configure(settings)
    app = make_celery(settings, include=TASK_MODULES)
    worker_metrics.install(settings, lambda: rt.factory)
    # How long Celery waits for the result of a pool process that died (10 s by default) before
    # handling its loss. Results are ignored here, and a process ended for a stopped attempt
    # (worker.attempt) would hold a shutting-down worker that long.
    app.conf.worker_lost_wait = 1.0
    sweeper: list[runtime.Sweeper] = []
    announcer: list[Announcer] = []

    def load_all() -> None:
        for profile in settings.served_profiles:
            rt.engine(profile)  # logs "loading the ... model set" and "loaded ..."

    def _load_models(**_):
        if settings.preload_models:
            load_all()

    def _start_pool_process(**_):
        """A prefork pool process reports ready at once and loads its models in a thread: no
        start-up timeout can kill it mid-load (worker.startup). It ends with the main process, not
        with the pool's thread that forked it (worker.lifeline)."""
        lifeline.outlive_forking_thread()
        rt.may_end_process = True
        if settings.preload_models:
            load_in_background(load_all)

    # threads: in the one process, before it consumes; prefork: in each pool process, after it is up.
    if settings.worker_threads > 1:
        worker_init.connect(_load_models, weak=False)
    else:
        rt.load_guard = LoadGuard(slots=64)  # made before the pool forks, shared by its processes
        lifeline.install()
        worker_process_init.connect(_start_pool_process, weak=False)

    @worker_shutting_down.connect(weak=False)
    def _hand_back(sender=None, **_):
        """Warm shutdown (SIGTERM): the running jobs go back to the queue now, so another worker
        takes them at once; the pool's processes see it at their next heartbeat and stop. In a
        thread: this is called from the signal handler."""
        def run():
            try:
                ids = rt.hand_back(sender)
                if ids:
                    log.info("shutting down: handed back %d running job(s): %s", len(ids), ", ".join(ids))
            except Exception:
                log.warning("could not hand back running jobs; they come back after the lease", exc_info=True)

        threading.Thread(target=run, name="tingxie-hand-back").start()

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
