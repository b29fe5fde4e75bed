"""The Celery task that runs one experiment. It takes an id, re-reads the row, claims it (with
a lease the run renews), runs `ml` and records the final state. `ml` is imported inside the
task, after the worker process has forked and set its thread count."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import Task
from sqlalchemy.exc import DBAPIError

from core.artifacts import get_artifact_store
from core.celery_app import TASK_RUN_EXPERIMENT, get_celery_app, send_run_experiment
from core.db import session_scope
from core.models import ErrorReason, Status
from core.references import unresolved
from core.repositories import ExperimentRepository, RunRepository
from core.resources import DEFAULT_QUEUE, queue_for
from core.settings import get_settings
from ml.context import RunContext
from ml.planners import planner_for
from ml.spec import parse_spec
from workers.fanout import advance_parent, start_fanout
from workers.reporter import SHUTDOWN, DatabaseReporter, LeaseKeeper
from workers.uploads import UploadResolver, WeightsLoader

log = logging.getLogger(__name__)
app = get_celery_app()
QUOTA_RETRY_SECONDS = 3
# Failures of what the server provides, never of the user's spec: they re-queue the run.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    DBAPIError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    ConnectionError,
)
INFRASTRUCTURE_BACKOFF = (1.0, 2.0, 4.0, 8.0)


def worker_identity(hostname: str) -> str:
    """Unique per run attempt: a lease taken away from a zombie cannot be confused with its
    successor's, even on the same host."""
    return f"{hostname}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _finish(experiment_id: int, status: Status, worker: str | None = None, **fields: Any) -> None:
    with session_scope() as session:
        recorded = RunRepository(session).finish(experiment_id, status, worker=worker, **fields)
        session.commit()
        experiment = ExperimentRepository(session).get(experiment_id)
        parent_id = experiment.parent_id if experiment else None
    if recorded and parent_id is not None:
        advance_parent(parent_id)


def _requeue(experiment_id: int, worker: str, lost: bool) -> bool:
    with session_scope() as session:
        done = RunRepository(session).requeue(experiment_id, worker=worker, lost=lost)
        experiment = ExperimentRepository(session).get(experiment_id)
        session.commit()
        priority = experiment.priority if experiment else "normal"
        queue = queue_for(experiment.spec) if experiment else DEFAULT_QUEUE
    if done:
        send_run_experiment(experiment_id, priority, queue)
    return done


@dataclass
class Claim:
    """A run this worker now holds: its stored spec, and who and what it belongs to."""

    spec: dict[str, Any]
    owner_id: int | None
    parent_id: int | None
    attempts: int = 1  # this run included: above 1, it is a retry and resumes its checkpoint


def _claim(experiment_id: int, worker: str) -> tuple[Claim | None, str]:
    """The claim if this worker now holds the run; else None and the state it is in
    ("over_quota" when it waits for its owner's other runs)."""
    with session_scope() as session:
        claimed = RunRepository(session).claim(experiment_id, worker, running_limit=get_settings().max_running_per_user)
        session.commit()
        experiment = ExperimentRepository(session).get(experiment_id)
        if experiment is None:
            return None, "missing"
        if not claimed:
            if experiment.status == Status.queued and not experiment.cancel_requested:
                return None, "over_quota"
            if experiment.parent_id is not None:
                advance_parent(experiment.parent_id)
            return None, experiment.status
        claim = Claim(dict(experiment.spec), experiment.owner_id, experiment.parent_id, experiment.attempts)
        return claim, experiment.status


