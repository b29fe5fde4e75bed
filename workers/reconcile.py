"""The reconciler: repairs what the broker or a dead worker lost. It runs when a worker starts
and then periodically in every worker; each repair is a conditional update, so several
reconcilers running at once never repair the same thing twice.

- running experiments whose lease expired (worker killed, host lost) go back to the queue and
  resume from their last checkpoint, or fail as `worker_lost` after `max_attempts`;
- queued experiments whose message is gone (never sent, or sent long ago and overtaken by a
  later message or the queue is empty: Redis restarted without persistence) are sent again — a
  duplicate message is harmless, since only one worker can claim the row; queued experiments
  whose cancel was requested are finished;
- the worker's heartbeat (`workers` table) is written, for `/health`, `/metrics` and `doctor`;
- fan-out parents whose children are all final but which were never summarized are finished;
- the experiments' change log is folded into the counters that `/metrics` and list totals read
  (a scrape folds too), so reading them stays cheap even where nothing scrapes.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from core.celery_app import queued_message_count, send_run_experiment
from core.db import session_scope
from core.models import ErrorReason, Experiment, Status, utcnow
from core.operations import WorkerRepository
from core.repositories import ExperimentRepository, MonitoringRepository, RecoveryRepository, RunRepository
from core.resources import DEFAULT_QUEUE, queue_for
from core.settings import get_settings
from workers.fanout import advance_parent

log = logging.getLogger(__name__)
NEVER_SENT_GRACE = timedelta(seconds=5)


def broker_queue_empty(queue: str | None = None) -> bool:
    """Whether the broker holds no waiting message in `queue` (None: in any queue); False when it
    cannot tell."""
    try:
        return queued_message_count(queue) == 0
    except Exception:
        return False


def recover_expired_runs() -> list[int]:
    """Re-queue (or fail) running experiments whose worker stopped renewing the lease."""
    settings = get_settings()
    cutoff = utcnow() - timedelta(seconds=settings.lease_seconds)
    requeued = []
    with session_scope() as session:
        runs = RunRepository(session)
        for experiment in RecoveryRepository(session).expired_runs(cutoff):
            if experiment.children:
                continue  # a parent that fanned out holds no lease: it waits for its children
            # (a parent without children was planning: it held a lease and is re-planned)
            if experiment.losses + 1 >= settings.max_attempts:
                error = (
                    f"worker_lost: the worker running it stopped answering {experiment.losses + 1} times "
                    f"(killed, out of memory or host lost); last on {experiment.worker}"
                )
                runs.finish(experiment.id, Status.failed, error=error, reason=ErrorReason.worker_lost)
                log.warning("experiment %s failed: %s", experiment.id, error)
            elif runs.requeue(experiment.id, expired_before=cutoff, lost=True):
                requeued.append((experiment.id, experiment.priority, queue_for(experiment.spec)))
        session.commit()
    for experiment_id, priority, queue in requeued:
        log.warning("experiment %s lost its worker; re-queued to resume from its checkpoint", experiment_id)
        send_run_experiment(experiment_id, priority, queue)
    return [i for i, _, _ in requeued]


def redispatch_lost_messages() -> list[int]:
    """Send again the queued experiments whose message the broker lost: never sent, or sent
    more than `redispatch_after_seconds` ago and either its queue is empty or (default queue) a
    message sent after it (of no higher priority) has already started, which an in-order broker
    would not do if this one were still there. A message waiting in a resource queue (cpu, gpuN)
    whose workers are busy or absent is not sent again while that queue holds messages: another
    queue's runs starting says nothing about it. Queued experiments whose cancel was requested
    are finished. A duplicate message is harmless: only one worker can claim the row."""
    settings = get_settings()
    now = utcnow()
    sent_before = now - timedelta(seconds=settings.redispatch_after_seconds)
    with session_scope() as session:
        repo, recovery = ExperimentRepository(session), RecoveryRepository(session)
        RunRepository(session).cancel_waiting()
        candidates = recovery.lost_queued(now - NEVER_SENT_GRACE, sent_before)
        if any(e.dispatched_at is not None for e in candidates) and not broker_queue_empty():
            empty: dict[str, bool] = {}

            def lost(e: Experiment) -> bool:
                queue = queue_for(e.spec)
                if queue not in empty:
                    empty[queue] = broker_queue_empty(queue)
                return empty[queue] or (queue == DEFAULT_QUEUE and recovery.overtaken(e))

            candidates = [e for e in candidates if e.dispatched_at is None or lost(e)]
        chosen = [(e.id, e.priority, queue_for(e.spec)) for e in candidates]
        for experiment_id, _, _ in chosen:
            repo.mark_dispatched(experiment_id)
        session.commit()
    for experiment_id, priority, queue in chosen:
        send_run_experiment(experiment_id, priority, queue)
    return [i for i, _, _ in chosen]


def finish_stalled_parents() -> None:
    with session_scope() as session:
        parent_ids = [p.id for p in RecoveryRepository(session).running_parents()]
    for parent_id in parent_ids:
        advance_parent(parent_id)


def fold_counters() -> None:
    with session_scope() as session:
        MonitoringRepository(session).fold_changes()
        session.commit()


def heartbeat(worker: str, concurrency: int, queues: Sequence[str] = (DEFAULT_QUEUE,), gpus: int = 0) -> None:
    """This worker is alive (seen by `/health`, `/metrics` and `trainlab doctor`), with what it
    serves (the queues it consumes, its GPUs: whether a queued experiment can ever run)."""
    with session_scope() as session:
        WorkerRepository(session).beat(worker, concurrency, queues=queues, gpus=gpus)
        session.commit()


def reconcile_once(
    worker: str | None = None, concurrency: int = 1, queues: Sequence[str] = (DEFAULT_QUEUE,), gpus: int = 0
) -> None:
    """One pass of every repair; errors are logged, never raised (the worker keeps running)."""
    if worker is not None:
        try:
            heartbeat(worker, concurrency, queues, gpus)
        except Exception:
            log.exception("reconciler: heartbeat failed")
    for repair in (recover_expired_runs, redispatch_lost_messages, finish_stalled_parents, fold_counters):
        try:
            repair()
        except Exception:
            log.exception("reconciler: %s failed", repair.__name__)


def reconcile_forever(
    stop: Any, worker: str | None = None, concurrency: int = 1, queues: Sequence[str] = (DEFAULT_QUEUE,), gpus: int = 0
) -> None:
    """The reconciler's loop: a pass now, then one every `reconcile_seconds` until `stop` is set."""
    every = get_settings().reconcile_seconds
    while True:
        reconcile_once(worker, concurrency, queues, gpus)
        if stop.wait(every):
            return


class Reconciler:
    """Runs `reconcile_forever` in a process of its own, started with `spawn`.

    Not a thread of the worker's main process: the pool forks its children from that process,
    and a child forked while a thread there holds an SQLite connection inherits SQLite's lock
    bookkeeping in a state that can keep it from ever writing ("database is locked").
    """

    def __init__(
        self, worker: str | None = None, concurrency: int = 1, queues: Sequence[str] = (DEFAULT_QUEUE,), gpus: int = 0
    ) -> None:
        context = multiprocessing.get_context("spawn")
        # Kept referenced: the child unpickles it after start(), which drops the Process's args.
        self._stop_event = context.Event()
        self._process = context.Process(
            target=reconcile_forever,
            args=(self._stop_event, worker, concurrency, tuple(queues), gpus),
            name="trainlab-reconciler",
            daemon=True,
        )

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        """Ask the reconciler to end (signal-safe: called from the worker's SIGTERM handler, where
        joining a process or taking a lock could deadlock). An interrupted pass is harmless: each
        repair is one conditional update in its own transaction."""
        if self._process.is_alive():
            self._process.terminate()
