"""Queries for running the server rather than its experiments: this database's identity and
the workers seen alive. (Repositories query and flush; the caller commits.)"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.models import Installation, WorkerBeat, utcnow
from core.resources import DEFAULT_QUEUE, parse_queues
from core.settings import get_settings


def worker_timeout() -> timedelta:
    """A worker not seen for this long is presumed gone (three missed reconciler passes)."""
    return timedelta(seconds=max(30.0, 3 * get_settings().reconcile_seconds))


class InstallationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def uid(self) -> str:
        """This database's id (made by the migration; made here for a database that predates it)."""
        row = self.session.get(Installation, 1)
        if row is None:
            row = Installation(id=1, uid=uuid.uuid4().hex)
            self.session.add(row)
            self.session.flush()
        return row.uid


class WorkerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def beat(self, name: str, concurrency: int, queues: Sequence[str] = (DEFAULT_QUEUE,), gpus: int = 0) -> None:
        """Record that a worker is alive now, and what it serves (its queues, its GPUs)."""
        row = self.session.get(WorkerBeat, name)
        advertised = ",".join(queues)[:500]
        if row is None:
            self.session.add(WorkerBeat(name=name, concurrency=concurrency, queues=advertised, gpus=gpus))
        else:
            row.seen_at, row.concurrency, row.queues, row.gpus = utcnow(), concurrency, advertised, gpus
        self.session.flush()

    def forget(self, name: str) -> None:
        """A worker that stopped cleanly."""
        self.session.execute(delete(WorkerBeat).where(WorkerBeat.name == name))

    def seen_since(self, since: datetime) -> Sequence[WorkerBeat]:
        query = select(WorkerBeat).where(WorkerBeat.seen_at >= since).order_by(WorkerBeat.name)
        return self.session.scalars(query).all()

    def live_queues(self) -> list[tuple[str, list[str]]]:
        """(name, queues it consumes) of each worker seen alive recently."""
        return [(w.name, parse_queues(w.queues)) for w in self.seen_since(utcnow() - worker_timeout())]

    def last_seen(self) -> datetime | None:
        return self.session.scalar(select(WorkerBeat.seen_at).order_by(WorkerBeat.seen_at.desc()).limit(1))
