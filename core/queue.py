"""The queue client: Celery configured from Settings; tasks are sent by name with ids only.

Both tiers build their Celery app here, so the web tier can send without importing any task
code, and the worker consumes exactly what the web sends.
"""
from __future__ import annotations

from celery import Celery
from kombu import Queue

from core.settings import Settings

TRANSCRIBE = "tingxie.transcribe"
DELIVER_WEBHOOK = "tingxie.deliver_webhook"
BATCH_QUEUE = "tingxie"
INTERACTIVE_QUEUE = "tingxie.interactive"
# Listed first: a worker takes interactive work before batch work.
QUEUES = (INTERACTIVE_QUEUE, BATCH_QUEUE)


def visibility_timeout_s(settings: Settings) -> int:
    """Above the longest allowed job (CPU decoding can run near real time), so Redis never
    hands a healthy long job to a second worker."""
    return int(settings.max_duration_s * 2 + 3600)


def make_celery(settings: Settings, *, include: tuple[str, ...] = ()) -> Celery:
    app = Celery("tingxie", broker=settings.broker_url, include=list(include))
    transport_options: dict = {"visibility_timeout": visibility_timeout_s(settings)}
    if settings.embedded_broker:
        folder = settings.broker_dir / "queue"
        folder.mkdir(parents=True, exist_ok=True)
        (settings.broker_dir / "control").mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(settings.broker_dir / "control"),
            "store_processed": False,
            # A directory scan is cheap; the default 1 s would add up to a second to every job.
            "polling_interval": 0.1,
        }
    else:
        transport_options["queue_order_strategy"] = "priority"
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=BATCH_QUEUE,
        task_queues=[Queue(name) for name in QUEUES],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


class QueueClient:
    """Sends tasks by name. Built lazily: constructing it connects to nothing."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._app: Celery | None = None

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = make_celery(self.settings)
        return self._app

    def send(self, name: str, args: list, *, queue: str = BATCH_QUEUE) -> None:
        self.app.send_task(name, args=args, queue=queue, retry=True,
                           retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5})

    def send_transcribe(self, job_id: str, *, profile: str, priority: int = 0) -> None:
        """The job's task. Every worker consumes every profile's jobs from the same two queues
        (``profile`` is accepted so that the route can depend on it)."""
        self.send(TRANSCRIBE, [job_id], queue=INTERACTIVE_QUEUE if priority > 0 else BATCH_QUEUE)

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
