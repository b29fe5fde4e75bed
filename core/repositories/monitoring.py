"""What the Prometheus exposition (`/metrics`) and list totals read: counts and timings kept by
the database as experiments change, never a scan of the experiments table.

The triggers of migration 0006 log every change of an experiment's status, kind, owner or
timings to `experiment_changes` (the old state out, the new state in). `fold_changes` moves the
logged rows into `experiment_counts` and `experiment_durations`; readers add the rows not folded
yet in the same statement, so a count is exact whenever it is read and costs O(owners x kinds x
statuses + changes since the last fold)."""

from __future__ import annotations

import bisect
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.models import Experiment, ExperimentChange, ExperimentCount, ExperimentDuration, Status

# Histogram buckets in seconds (short CPU runs to multi-hour GPU runs); bucket index
# len(DURATION_BUCKETS) is everything above the largest (+Inf).
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600)
PHASES = ("queued", "run")


def duration_bucket(milliseconds: int) -> int:
    """The index of the first bucket whose upper bound holds this duration."""
    return bisect.bisect_left(DURATION_BUCKETS, max(0, milliseconds) / 1000)


class Histogram:
    """One kind's histogram: counts per bucket (not cumulative) and the sum, in seconds."""

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum_ms = 0

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, experiments at or below it) for each bucket, +Inf last."""
        out, total = [], 0
        for bound, count in zip([*DURATION_BUCKETS, float("inf")], self.counts, strict=True):
            total += count
            out.append((float(bound), total))
        return out

    @property
    def sum_seconds(self) -> float:
        return self.sum_ms / 1000


class MonitoringRepository:
    """Counts and timings over all experiments, for `/metrics` and list totals."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def fold_changes(self) -> int:
        """Move the logged changes into the counters; returns how many were folded. Each change
        is taken by exactly one folder (DELETE ... RETURNING), and counters are updated in key
        order, so concurrent folders neither double-count nor deadlock. The caller commits."""
        if self.session.scalar(select(ExperimentChange.id).limit(1)) is None:
            return 0
        taken = self.session.execute(
            delete(ExperimentChange).returning(
                ExperimentChange.sign,
                ExperimentChange.owner_id,
                ExperimentChange.kind,
                ExperimentChange.status,
                ExperimentChange.queued_ms,
                ExperimentChange.run_ms,
            )
        ).all()
        counts: dict[tuple[int, str, str], int] = {}
        durations: dict[tuple[str, str, int], list[int]] = {}
        for sign, owner_id, kind, status, queued_ms, run_ms in taken:
            key = (owner_id, kind, status)
            counts[key] = counts.get(key, 0) + sign
            for phase, ms in (("queued", queued_ms), ("run", run_ms)):
                if ms is not None:
                    slot = durations.setdefault((phase, kind, duration_bucket(ms)), [0, 0])
                    slot[0] += sign
                    slot[1] += sign * max(0, ms)
        self._add(
            ExperimentCount,
            ["owner_id", "kind", "status"],
            [{"owner_id": o, "kind": k, "status": s, "count": n} for (o, k, s), n in sorted(counts.items()) if n],
        )
        self._add(
            ExperimentDuration,
            ["phase", "kind", "bucket"],
            [
                {"phase": p, "kind": k, "bucket": b, "count": n, "sum_ms": ms}
                for (p, k, b), (n, ms) in sorted(durations.items())
                if n or ms
            ],
        )
        return len(taken)

    def _add(self, table: type[ExperimentCount] | type[ExperimentDuration], keys: list[str], rows: list[Any]) -> None:
        """Add each row's numbers to the stored row of the same key (inserting it if new)."""
        if not rows:
            return
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        statement = insert.values(rows)
        added = {c: getattr(table, c) + getattr(statement.excluded, c) for c in ("count", "sum_ms") if c in rows[0]}
        self.session.execute(statement.on_conflict_do_update(index_elements=keys, set_=added))

    def count(self, *, owner_id: int | None = None, status: str | None = None, kind: str | None = None) -> int:
        """Experiments matching these filters, from the counters (one statement: exact)."""
        return sum(self.counts_by(owner_id=owner_id, status=status, kind=kind).values())

    def counts_by(
        self, *, owner_id: int | None = None, status: str | None = None, kind: str | None = None
    ) -> dict[str, int]:
        """Experiments by status, optionally of one owner, status or kind."""
        parts = []
        for table, number in ((ExperimentCount, ExperimentCount.count), (ExperimentChange, ExperimentChange.sign)):
            part = select(table.status.label("status"), number.label("n"))
            if owner_id is not None:
                part = part.where(table.owner_id == owner_id)
            if status is not None:
                part = part.where(table.status == status)
            if kind is not None:
                part = part.where(table.kind == kind)
            parts.append(part)
        both = union_all(*parts).subquery()
        rows = self.session.execute(select(both.c.status, func.sum(both.c.n)).group_by(both.c.status))
        return {state: int(n) for state, n in rows if n}

    def counts_by_status(self) -> dict[str, int]:
        return self.counts_by()

    def histograms(self) -> dict[str, dict[str, Histogram]]:
        """phase -> kind -> histogram, from the folded counters (fold first for the latest)."""
        out: dict[str, dict[str, Histogram]] = {phase: {} for phase in PHASES}
        rows = self.session.execute(
            select(
                ExperimentDuration.phase,
                ExperimentDuration.kind,
                ExperimentDuration.bucket,
                ExperimentDuration.count,
                ExperimentDuration.sum_ms,
            )
        )
        for phase, kind, bucket, count, sum_ms in rows:
            histogram = out.setdefault(phase, {}).setdefault(kind, Histogram())
            histogram.counts[bucket] += count
            histogram.sum_ms += sum_ms
        for kinds in out.values():  # a kind whose experiments were all deleted
            for kind in [k for k, h in kinds.items() if not any(h.counts)]:
                del kinds[kind]
        return out

    def oldest_queued_at(self) -> datetime | None:
        """When the longest-waiting queued experiment was submitted (ids grow with submission
        time: the first queued id, read from the (status, id) index)."""
        return self.session.scalar(
            select(Experiment.created_at).where(Experiment.status == Status.queued).order_by(Experiment.id).limit(1)
        )

    def busy_workers(self) -> int:
        """Worker processes running an experiment now (a run's `worker` is host/pid/attempt)."""
        rows = self.session.scalars(select(Experiment.worker).where(Experiment.status == Status.running)).all()
        return len({w.rsplit("/", 1)[0] for w in rows if w})
