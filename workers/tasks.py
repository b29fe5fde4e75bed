"""The Celery task that runs one experiment. It takes an id, re-reads the row, claims it, runs
`ml` and records the final state. `ml` is imported inside the task, after the worker process
has forked and set its thread count."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from core.artifacts import LocalArtifactStore
from core.celery_app import TASK_RUN_EXPERIMENT, get_celery_app
from core.db import session_scope
from core.models import Status
from core.repositories import ExperimentRepository
from core.settings import get_settings
from ml.fanout import RunContext, planner_for
from ml.spec import parse_spec
from workers.fanout import advance_parent, start_fanout
from workers.reporter import DatabaseReporter
from workers.uploads import UploadResolver

log = logging.getLogger(__name__)
app = get_celery_app()


def _finish(experiment_id: int, status: Status, **fields: Any) -> None:
    with session_scope() as session:
        repo = ExperimentRepository(session)
        repo.finish(experiment_id, status, **fields)
        session.commit()
        experiment = repo.get(experiment_id)
        parent_id = experiment.parent_id if experiment else None
    if parent_id is not None:
        advance_parent(parent_id)


QUOTA_RETRY_SECONDS = 3


def _over_quota(experiment_id: int) -> bool:
    limit = get_settings().max_running_per_user
    if not limit:
        return False
    with session_scope() as session:
        repo = ExperimentRepository(session)
        experiment = repo.get(experiment_id)
        if experiment is None or experiment.status != Status.queued or experiment.owner_id is None:
            return False
        return repo.running_single_runs(experiment.owner_id) >= limit


@app.task(name=TASK_RUN_EXPERIMENT, bind=True)
def run_experiment(self: Task, experiment_id: int) -> str:
    """Run experiment N and store its final state."""
    from ml.errors import Cancelled, DataError, MLError, TrainingDiverged
    from ml.run import run_experiment as run_spec

    worker = str(self.request.hostname or "worker")
    if _over_quota(experiment_id):
        # The owner already runs as many experiments as allowed: try again shortly.
        raise self.retry(countdown=QUOTA_RETRY_SECONDS, max_retries=None)
    with session_scope() as session:
        repo = ExperimentRepository(session)
        claimed = repo.claim(experiment_id, worker)
        session.commit()
        experiment = repo.get(experiment_id)
        if not claimed or experiment is None:
            state = experiment.status if experiment else "missing"
            log.info("experiment %s not claimed (status %s)", experiment_id, state)
            if experiment is not None and experiment.parent_id is not None:
                advance_parent(experiment.parent_id)
            return f"skipped: {state}"
        spec = dict(experiment.spec)

    settings = get_settings()
    context = RunContext(experiment_id=experiment_id, optuna_storage=settings.optuna_storage)
    planner = planner_for(spec, context)
    if planner is not None:
        return start_fanout(experiment_id, parse_spec(spec), planner)

    reporter = DatabaseReporter(
        experiment_id, LocalArtifactStore(settings.resolved_artifact_dir), settings.cancel_poll_seconds
    )
    try:
        summary = run_spec(spec, reporter, context=context, resolve_upload=UploadResolver(reporter.store))
    except Cancelled as exc:
        _finish(experiment_id, Status.cancelled, error=str(exc), reason="cancelled")
        return "cancelled"
    except TrainingDiverged as exc:
        _finish(experiment_id, Status.failed, error=str(exc), reason="diverged")
        return "failed"
    except DataError as exc:
        _finish(experiment_id, Status.failed, error=f"data error: {exc}", reason="data")
        return "failed"
    except (MLError, ValueError) as exc:
        _finish(experiment_id, Status.failed, error=str(exc), reason="invalid")
        return "failed"
    except Exception as exc:  # an unexpected bug: keep the run's final state right anyway
        log.exception("experiment %s crashed", experiment_id)
        _finish(experiment_id, Status.failed, error=f"internal error: {type(exc).__name__}: {exc}", reason="error")
        return "failed"
    _finish(experiment_id, Status.succeeded, summary=summary)
    return "succeeded"
