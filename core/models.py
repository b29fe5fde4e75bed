"""SQLAlchemy 2 typed models. The database is the source of truth for every experiment."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Same constraint names on SQLite and PostgreSQL, so Alembic migrations agree.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class Status(enum.StrEnum):
    """The life of an experiment: queued -> running -> one of the four final states. `pruned`
    is a search trial stopped early by the search's pruner: a healthy outcome, not a failure."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    pruned = "pruned"


FINAL_STATUSES = (Status.succeeded, Status.failed, Status.cancelled, Status.pruned)


class ErrorReason(enum.StrEnum):
    """Why an experiment ended other than `succeeded` (its `error_reason`): what a dashboard, a
    script or an alert may branch on. Only `error` and `worker_lost` are the server's fault."""

    cancelled = "cancelled"  # someone cancelled it
    timeout = "timeout"  # its time limit was reached
    diverged = "diverged"  # the loss became nan/inf: usually the learning rate
    data = "data"  # the data cannot be used as the spec says
    invalid = "invalid"  # the spec cannot run (or names objects its owner may not use)
    memory = "memory"  # it needed more than the worker's memory budget
    pruned = "pruned"  # a search trial stopped early by the search's pruner
    children = "children"  # a fan-out parent whose children could not be combined
    worker_lost = "worker_lost"  # its worker was lost too many times
    error = "error"  # a bug or an infrastructure failure the server could not recover from


class User(Base):
    """A person (or a script's account) on the lab server."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    # A disabled user's tokens are refused; their experiments and data stay (an admin can read them).
    disabled: Mapped[bool] = mapped_column(default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")


class ApiToken(Base):
    """An API token. Only its SHA-256 is stored; `prefix` lets people tell tokens apart."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")


class Dataset(Base):
    """An uploaded data set; its file lives in the artifact store under `key`."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)  # archives may pass 2 GiB (migration 0007)
    info: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Experiment(Base):
    __tablename__ = "experiments"
    # One index for each filter a request path uses (migration 0006): a user's submissions of
    # the last minute, a user's queued/running ones and lists by status, lists newest first.
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key"),
        Index("ix_experiments_owner_id_id", "owner_id", "id"),
        Index("ix_experiments_owner_id_status", "owner_id", "status", "id"),
        Index("ix_experiments_owner_id_created_at", "owner_id", "created_at"),
        Index("ix_experiments_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default=Status.queued)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), nullable=True, index=True
    )
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    priority: Mapped[str] = mapped_column(String(8), default="normal", server_default="normal")
    dataset_id: Mapped[int | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # Set when the worker running it shuts down gracefully: checkpoint, then back to the queue.
    interrupt_requested: Mapped[bool] = mapped_column(default=False, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # runs started (claims)
    # Runs lost (worker killed, lease expired, infrastructure failure); graceful hand-overs are not.
    losses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    owner: Mapped[User | None] = relationship()
    children: Mapped[list[Experiment]] = relationship(
        back_populates="parent", order_by="Experiment.id", cascade="all, delete-orphan"
    )
    parent: Mapped[Experiment | None] = relationship(back_populates="children", remote_side=[id])


class Installation(Base):
    """This database's identity (one row): its `uid` is part of every artifact key it writes, so
    a new or restored database never reads another database's files from a kept store."""

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerBeat(Base):
    """A worker seen alive: its reconciler writes `seen_at` on every pass."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    # What it serves: the Celery queues it consumes (comma-separated) and its GPUs.
    queues: Mapped[str] = mapped_column(String(500), default="trainlab", server_default="trainlab")
    gpus: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Metric(Base):
    """One value of one per-epoch series. The unique key makes a retried write harmless."""

    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("experiment_id", "step", "split", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The unique key's first column serves lookups by experiment: no index of its own.
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)


class Artifact(Base):
    """A file a run produced; the bytes live in the artifact store under `key`."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("experiment_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExperimentChange(Base):
    """One row state of an experiment entering (+1) or leaving (-1) the counts, written by the
    database's triggers on experiments (migration 0006) and folded into the two tables below."""

    __tablename__ = "experiment_changes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    sign: Mapped[int] = mapped_column(Integer)
    owner_id: Mapped[int] = mapped_column(Integer)  # 0: no owner
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    queued_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # started - created
    run_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # finished - started, once final


class ExperimentCount(Base):
    """How many experiments an owner (0: none) has of one kind in one status."""

    __tablename__ = "experiment_counts"

    owner_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class ExperimentDuration(Base):
    """Histogram buckets of the queue waits (`phase` queued) and run times (`phase` run) by kind:
    how many stored experiments fall in bucket `bucket` (not cumulative) and their sum."""

    __tablename__ = "experiment_durations"

    phase: Mapped[str] = mapped_column(String(8), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    sum_ms: Mapped[int] = mapped_column(BigInteger)
