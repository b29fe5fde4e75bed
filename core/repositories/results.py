"""A run's results as rows: its per-epoch metrics and its artifacts."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.models import FINAL_STATUSES, Artifact, Experiment, Metric, utcnow

# Experiments whose last rows one statement reads (an OR of their keys; SQLite's expression depth).
LATEST_CHUNK = 100


class MetricRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, experiment_id: int, rows: Iterable[tuple[int, str, str, float]]) -> None:
        """Insert (step, split, name, value) rows; a row already stored is left as it is."""
        values = [
            {"experiment_id": experiment_id, "step": s, "split": sp, "name": n, "value": float(v)}
            for s, sp, n, v in rows
        ]
        if not values:
            return
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(Metric)
            .values(values)
            .on_conflict_do_nothing(index_elements=["experiment_id", "step", "split", "name"])
        )
        self.session.execute(statement)

    def rows(
        self,
        experiment_id: int,
        *,
        split: str | None = None,
        name: str | None = None,
        after_step: int | None = None,
    ) -> builtins.list[tuple[int, str, str, float]]:
        """(step, split, name, value) tuples in step order, only the steps after `after_step` when
        given: the four columns, no ORM objects, one range of the (experiment, step) key."""
        query = select(Metric.step, Metric.split, Metric.name, Metric.value).where(
            Metric.experiment_id == experiment_id
        )
        if after_step is not None:
            query = query.where(Metric.step > after_step)
        if split:
            query = query.where(Metric.split == split)
        if name:
            query = query.where(Metric.name == name)
        result = self.session.execute(query.order_by(Metric.step, Metric.split, Metric.name))
        return result.tuples().all()  # type: ignore[return-value]

    def latest(self, experiment_id: int) -> tuple[int, builtins.list[tuple[str, str, float]]] | None:
        """The last step an experiment logged and its (split, name, value) rows; None before any."""
        return self.latest_of([experiment_id]).get(experiment_id)

    def latest_of(self, experiment_ids: Sequence[int]) -> dict[int, tuple[int, builtins.list[tuple[str, str, float]]]]:
        """Each experiment's last logged step and its (split, name, value) rows, for a page of
        experiments at once: one statement finds every last step (an index probe apiece), one per
        100 experiments reads those steps' rows. Experiments with no rows are left out."""
        if not experiment_ids:
            return {}
        last_step = (
            select(func.max(Metric.step))
            .where(Metric.experiment_id == Experiment.id)
            .correlate(Experiment)
            .scalar_subquery()
        )
        found = self.session.execute(select(Experiment.id, last_step).where(Experiment.id.in_(experiment_ids)))
        pairs = [(experiment_id, step) for experiment_id, step in found.tuples() if step is not None]
        out: dict[int, tuple[int, builtins.list[tuple[str, str, float]]]] = {}
        for start in range(0, len(pairs), LATEST_CHUNK):
            chunk = pairs[start : start + LATEST_CHUNK]
            at_last_step = or_(*(and_(Metric.experiment_id == i, Metric.step == step) for i, step in chunk))
            rows = self.session.execute(
                select(Metric.experiment_id, Metric.step, Metric.split, Metric.name, Metric.value)
                .where(at_last_step)
                .order_by(Metric.experiment_id, Metric.split, Metric.name)
            )
            for experiment_id, step, split, name, value in rows.tuples():
                out.setdefault(experiment_id, (step, []))[1].append((split, name, value))
        return out

    def series(self, experiment_id: int, *, split: str | None = None, name: str | None = None) -> Sequence[Metric]:
        query = select(Metric).where(Metric.experiment_id == experiment_id)
        if split:
            query = query.where(Metric.split == split)
        if name:
            query = query.where(Metric.name == name)
        return self.session.scalars(query.order_by(Metric.step, Metric.split, Metric.name)).all()


class ArtifactRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def put(self, experiment_id: int, name: str, key: str, size: int, content_type: str) -> Artifact:
        artifact = self.get(experiment_id, name)
        if artifact is None:
            artifact = Artifact(experiment_id=experiment_id, name=name)
            self.session.add(artifact)
        artifact.key, artifact.size, artifact.content_type = key, size, content_type
        artifact.created_at = utcnow()
        self.session.flush()
        return artifact

    def get(self, experiment_id: int, name: str) -> Artifact | None:
        return self.session.scalar(
            select(Artifact).where(Artifact.experiment_id == experiment_id, Artifact.name == name)
        )

    def list(self, experiment_id: int) -> Sequence[Artifact]:
        return self.session.scalars(
            select(Artifact).where(Artifact.experiment_id == experiment_id).order_by(Artifact.name)
        ).all()

    def keys_of(self, experiment_ids: Sequence[int]) -> builtins.list[str]:
        """The store keys of every artifact of these experiments."""
        return list(self.session.scalars(select(Artifact.key).where(Artifact.experiment_id.in_(experiment_ids))))

    def finished_checkpoints(self, name: str) -> Sequence[Artifact]:
        """Checkpoints of experiments in a final state: nothing will resume them."""
        finished = select(Experiment.id).where(Experiment.status.in_(FINAL_STATUSES))
        return self.session.scalars(
            select(Artifact).where(Artifact.name == name, Artifact.experiment_id.in_(finished))
        ).all()

    def delete(self, artifact: Artifact) -> None:
        self.session.delete(artifact)
        self.session.flush()
