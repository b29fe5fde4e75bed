"""The reconciler: repairs what the broker or a dead worker lost. It runs when a worker starts
and then periodically in every worker; each repair is a conditional update, so several
reconcilers running at once never repair the same thing twice.

- running experiments whose lease expired (worker killed, host lost) go back to the queue and
  resume from their last checkpoint, or fail as `worker_lost` after `max_attempts`;
- queued experiments whose message is gone (never sent, or sent long ago while the broker
  queue is empty: Redis restarted without persistence) are sent again — a duplicate message is
  harmless, since only one worker can claim the row;
- fan-out parents whose children are all final but which were never summarized are finished.
"""

from __future__ import annotations

import logging
import multiprocessing
from datetime import timedelta
from typing import Any

from core.celery_app import queued_message_count, send_run_experiment
from core.db import session_scope
from core.models import Experiment, Status, utcnow
from core.repositories import ExperimentRepository
from core.settings import get_settings
from ml.fanout import planner_for
from workers.fanout import advance_parent

log = logging.getLogger(__name__)
NEVER_SENT_GRACE = timedelta(seconds=5)


def _fans_out(experiment: Experiment) -> bool:
    try:
        return planner_for(experiment.spec) is not None
    except Exception:
        return False


def broker_queue_empty() -> bool:
    """Whether the broker holds no waiting message (False when it cannot tell)."""
    try:
        return queued_message_count() == 0
    except Exception:
        return False


def recover_expired_runs() -> list[int]:
    """Re-queue (or fail) running experiments whose worker stopped renewing the lease."""
    settings = get_settings()
    cutoff = utcnow() - timedelta(seconds=settings.lease_seconds)
    requeued = []
    with session_scope() as session:
        repo = ExperimentRepository(session)
        for experiment in repo.expired_runs(cutoff):
            if experiment.children or _fans_out(experiment):
                continue  # parents hold no lease: they wait for their children
            if experiment.attempts >= settings.max_attempts:
                error = (
                    f"worker_lost: the worker running it stopped answering {experiment.attempts} times "
                    f"(killed, out of memory or host lost); last on {experiment.worker}"
                )
                repo.finish(experiment.id, Status.failed, error=error, reason="worker_lost")
                log.warning("experiment %s failed: %s", experiment.id, error)
            elif repo.requeue(experiment.id, expired_before=cutoff):
                requeued.append((experiment.id, experiment.priority))
        session.commit()
    for experiment_id, priority in requeued:
        log.warning("experiment %s lost its worker; re-queued to resume from its checkpoint", experiment_id)
        send_run_experiment(experiment_id, priority)
    return [i for i, _ in requeued]


def redispatch_lost_messages() -> list[int]:
    """Send again the queued experiments whose message the broker lost."""
    settings = get_settings()
    now = utcnow()
    sent_before = now - timedelta(seconds=settings.redispatch_after_seconds)
    with session_scope() as session:
        repo = ExperimentRepository(session)
        candidates = repo.lost_queued(now - NEVER_SENT_GRACE, sent_before)
        stale = [e for e in candidates if e.dispatched_at is not None]
        if stale and not broker_queue_empty():
            candidates = [e for e in candidates if e.dispatched_at is None]
        chosen = [(e.id, e.priority) for e in candidates]
        for experiment_id, _ in chosen:
            repo.mark_dispatched(experiment_id)
        session.commit()
    for experiment_id, priority in chosen:
        send_run_experiment(experiment_id, priority)
    return [i for i, _ in chosen]


def finish_stalled_parents() -> None:
    with session_scope() as session:
        parent_ids = [p.id for p in ExperimentRepository(session).running_parents()]
    for parent_id in parent_ids:
        advance_parent(parent_id)


def reconcile_once() -> None:
    """One pass of every repair; errors are logged, never raised (the worker keeps running)."""
    for repair in (recover_expired_runs, redispatch_lost_messages, finish_stalled_parents):
        try:
            repair()
        except Exception:
            log.exception("reconciler: %s failed", repair.__name__)


def reconcile_forever(stop: Any) -> None:
    """The reconciler's loop: a pass now, then one every `reconcile_seconds` until `stop` is set."""
    every = get_settings().reconcile_seconds
    while True:
        reconcile_once()
        if stop.wait(every):
            return


class Reconciler:
    """Runs `reconcile_forever` in a process of its own, started with `spawn`.

    Not a thread of the worker's main process: the pool forks its children from that process,
    and a child forked while a thread there holds an SQLite connection inherits SQLite's lock
    bookkeeping in a state that can keep it from ever writing ("database is locked").
    """

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        # Kept referenced: the child unpickles it after start(), which drops the Process's args.
        self._stop_event = context.Event()
        self._process = context.Process(
            target=reconcile_forever, args=(self._stop_event,), name="trainlab-reconciler", daemon=True
        )

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        """Ask the reconciler to end (signal-safe: called from the worker's SIGTERM handler, where
        joining a process or taking a lock could deadlock). An interrupted pass is harmless: each
        repair is one conditional update in its own transaction."""
        if self._process.is_alive():
            self._process.terminate()
