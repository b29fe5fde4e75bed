"""An experiment's run as a state machine: claim and lease, flags, finish, re-queue, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.models import FINAL_STATUSES, ErrorReason, Experiment, Status, User, utcnow
from core.repositories.experiments import running_single_runs_query

# The columns of an experiment cancelled by a request.
CANCELLED: dict[str, Any] = {"status": Status.cancelled, "error": "cancelled", "error_reason": ErrorReason.cancelled}


class RunRepository:
    """An experiment's run as a state machine: queued -> running (a claim with a lease) -> final,
    re-queued when its worker hands it over or is lost; cancel and interrupt requests."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def claim(self, experiment_id: int, worker: str, running_limit: int = 0) -> bool:
        """Move a queued experiment to running for this worker; False if someone else has it,
        it is cancelled, or (with `running_limit`) its owner already runs that many single runs.
        The limit is checked in the same statement as the claim, under a lock on the owner's row
        (PostgreSQL; SQLite writes one at a time anyway), so two workers never both pass it."""
        now = utcnow()
        conditions = [
            Experiment.id == experiment_id,
            Experiment.status == Status.queued,
            Experiment.cancel_requested.is_(False),
        ]
        if running_limit:
            owner_id = self.session.scalar(select(Experiment.owner_id).where(Experiment.id == experiment_id))
            if owner_id is not None:
                # FOR NO KEY UPDATE: serializes this user's claims (they take the same lock) but
                # not the foreign-key checks (FOR KEY SHARE) that writes to rows referencing the
                # user take -- a cancel's counter-log insert took one while holding the
                # experiment row this claim waits for: a deadlock under FOR UPDATE.
                self.session.execute(select(User.id).where(User.id == owner_id).with_for_update(key_share=True))
                conditions.append(running_single_runs_query(owner_id).scalar_subquery() < running_limit)
        result = self.session.execute(
            update(Experiment)
            .where(*conditions)
            .values(
                status=Status.running,
                started_at=now,
                heartbeat_at=now,
                worker=worker,
                interrupt_requested=False,
                attempts=Experiment.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def renew_lease(self, experiment_id: int, worker: str) -> bool:
        """Extend this worker's lease; False when the run is no longer this worker's."""
        result = self.session.execute(
            update(Experiment)
            .where(Experiment.id == experiment_id, Experiment.status == Status.running, Experiment.worker == worker)
            .values(heartbeat_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def flags(self, experiment_id: int) -> tuple[bool, bool, str | None]:
        """(cancel requested, interrupt requested, worker holding the run)."""
        row = self.session.execute(
            select(Experiment.cancel_requested, Experiment.interrupt_requested, Experiment.worker).where(
                Experiment.id == experiment_id
            )
        ).one()
        return bool(row[0]), bool(row[1]), row[2]

    def requeue(
        self,
        experiment_id: int,
        worker: str | None = None,
        expired_before: datetime | None = None,
        *,
        lost: bool = False,
    ) -> bool:
        """Back to queued (graceful shutdown, or a lost worker's expired lease); the caller sends
        the message again. A run whose cancel was requested is finished as cancelled instead
        (nobody would ever claim it). `lost` counts a loss (worker gone, infrastructure failure);
        a graceful hand-over is not one. Conditional, so only one of several reconcilers wins;
        True when re-queued."""
        query = update(Experiment).where(Experiment.id == experiment_id, Experiment.status == Status.running)
        if worker is not None:
            query = query.where(Experiment.worker == worker)
        if expired_before is not None:
            query = query.where(Experiment.heartbeat_at < expired_before)
        self.session.execute(
            query.where(Experiment.cancel_requested.is_(True)).values(
                **CANCELLED, worker=None, finished_at=utcnow()
            )
        )
        losses = Experiment.losses + 1 if lost else Experiment.losses
        result = self.session.execute(
            query.where(Experiment.cancel_requested.is_(False)).values(
                status=Status.queued, worker=None, interrupt_requested=False, dispatched_at=utcnow(), losses=losses
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def cancel_waiting(self) -> int:
        """Finish queued experiments whose cancel was requested (e.g. re-queued before the cancel
        arrived): no worker will claim them, so nothing else would."""
        result = self.session.execute(
            update(Experiment)
            .where(Experiment.status == Status.queued, Experiment.cancel_requested.is_(True))
            .values(**CANCELLED, finished_at=utcnow())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def request_interrupt(self, worker_prefix: str) -> int:
        """Ask every run of a shutting-down worker to checkpoint and go back to the queue."""
        result = self.session.execute(
            update(Experiment)
            .where(Experiment.status == Status.running, Experiment.worker.startswith(worker_prefix, autoescape=True))
            .values(interrupt_requested=True)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def lock_running(self, experiment_id: int) -> bool:
        """Touch a running experiment's row: takes its write lock until commit (PostgreSQL row
        lock; SQLite's database write lock). False if it is not running."""
        result = self.session.execute(
            update(Experiment)
            .where(Experiment.id == experiment_id, Experiment.status == Status.running)
            .values(heartbeat_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def cancel_requested(self, experiment_id: int) -> bool:
        value = self.session.scalar(select(Experiment.cancel_requested).where(Experiment.id == experiment_id))
        return bool(value)

    def finish(
        self,
        experiment_id: int,
        status: Status,
        *,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
        reason: ErrorReason | None = None,
        worker: str | None = None,
    ) -> bool:
        """Record a final state for a running experiment; False if it was not running (or, with
        `worker`, no longer that worker's run)."""
        query = update(Experiment).where(Experiment.id == experiment_id, Experiment.status == Status.running)
        if worker is not None:
            query = query.where(Experiment.worker == worker)
        result = self.session.execute(
            query.values(status=status, summary=summary, error=error, error_reason=reason, finished_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def cancel_abandoned(self, experiment_id: int, expired_before: datetime) -> bool:
        """Cancel a running experiment whose worker is gone (its lease expired): nobody is left
        to see the request, so it ends now."""
        result = self.session.execute(
            update(Experiment)
            .where(
                Experiment.id == experiment_id,
                Experiment.status == Status.running,
                Experiment.heartbeat_at < expired_before,
            )
            .values(
                **CANCELLED, worker=None, finished_at=utcnow()
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def cancel_tree(
        self, experiment: Experiment, abandoned_before: datetime, summary: dict[str, Any] | None = None
    ) -> None:
        """Cancel an experiment and its children (the one cancel cascade, for the API and the
        fan-out host): queued ones end now, running ones at their next check, running ones whose
        worker is gone (lease older than `abandoned_before`) now; a fan-out parent ends once every
        child has."""
        for child in experiment.children:
            self.request_cancel(child)
            self.cancel_abandoned(child.id, abandoned_before)
        self.request_cancel(experiment)
        if not experiment.children:  # a run, or a parent still planning: its worker may be gone
            self.cancel_abandoned(experiment.id, abandoned_before)
        self.session.flush()
        self.session.refresh(experiment)
        self.session.refresh(experiment, ["children"])
        if experiment.children and all(c.status in FINAL_STATUSES for c in experiment.children):
            self.finish(
                experiment.id, Status.cancelled, error="cancelled", reason=ErrorReason.cancelled, summary=summary
            )
            self.session.refresh(experiment)

    def request_cancel(self, experiment: Experiment) -> None:
        """Queued: cancelled now. Running: flagged; the worker stops at its next check. Each a
        conditional update on the row as it is now (it may have finished since it was read): a
        finished experiment is left as it ended."""
        rows = update(Experiment).where(Experiment.id == experiment.id).execution_options(synchronize_session=False)
        queued = rows.where(Experiment.status == Status.queued)
        self.session.execute(queued.values(**CANCELLED, cancel_requested=True, finished_at=utcnow()))
        self.session.execute(rows.where(Experiment.status == Status.running).values(cancel_requested=True))
        self.session.flush()
        self.session.refresh(experiment)
