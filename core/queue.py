"""The queue client: Celery configured from Settings; tasks are sent by name with ids only.

Both tiers build their Celery app here, so the web tier can send without importing any task
code, and the worker consumes exactly what the web sends.

Each model profile has its own two queues, ``tingxie.<profile>.interactive`` and
``tingxie.<profile>``: a worker consumes only the profiles it can load, so a funasr job never
reaches a worker without FunASR models. Webhook deliveries go to ``tingxie.webhooks``, which
every worker consumes.
"""
from __future__ import annotations

from celery import Celery
from kombu import Queue

from core.settings import PROFILES, Settings

TRANSCRIBE = "tingxie.transcribe"
DELIVER_WEBHOOK = "tingxie.deliver_webhook"
# A batch's one webhook when it ends (core.batches), on the same queue.
DELIVER_BATCH_WEBHOOK = "tingxie.deliver_batch_webhook"
# A done job's transcript written to its output_url (core.delivery); on the webhook queue.
DELIVER_OUTPUT = "tingxie.deliver_output"
# Every worker consumes it, whatever its profiles: deliveries need no model.
WEBHOOK_QUEUE = "tingxie.webhooks"


def batch_queue(profile: str) -> str:
    return f"tingxie.{profile}"


def interactive_queue(profile: str) -> str:
    return f"tingxie.{profile}.interactive"


def transcribe_queue(profile: str, priority: int) -> str:
    """Where a job's task goes: its profile's interactive queue when it has priority, else batch."""
    return interactive_queue(profile) if priority > 0 else batch_queue(profile)


def queues_for(profiles: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """What a worker serving ``profiles`` consumes, in the order it prefers: every interactive
    queue before any batch queue, then the webhook queue."""
    return (*(interactive_queue(p) for p in profiles), *(batch_queue(p) for p in profiles), WEBHOOK_QUEUE)


# Every queue of the deployment (metrics read their depth).
ALL_QUEUES = queues_for(PROFILES)


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
        # The filesystem:// URL names kombu's transport; ours writes each message whole first (core.fsbroker).
        broker_transport="core.fsbroker:Transport" if settings.embedded_broker else None,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=WEBHOOK_QUEUE,
        task_queues=[Queue(name) for name in ALL_QUEUES],
        worker_hijack_root_logger=False,
        # Task events (sent, received, started, succeeded...) on the broker's event exchange, so
        # Flower and other Celery monitors see the tasks live. The embedded filesystem broker has
        # no fanout exchange for them (and nothing to watch it).
        worker_send_task_events=not settings.embedded_broker,
        task_send_sent_event=not settings.embedded_broker,
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

    def send(self, name: str, args: list, *, queue: str = WEBHOOK_QUEUE) -> None:
        self.app.send_task(name, args=args, queue=queue, retry=True,
                           retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5})

    def send_transcribe(self, job_id: str, *, profile: str, priority: int = 0) -> None:
        """The job's task, on its profile's queue: only workers that load that profile take it."""
        self.send(TRANSCRIBE, [job_id], queue=transcribe_queue(profile, priority))

    def close(self) -> None:
        """Close the broker connections this client opened (its Celery app's pools)."""
        if self._app is not None:
            self._app.close()
            self._app = None

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