def reference_problem(claim: Claim, parsed: Any) -> str | None:
    """Why the stored spec may not run as its owner, or None. The API checked this at
    submission; it is checked again here (one resolver for both), so a row written past the
    API, or a data set's owner changed since, cannot make a run read someone else's objects.
    `parsed` is `claim.spec` parsed (once, by the caller)."""
    from ml.context import RunContext
    from ml.search.planner import study_name
    from ml.spec.references import spec_references

    found = spec_references(parsed)
    if claim.parent_id is None and found.server_only:
        return f"{', '.join(found.server_only)}: set by the server only"
    trial = claim.spec.get("trial")
    if trial and (claim.parent_id is None or trial.get("study") != study_name(RunContext(claim.parent_id))):
        return "trial: not a trial of this experiment's search"
    if claim.owner_id is None:
        return "the experiment has no owner to resolve its references for" if found.references else None
    with session_scope() as session:
        problems = unresolved(session, claim.owner_id, found.references)
    return "; ".join(f"{path}: {message}" for path, message in problems) or None


# Retries of the task itself (database busy or down at claim, owner over quota) never end while
# the row is queued: `max_retries=None` on the task means unlimited (on `retry()` it would mean
# the task's default, 3). The database is the source of truth; the reconciler re-sends lost work.
@app.task(name=TASK_RUN_EXPERIMENT, bind=True, max_retries=None)
def run_experiment(self: Task, experiment_id: int) -> str:
    """Run experiment N and store its final state."""
    worker = worker_identity(str(self.request.hostname or "worker"))
    try:
        claim, state = _claim(experiment_id, worker)
    except DBAPIError as exc:  # SQLite busy past its timeout, or the database unreachable: retry
        log.warning("experiment %s: database unavailable at claim (%s); retrying", experiment_id, exc)
        raise self.retry(countdown=min(30, 2 ** min(self.request.retries, 5))) from exc
    if state == "over_quota":  # its owner runs as many experiments as allowed: try again shortly
        raise self.retry(countdown=QUOTA_RETRY_SECONDS)
    if claim is None:
        log.info("experiment %s not claimed (status %s)", experiment_id, state)
        return f"skipped: {state}"
    spec = claim.spec
    settings = get_settings()
    context = RunContext(
        experiment_id=experiment_id,
        optuna_storage=settings.optuna_storage,
        load_weights=WeightsLoader(get_artifact_store(), claim.owner_id),
    )
    try:
        parsed = parse_spec(spec)  # once: the references, the planner and the fan-out read it
        problem = reference_problem(claim, parsed)
        planner = None if problem else planner_for(parsed, context)
    except Exception as exc:  # a stored spec this version cannot read: fail it, never leave it running
        log.exception("experiment %s: spec not readable", experiment_id)
        problem = f"the stored spec is not valid: {exc}"
    if problem:
        _finish(experiment_id, Status.failed, worker=worker, error=problem, reason=ErrorReason.invalid)
        return "failed"
    if planner is not None:  # planning holds a lease too: a worker lost while planning is noticed
        planning = LeaseKeeper(experiment_id, worker, settings.heartbeat_seconds)
        planning.start()
        try:
            return start_fanout(experiment_id, parsed, planner)
        finally:
            planning.stop()

    lease = LeaseKeeper(experiment_id, worker, settings.heartbeat_seconds)
    lease.start()
    reporter = DatabaseReporter(
        experiment_id,
        get_artifact_store(),
        settings.cancel_poll_seconds,
        worker=worker,
        time_limit=spec.get("time_limit_seconds") or settings.default_time_limit_seconds or None,
        lease=lease,
        checkpoint_seconds=settings.checkpoint_seconds,
        resume=claim.attempts > 1,
    )
    try:
        with hand_over_on_sigterm():
            return _run(experiment_id, spec, reporter, context, worker, UploadResolver(reporter.store, claim.owner_id))
    except INFRASTRUCTURE_ERRORS as exc:  # e.g. the database went away while the result was stored
        return _infrastructure_failed(experiment_id, worker, exc)
    finally:
        lease.stop()


