"""The reconciler's queries: expired leases, queued experiments whose message may be lost,
running fan-out parents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from core.models import Experiment, Status
from core.repositories.experiments import PRIORITY_RANK


class RecoveryRepository:
    """What the reconciler looks for: runs whose worker is gone, messages that may be lost,
    fan-out parents to advance."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def overtaken(self, experiment: Experiment) -> bool:
        """Whether a message sent after this queued experiment's, of no higher priority, has
        already started: brokers deliver in order within a priority, so this one's is lost."""
        if experiment.dispatched_at is None:
            return False
        ranks = PRIORITY_RANK.get(experiment.priority, 1)
        no_higher = [p for p, r in PRIORITY_RANK.items() if r <= ranks]
        later = select(Experiment.id).where(
            Experiment.dispatched_at > experiment.dispatched_at,
            Experiment.started_at > Experiment.dispatched_at,
            Experiment.priority.in_(no_higher),
        )
        return self.session.scalar(later.limit(1)) is not None

    def expired_runs(self, before: datetime) -> Sequence[Experiment]:
        """Running experiments whose lease ran out (their worker is presumed dead)."""
        return self.session.scalars(
            select(Experiment).where(Experiment.status == Status.running, Experiment.heartbeat_at < before)
        ).all()

    def running_parents(self) -> Sequence[Experiment]:
        child = aliased(Experiment)
        has_children = select(child.id).where(child.parent_id == Experiment.id).exists()
        return self.session.scalars(select(Experiment).where(Experiment.status == Status.running, has_children)).all()

    def lost_queued(self, never_sent_before: datetime, sent_before: datetime) -> Sequence[Experiment]:
        """Queued experiments whose message may be lost: never sent (top-level; children wait for
        their parent's window), or sent long ago."""
        never_sent = (
            (Experiment.dispatched_at.is_(None))
            & (Experiment.parent_id.is_(None))
            & (Experiment.created_at < never_sent_before)
        )
        return self.session.scalars(
            select(Experiment)
            .where(Experiment.status == Status.queued, never_sent | (Experiment.dispatched_at < sent_before))
            .order_by(Experiment.id)
        ).all()
