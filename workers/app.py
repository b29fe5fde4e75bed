"""The worker's Celery app: `celery -A workers.app worker` (or `trainlab worker`)."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutting_down
from threadpoolctl import threadpool_limits

from core.db import get_engine, session_scope
from core.operations import WorkerRepository
from core.repositories import RunRepository
from core.resources import DEFAULT_QUEUE, GPU_QUEUE_PREFIX, parse_queues
from core.settings import get_settings
from workers import tasks  # noqa: F401  (registers the task)
from workers.limits import apply_memory_budget
from workers.reconcile import Reconciler, heartbeat
from workers.tasks import app

__all__ = ["app"]
log = logging.getLogger(__name__)
app.conf.worker_max_tasks_per_child = get_settings().worker_max_tasks_per_child
_reconciler: Reconciler | None = None
_blas_limits: Any = None  # kept: the limits hold for this process's life


@worker_init.connect
def _check_schema(**_: Any) -> None:
    """Work only on a database at this code's schema (`trainlab migrate` upgrades it)."""
    from core.migrate import require_current_schema

    try:
        require_current_schema(get_engine())
    except Exception as exc:  # not caught by Celery's signal dispatch: SystemExit stops the worker
        log.critical("this worker cannot work on the database: %s", exc)
        raise SystemExit(f"trainlab worker: {exc}") from exc


@worker_init.connect
def _sweep_data_parallel_folders(**_: Any) -> None:
    """Remove the folders (users' training rows) that data-parallel runs of a worker killed with
    SIGKILL left in the temporary directory: those whose owner process is gone."""
    from ml.training import run_folders

    for path in run_folders.sweep():
        log.warning("removed %s, left by a data-parallel run whose process is gone", path)


@worker_process_init.connect
def _init_worker_process(**_: Any) -> None:
    """In each forked worker process: limit torch's threads (processes x threads <= cores) and
    drop database connections inherited from the parent."""
    apply_memory_budget(get_settings().worker_memory_mb)
    threads = get_settings().threads_per_worker_process()
    # numpy and scikit-learn were imported in the parent before it forked (the task module
    # imports them): their BLAS/OpenMP pools keep the parent's size unless limited here too.
    global _blas_limits
    _blas_limits = threadpool_limits(limits=threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    # Threads that sleep when idle: spinning ones slow everyone down on a shared server.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)
    get_engine().dispose(close=False)


@worker_ready.connect
def _start_reconciler(sender: Any = None, **_: Any) -> None:
    """Repair lost work at start, then periodically."""
    global _reconciler
    name = str(getattr(sender, "hostname", "") or _hostname())
    queues, gpus = advertised()
    # The first heartbeat from here: /health and `trainlab doctor` count this worker alive once it
    # can take work, not once the reconciler's spawned process has imported everything (seconds).
    try:
        heartbeat(name, get_settings().worker_concurrency, queues, gpus)
    except Exception:
        log.exception("first heartbeat failed (the reconciler beats next)")
    finally:
        get_engine().dispose()  # no connection of this process's left open for the children forked later
    _reconciler = Reconciler(name, get_settings().worker_concurrency, queues, gpus)
    _reconciler.start()


@worker_shutting_down.connect
def _drain(sender: Any = None, sig: str | None = None, how: str | None = None, **_: Any) -> None:
    """Graceful shutdown (SIGTERM): ask this worker's runs to checkpoint and go back to the
    queue instead of running to the end or being lost."""
    if _reconciler is not None:
        _reconciler.stop()
    hostname = str(sender) if sender else _hostname()
    try:
        with session_scope() as session:
            count = RunRepository(session).request_interrupt(f"{hostname}/")
            WorkerRepository(session).forget(hostname)
            session.commit()
        log.warning("shutting down (%s, %s): %d running experiment(s) will be re-queued", sig, how, count)
    except Exception:
        log.exception("could not ask running experiments to re-queue")


def advertised() -> tuple[list[str], int]:
    """What this worker serves: the queues it consumes (`-Q`) and its GPUs (`trainlab worker
    --gpus`, else as many as its highest gpuN queue)."""
    queues = list(app.amqp.queues.consume_from) or [DEFAULT_QUEUE]
    ids = get_settings().worker_gpus
    if ids is not None:
        return queues, len(parse_queues(ids))
    sizes = [q[len(GPU_QUEUE_PREFIX) :] for q in queues if q.startswith(GPU_QUEUE_PREFIX)]
    return queues, max((int(n) for n in sizes if n.isdigit()), default=0)


def _hostname() -> str:
    import sys

    # `-n name@host` on the command line is the worker's hostname; tasks see the same one.
    args = sys.argv
    for i, arg in enumerate(args):
        if arg == "-n" and i + 1 < len(args):
            return args[i + 1].replace("%h", os.uname().nodename)
        if arg.startswith("--hostname="):
            return arg.split("=", 1)[1].replace("%h", os.uname().nodename)
    return f"celery@{os.uname().nodename}"
