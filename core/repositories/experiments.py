"""Experiments as records: create, look up, list, count, delete (the run state machine is in
`core.repositories.runs`)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, aliased

from core.models import Artifact, Experiment, Metric, Status, User, utcnow
from core.repositories.monitoring import MonitoringRepository

# Ids are 32-bit integer columns.
MAX_ROW_ID = 2**31 - 1
# Queue priorities, lowest first.
PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2}


def running_single_runs_query(owner_id: int) -> Any:
    """A count of `owner_id`'s running experiments that train (fan-out parents only wait); the
    claim uses it inside an UPDATE of experiments, so it correlates to nothing (aliases)."""
    child, running = aliased(Experiment), aliased(Experiment)
    # NOT EXISTS reads the parent_id index per running row (NOT IN would list every child).
    has_children = select(child.id).where(child.parent_id == running.id).exists()
    return select(func.count(running.id)).where(
        running.owner_id == owner_id, running.status == Status.running, ~has_children
    )


class ExperimentRepository:
    """Experiments as records: create, look up, list, count, delete."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        *,
        name: str,
        kind: str,
        spec: dict[str, Any],
        parent_id: int | None = None,
        owner_id: int | None = None,
        priority: str = "normal",
        idempotency_key: str | None = None,
        dataset_id: int | None = None,
    ) -> Experiment:
        experiment = Experiment(
            name=name,
            kind=kind,
            spec=spec,
            parent_id=parent_id,
            status=Status.queued,
            owner_id=owner_id,
            priority=priority,
            idempotency_key=idempotency_key,
            dataset_id=dataset_id,
        )
        self.session.add(experiment)
        self.session.flush()
        return experiment

    def get(self, experiment_id: int) -> Experiment | None:
        return self.session.get(Experiment, experiment_id)

    def visible(self, experiment_id: int, user: User) -> Experiment | None:
        """The experiment if `user` may see it (its owner, or an admin)."""
        experiment = self.get(experiment_id)
        if experiment is None or not (user.is_admin or experiment.owner_id == user.id):
            return None
        return experiment

    def owned_by_reference(self, reference: str, owner_id: int, *, succeeded: bool = True) -> Experiment | None:
        """One user's experiment by id or name (the newest of that name), succeeded ones only
        unless `succeeded` is False. Admins too see only their own here: a reference in a spec
        acts as the person who submitted it."""
        query = select(Experiment).where(Experiment.owner_id == owner_id)
        if succeeded:
            query = query.where(Experiment.status == Status.succeeded)
        if reference.isdigit():
            if int(reference) > MAX_ROW_ID:  # names no row (and would overflow the column)
                return None
            query = query.where(Experiment.id == int(reference))
        else:
            query = query.where(Experiment.name == reference)
        return self.session.scalar(query.order_by(Experiment.id.desc()).limit(1))

    def by_idempotency_key(self, owner_id: int | None, key: str) -> Experiment | None:
        return self.session.scalar(
            select(Experiment).where(Experiment.owner_id == owner_id, Experiment.idempotency_key == key)
        )

    def submitted_since(self, owner_id: int, since: datetime) -> int:
        """Top-level experiments a user submitted since a moment (rate limiting)."""
        query = select(func.count()).where(
            Experiment.owner_id == owner_id, Experiment.parent_id.is_(None), Experiment.created_at >= since
        )
        return self.session.scalar(query) or 0

    def active_top_level(self, owner_id: int) -> int:
        """A user's top-level experiments still queued or running (the per-user queue limit)."""
        query = select(func.count()).where(
            Experiment.owner_id == owner_id,
            Experiment.parent_id.is_(None),
            Experiment.status.in_([Status.queued, Status.running]),
        )
        return self.session.scalar(query) or 0

    def running_single_runs(self, owner_id: int) -> int:
        """Running experiments of a user that train (fan-out parents only wait)."""
        return self.session.scalar(running_single_runs_query(owner_id)) or 0

    def mark_dispatched(self, experiment_id: int) -> None:
        self.session.execute(update(Experiment).where(Experiment.id == experiment_id).values(dispatched_at=utcnow()))

    def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        parent_id: int | None = None,
        top_level: bool = False,
        owner_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[Sequence[Experiment], int]:
        """Newest first, with the total count of matching rows (only `owner_id`'s when given).
        Filters by owner, status and kind are counted from the maintained counters; a name or
        parent filter counts its matches."""
        query = select(Experiment)
        if owner_id is not None:
            query = query.where(Experiment.owner_id == owner_id)
        if status:
            query = query.where(Experiment.status == status)
        if kind:
            query = query.where(Experiment.kind == kind)
        if name:
            query = query.where(Experiment.name.contains(name, autoescape=True))
        if parent_id is not None:
            query = query.where(Experiment.parent_id == parent_id)
        elif top_level:
            query = query.where(Experiment.parent_id.is_(None))
        if name or parent_id is not None or top_level:
            total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        else:
            total = MonitoringRepository(self.session).count(
                owner_id=owner_id, status=status or None, kind=kind or None
            )
        rows = self.session.scalars(query.order_by(Experiment.id.desc()).limit(limit).offset(offset)).all()
        return rows, total

    def tree_ids(self, experiment_id: int) -> builtins.list[int]:
        """The experiment and its descendants (fan-out children), parents first."""
        ids, frontier = [experiment_id], [experiment_id]
        while frontier:
            frontier = list(self.session.scalars(select(Experiment.id).where(Experiment.parent_id.in_(frontier))))
            ids += frontier
        return ids

    def delete_tree(self, experiment_id: int) -> None:
        """Delete an experiment with its children, metrics and artifact rows (the caller deletes
        the artifact files once this is committed)."""
        ids = self.tree_ids(experiment_id)
        for table in (Metric, Artifact):
            self.session.execute(delete(table).where(table.experiment_id.in_(ids)))
        for experiment_id_ in reversed(ids):  # children before their parent
            self.session.execute(delete(Experiment).where(Experiment.id == experiment_id_))
        self.session.flush()

    def final_top_level_before(self, before: datetime, statuses: Sequence[str]) -> builtins.list[int]:
        """Top-level experiments in one of these final states that finished before a moment."""
        query = select(Experiment.id).where(
            Experiment.parent_id.is_(None), Experiment.status.in_(statuses), Experiment.finished_at < before
        )
        return list(self.session.scalars(query.order_by(Experiment.id)))


def durations(experiment: Experiment) -> dict[str, float | None]:
    """Seconds spent queued and running (None while not known yet)."""

    def seconds(a: datetime | None, b: datetime | None) -> float | None:
        if a is None or b is None:
            return None
        return round((b - a).total_seconds(), 3)

    return {
        "queued_seconds": seconds(experiment.created_at, experiment.started_at),
        "run_seconds": seconds(experiment.started_at, experiment.finished_at),
    }
