"""All queries live here. Repositories query and flush; routes and tasks commit."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from core.models import (
    FINAL_STATUSES,
    ApiToken,
    Artifact,
    Dataset,
    ErrorReason,
    Experiment,
    Metric,
    Status,
    User,
    utcnow,
)
from core.security import display_prefix, hash_token, new_token, same_hash

# Ids are 32-bit integer columns.
MAX_ROW_ID = 2**31 - 1
PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2}
# The columns of an experiment cancelled by a request.
CANCELLED: dict[str, Any] = {"status": Status.cancelled, "error": "cancelled", "error_reason": ErrorReason.cancelled}


class ExperimentRepository:
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
        return self.session.scalar(self._running_single_runs_query(owner_id)) or 0

    @staticmethod
    def _running_single_runs_query(owner_id: int) -> Any:
        # Aliases: used inside an UPDATE of experiments (the claim), nothing may correlate to it.
        child, running = aliased(Experiment), aliased(Experiment)
        parent_ids = select(child.parent_id).where(child.parent_id.is_not(None))
        return select(func.count(running.id)).where(
            running.owner_id == owner_id, running.status == Status.running, running.id.not_in(parent_ids)
        )

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
        """Newest first, with the total count of matching rows (only `owner_id`'s when given)."""
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
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(Experiment.id.desc()).limit(limit).offset(offset)).all()
        return rows, total

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
                self.session.execute(select(User.id).where(User.id == owner_id).with_for_update())
                conditions.append(self._running_single_runs_query(owner_id).scalar_subquery() < running_limit)
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

    def request_interrupt(self, worker_prefix: str) -> int:
        """Ask every run of a shutting-down worker to checkpoint and go back to the queue."""
        result = self.session.execute(
            update(Experiment)
            .where(Experiment.status == Status.running, Experiment.worker.startswith(worker_prefix, autoescape=True))
            .values(interrupt_requested=True)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def expired_runs(self, before: datetime) -> Sequence[Experiment]:
        """Running experiments whose lease ran out (their worker is presumed dead)."""
        return self.session.scalars(
            select(Experiment).where(Experiment.status == Status.running, Experiment.heartbeat_at < before)
        ).all()

    def running_parents(self) -> Sequence[Experiment]:
        parent_ids = select(Experiment.parent_id).where(Experiment.parent_id.is_not(None))
        return self.session.scalars(
            select(Experiment).where(Experiment.status == Status.running, Experiment.id.in_(parent_ids))
        ).all()

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


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, name: str, *, is_admin: bool = False) -> User:
        user = User(name=name, is_admin=is_admin)
        self.session.add(user)
        self.session.flush()
        return user

    def get_by_name(self, name: str) -> User | None:
        return self.session.scalar(select(User).where(User.name == name))

    def list(self) -> Sequence[User]:
        return self.session.scalars(select(User).order_by(User.id)).all()

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(User)) or 0


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def issue(self, user: User, label: str | None = None) -> tuple[str, ApiToken]:
        """A new token for `user`: the plain token (show it once) and its stored row."""
        token = new_token()
        row = ApiToken(user_id=user.id, prefix=display_prefix(token), token_hash=hash_token(token), label=label)
        self.session.add(row)
        self.session.flush()
        return token, row

    def authenticate(self, token: str) -> User | None:
        """The user a live token belongs to, or None (unknown or revoked)."""
        digest = hash_token(token)
        row = self.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        if row is None or row.revoked_at is not None or not same_hash(row.token_hash, digest):
            return None
        if row.user.disabled:
            return None
        row.last_used_at = utcnow()
        return row.user

    def list(self, user: User | None = None) -> Sequence[ApiToken]:
        query = select(ApiToken).order_by(ApiToken.id)
        if user is not None:
            query = query.where(ApiToken.user_id == user.id)
        return self.session.scalars(query).all()

    def revoke(self, prefix: str) -> int:
        """Revoke every live token whose prefix starts with `prefix`; how many were revoked."""
        rows = self.session.scalars(
            select(ApiToken).where(ApiToken.prefix.startswith(prefix, autoescape=True), ApiToken.revoked_at.is_(None))
        ).all()
        for row in rows:
            row.revoked_at = utcnow()
        self.session.flush()
        return len(rows)


class DatasetRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, dataset: Dataset) -> Dataset:
        self.session.add(dataset)
        self.session.flush()
        return dataset

    def visible(self, dataset_id: int, user: User) -> Dataset | None:
        dataset = self.session.get(Dataset, dataset_id)
        if dataset is None or not (user.is_admin or dataset.owner_id == user.id):
            return None
        return dataset

    def owned(self, dataset_id: int, owner_id: int) -> Dataset | None:
        """The data set if `owner_id` uploaded it (a spec's reference acts as its submitter)."""
        dataset = self.session.get(Dataset, dataset_id)
        return dataset if dataset is not None and dataset.owner_id == owner_id else None

    def list(self, owner_id: int | None) -> Sequence[Dataset]:
        query = select(Dataset).order_by(Dataset.id.desc())
        if owner_id is not None:
            query = query.where(Dataset.owner_id == owner_id)
        return self.session.scalars(query).all()

    def in_use(self, dataset_id: int) -> int:
        """How many experiments use the data set."""
        return self.session.scalar(select(func.count()).where(Experiment.dataset_id == dataset_id)) or 0

    def delete(self, dataset: Dataset) -> None:
        self.session.delete(dataset)
        self.session.flush()
