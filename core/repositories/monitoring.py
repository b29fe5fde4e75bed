"""What the Prometheus exposition (`/metrics`) reads: counts, queue age, busy workers, timings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Experiment, Status


class MonitoringRepository:
    """Counts and timings over all experiments, for `/metrics`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def started_rows(self) -> Sequence[tuple[str, str, datetime, datetime, datetime | None]]:
        """(kind, status, created, started, finished) of every experiment that has started."""
        query = select(
            Experiment.kind, Experiment.status, Experiment.created_at, Experiment.started_at, Experiment.finished_at
        ).where(Experiment.started_at.is_not(None))
        return self.session.execute(query).tuples().all()  # type: ignore[return-value]

    def oldest_queued_at(self) -> datetime | None:
        return self.session.scalar(select(func.min(Experiment.created_at)).where(Experiment.status == Status.queued))

    def busy_workers(self) -> int:
        """Worker processes running an experiment now (a run's `worker` is host/pid/attempt)."""
        rows = self.session.scalars(select(Experiment.worker).where(Experiment.status == Status.running)).all()
        return len({w.rsplit("/", 1)[0] for w in rows if w})

    def counts_by_status(self) -> dict[str, int]:
        rows = self.session.execute(select(Experiment.status, func.count()).group_by(Experiment.status))
        return {status: count for status, count in rows}
