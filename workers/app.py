"""The worker's Celery app: `celery -A workers.app worker` (or `trainlab worker`)."""

from __future__ import annotations

import os
from typing import Any

from celery.signals import worker_process_init

from core.db import get_engine
from core.settings import get_settings
from workers import tasks  # noqa: F401  (registers the task)
from workers.tasks import app

__all__ = ["app"]


@worker_process_init.connect
def _init_worker_process(**_: Any) -> None:
    """In each forked worker process: limit torch's threads (processes x threads <= cores) and
    drop database connections inherited from the parent."""
    threads = get_settings().threads_per_worker_process()
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
    get_engine().dispose(close=False)
