"""Fan-out experiments (k-fold, compare, search, ensemble) on the workers.

The parent's task plans its children, stores them and queues each as its own task; the parent
stays `running`. Whenever a child reaches a final state, `advance_parent` runs: it may queue more
children (adaptive search), and once every child is final it writes the parent's summary. Both
steps start by updating the parent row, which takes its write lock on PostgreSQL and SQLite, so
two workers finishing children at once never plan or summarize twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from core.artifacts import ArtifactStore, get_artifact_store
from core.celery_app import send_run_experiment
from core.db import session_scope
from core.models import FINAL_STATUSES, ErrorReason, Experiment, Status, utcnow
from core.repositories import ArtifactRepository, ExperimentRepository, MetricRepository, RunRepository, durations
from core.resources import queue_for
from core.settings import get_settings
from ml.context import RunContext
from ml.fanout.base import ChildPlan, ChildResult, Planner, experiment_kind
from ml.spec import parse_spec
from workers.reporter import DatabaseReporter

log = logging.getLogger(__name__)


class StoredChildData:
    """Children's metrics and artifacts, read from the database and the artifact store."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def metrics(self, child_id: int) -> list[dict[str, Any]]:
        with session_scope() as session:
            return [
                {"step": m.step, "split": m.split, "name": m.name, "value": m.value}
                for m in MetricRepository(session).series(child_id)
            ]

    def artifact(self, child_id: int, name: str) -> bytes | None:
        with session_scope() as session:
            artifact = ArtifactRepository(session).get(child_id, name)
        if artifact is None or not self.store.exists(artifact.key):
            return None
        return self.store.get(artifact.key)


def _result(child: Experiment) -> ChildResult:
    return ChildResult(
        id=child.id,
        name=child.name,
        status=child.status,
        spec=child.spec,
        summary=child.summary,
        error=child.error,
        seconds=durations(child)["run_seconds"],
        started_at=child.started_at.isoformat() if child.started_at else None,
        finished_at=child.finished_at.isoformat() if child.finished_at else None,
    )


def _create_children(repo: ExperimentRepository, parent: Experiment, plans: list[ChildPlan]) -> list[int]:
    ids = []
    resources = parent.spec.get("resources")
    for plan in plans:
        kind = experiment_kind(parse_spec(plan.spec))
        spec = plan.spec
        if resources and "resources" not in spec:  # a child needs what its parent asked for
            spec = {**spec, "resources": resources}
        child = repo.create(
            name=plan.name[:200],
            kind=kind,
            spec=spec,
            parent_id=parent.id,
            owner_id=parent.owner_id,
            priority=parent.priority,
            dataset_id=parent.dataset_id,
        )
        ids.append(child.id)
    return ids


def _claim_window(repo: ExperimentRepository, parent: Experiment) -> list[tuple[int, str, str]]:
    """Children to send now: at most `fanout_window` of a parent's children are in the broker or
    running at once, so one user's 200-trial search cannot fill the queue ahead of everyone."""
    children = list(parent.children)
    active = [c for c in children if c.dispatched_at is not None and c.status not in FINAL_STATUSES]
    pending = [c for c in children if c.dispatched_at is None and c.status == Status.queued]
    room = max(0, get_settings().fanout_window - len(active))
    chosen = pending[:room]
    for child in chosen:
        repo.mark_dispatched(child.id)
    return [(c.id, c.priority, queue_for(c.spec)) for c in chosen]


def _send(children: list[tuple[int, str, str]]) -> None:
    for child_id, priority, queue in children:
        try:
            send_run_experiment(child_id, priority, queue)
        except Exception:  # stays queued in the database; the reconciler re-dispatches it
            log.exception("could not queue child experiment %s", child_id)


def start_fanout(experiment_id: int, spec: Any, planner: Planner) -> str:
    """Create and queue the first children of a claimed (running) parent."""
    try:
        plans = planner.initial(spec)
    except Exception as exc:  # e.g. the search storage is unreachable: fail, never hang as running
        log.exception("planning experiment %s failed", experiment_id)
        with session_scope() as session:
            RunRepository(session).finish(
                experiment_id, Status.failed, error=f"could not plan the children: {exc}", reason=ErrorReason.error
            )
            session.commit()
        return "failed"
    with session_scope() as session:
        repo, runs = ExperimentRepository(session), RunRepository(session)
        # Under the parent's row lock: either a cancel sees these children, or we see the cancel.
        if not runs.lock_running(experiment_id):
            session.commit()
            return "skipped: not running"
        if runs.cancel_requested(experiment_id):
            error = "cancelled before it fanned out"
            runs.finish(experiment_id, Status.cancelled, error=error, reason=ErrorReason.cancelled)
            session.commit()
            return "cancelled"
        parent = repo.get(experiment_id)
        assert parent is not None
        ids = _create_children(repo, parent, plans)
        session.flush()
        session.refresh(parent, ["children"])
        to_send = _claim_window(repo, parent)
        session.commit()
    _send(to_send)
    if not ids:
        advance_parent(experiment_id)
    return f"fanned out: {len(ids)} children"


def advance_parent(parent_id: int) -> None:
    """Called when a child is final: queue more children, or finish the parent."""
    from ml.errors import MLError
    from ml.planners import planner_for

    with session_scope() as session:
        repo, runs = ExperimentRepository(session), RunRepository(session)
        if not runs.lock_running(parent_id):  # not running (already final): nothing to do
            session.commit()
            return
        parent = repo.get(parent_id)
        assert parent is not None
        session.refresh(parent, ["children"])
        children = [_result(c) for c in parent.children]
        if parent.cancel_requested:
            abandoned_before = utcnow() - timedelta(seconds=get_settings().lease_seconds)
            runs.cancel_tree(parent, abandoned_before, summary=_children_table(children))
            session.commit()
            return
        spec = parse_spec(parent.spec)
        planner = planner_for(spec, RunContext(parent_id, get_settings().optuna_storage))
        assert planner is not None
        new_ids = _create_children(repo, parent, planner.advance(spec, children))
        session.flush()
        session.refresh(parent, ["children"])
        to_send = _claim_window(repo, parent)
        session.commit()
    _send(to_send)
    if new_ids or any(c.status not in FINAL_STATUSES for c in children):
        return
    settings = get_settings()
    store = get_artifact_store()
    reporter = DatabaseReporter(parent_id, store, settings.cancel_poll_seconds)
    try:
        summary = planner.summarize(spec, children, StoredChildData(store), reporter)
        status, error, reason = Status.succeeded, None, None
    except MLError as exc:
        summary, status, error, reason = _children_table(children), Status.failed, str(exc), ErrorReason.children
    except Exception as exc:
        log.exception("summarizing experiment %s failed", parent_id)
        summary, status = _children_table(children), Status.failed
        error, reason = f"internal error: {exc}", ErrorReason.error
    summary.setdefault("children", _children_table(children)["children"])
    with session_scope() as session:
        RunRepository(session).finish(parent_id, status, summary=summary, error=error, reason=reason)
        session.commit()


def _children_table(children: list[ChildResult]) -> dict[str, Any]:
    return {
        "children": [
            {"id": c.id, "name": c.name, "status": c.status, "seconds": c.seconds, "error": c.error} for c in children
        ]
    }