@contextmanager
def hand_over_on_sigterm() -> Iterator[None]:
    """While a run trains, SIGTERM to this process (systemd and `kill -- -PGID` signal the whole
    process group, not only Celery's main process) hands the run over: it checkpoints and goes
    back to the queue at its next check instead of dying mid-epoch as a lost worker. Installed
    per run because the pool resets the child's handlers after its initializer runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    SHUTDOWN.clear()
    previous = signal.signal(signal.SIGTERM, lambda *_: SHUTDOWN.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(
    experiment_id: int,
    spec: dict[str, Any],
    reporter: DatabaseReporter,
    context: RunContext,
    worker: str,
    resolve_upload: UploadResolver,
) -> str:
    from ml.errors import Cancelled, DataError, MLError, Pruned, TrainingDiverged
    from ml.run import run_experiment as run_spec

    def fail(error: str, reason: ErrorReason) -> str:
        _finish(experiment_id, Status.failed, worker=worker, error=error, reason=reason)
        return "failed"

    try:
        summary = run_spec(spec, reporter, context=context, resolve_upload=resolve_upload)
    except Cancelled as exc:
        return _stopped(experiment_id, reporter, worker, str(exc))
    except Pruned as exc:  # the search's pruner stopped it: an outcome of its own, not a failure
        _finish(experiment_id, Status.pruned, worker=worker, error=str(exc), reason=ErrorReason.pruned)
        return "pruned"
    except TrainingDiverged as exc:
        return fail(str(exc), ErrorReason.diverged)
    except DataError as exc:
        return fail(f"data error: {exc}", ErrorReason.data)
    except (MLError, ValueError) as exc:
        return fail(str(exc), ErrorReason.invalid)
    except MemoryError:  # the run needs more than this worker's budget: the spec must ask for less
        budget = get_settings().worker_memory_mb
        where = f"the worker's memory budget of {budget} MB" if budget else "the worker's memory"
        advice = "use a smaller batch, model or data set"
        return fail(f"out of memory: the run needed more than {where}; {advice}", ErrorReason.memory)
    except INFRASTRUCTURE_ERRORS as exc:  # not the user's fault: back to the queue, resume later
        return _infrastructure_failed(experiment_id, worker, exc)
    except Exception as exc:  # an unexpected bug: keep the run's final state right anyway
        log.exception("experiment %s crashed", experiment_id)
        return fail(f"internal error: {type(exc).__name__}: {exc}", ErrorReason.error)
    _finish(experiment_id, Status.succeeded, worker=worker, summary=summary)
    return "succeeded"


def _infrastructure_failed(experiment_id: int, worker: str, exc: BaseException) -> str:
    """The database, broker or artifact store failed under a run: re-queue it from its last
    checkpoint (a few tries while the service comes back). If even that fails, the row stays
    `running` with a lease nobody renews: the reconciler re-queues it once the lease expires,
    counting it as one lost attempt (at most `max_attempts`)."""
    log.warning("experiment %s: infrastructure failure (%s: %s); re-queueing", experiment_id, type(exc).__name__, exc)
    for delay in INFRASTRUCTURE_BACKOFF:
        try:
            return "requeued" if _requeue(experiment_id, worker, lost=True) else "lost"
        except INFRASTRUCTURE_ERRORS:
            time.sleep(delay)
    return "left for the reconciler"


def _stopped(experiment_id: int, reporter: DatabaseReporter, worker: str, message: str) -> str:
    """The run stopped on request: say why in its final (or re-queued) state."""
    reason = reporter.stop_reason
    if reason == "interrupt":  # graceful worker shutdown: the last checkpoint resumes it
        return "requeued" if _requeue(experiment_id, worker, lost=False) else "interrupted"
    if reason == "lease_lost":  # another worker owns it now; write nothing
        return "lease lost"
    if reason == "timeout":
        limit = reporter.time_limit
        _finish(
            experiment_id,
            Status.failed,
            worker=worker,
            error=f"time limit of {limit:g} s reached; {message}",
            reason=ErrorReason.timeout,
        )
        return "failed"
    _finish(experiment_id, Status.cancelled, worker=worker, error=message, reason=ErrorReason.cancelled)
    return "cancelled"
