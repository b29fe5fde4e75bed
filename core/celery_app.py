"""The Celery app object and task names. The API sends tasks by name; only workers import the
task code."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

import core.broker  # noqa: F401  (filesystem:// publishes atomically: core/broker.py)
from core.resources import CPU_QUEUE, DEFAULT_QUEUE, gpu_queue
from core.settings import Settings, get_settings

TASK_RUN_EXPERIMENT = "trainlab.run_experiment"
MAX_GPU_QUEUE = 16  # gpu1..gpu16: the most GPUs one spec may ask for (ml.spec.base.MAX_GPUS)


def make_celery(settings: Settings) -> Celery:
    """A Celery app for long jobs: late acks, one prefetched task, no result backend (the
    database holds every result)."""
    app = Celery("trainlab", broker=settings.resolved_broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=DEFAULT_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    if app.conf.broker_url.startswith("filesystem"):
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        app.conf.broker_transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": settings.broker_polling_interval,
        }
    else:
        # Redis: long trainings must not be redelivered while still running (the database lease
        # decides about lost runs); priorities 0..9 are served in order.
        app.conf.broker_transport_options = {
            "visibility_timeout": 12 * 3600,
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
        }
    return app


@lru_cache
def get_celery_app() -> Celery:
    """The process-wide Celery app for the configured broker."""
    return make_celery(get_settings())


# Message priority by the spec's priority (Redis: 0 is served first; the filesystem broker of the
# single-user embedded default keeps plain FIFO order).
PRIORITIES = {"high": 0, "normal": 5, "low": 9}


def send_run_experiment(experiment_id: int, priority: str = "normal", queue: str = DEFAULT_QUEUE) -> None:
    """Queue "run experiment N" (the only thing the broker ever carries) on the queue of its
    resource class (`core.resources.queue_for` of its spec).

    The queue is declared again on every send: kombu remembers what it declared, but a Redis
    restarted without persistence has forgotten the queue's binding, and a message sent to an
    unbound exchange is silently dropped.
    """
    app = get_celery_app()
    with app.producer_or_acquire() as producer:
        producer.connection.declared_entities.clear()
        app.send_task(
            TASK_RUN_EXPERIMENT,
            args=[experiment_id],
            queue=queue,
            priority=PRIORITIES.get(priority, 5),
            producer=producer,
        )


def all_queues() -> list[str]:
    """Every queue an experiment can be sent to."""
    return [DEFAULT_QUEUE, CPU_QUEUE] + [gpu_queue(n) for n in range(1, MAX_GPU_QUEUE + 1)]


def queued_message_count(queue: str | None = None) -> int:
    """Messages waiting in one of the broker's queues, or in all of them (an empty Redis queue
    has no key at all)."""
    with get_celery_app().connection_for_write() as conn:
        return sum(int(conn.default_channel._size(q)) for q in ([queue] if queue else all_queues()))
