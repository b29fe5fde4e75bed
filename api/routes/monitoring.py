"""Prometheus `/metrics`: queue depth, running, finished by status, queue waits and run durations,
read from the database (the source of truth) at each scrape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from sqlalchemy.orm import Session

from api.deps import SessionDep
from core.models import FINAL_STATUSES, Status
from core.operations import WorkerRepository, worker_timeout
from core.repositories import MonitoringRepository

router = APIRouter(tags=["monitoring"])
# Seconds: short CPU runs to multi-hour GPU runs.
BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600)


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _histogram(name: str, doc: str, samples: dict[str, list[float]]) -> HistogramMetricFamily:
    """A histogram per kind from raw durations."""
    family = HistogramMetricFamily(name, doc, labels=["kind"])
    for kind, values in sorted(samples.items()):
        buckets = [(str(floatToGoString(b)), float(sum(1 for v in values if v <= b))) for b in BUCKETS]  # type: ignore[no-untyped-call]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([kind], buckets, sum_value=sum(values))
    return family


class ExperimentCollector:
    """Reads the numbers for one scrape."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterator[Metric]:
        counts = MonitoringRepository(self.session).counts_by_status()
        now = datetime.now(UTC)
        yield GaugeMetricFamily(
            "trainlab_queue_depth", "Experiments queued, waiting for a worker.", counts.get("queued", 0)
        )
        yield GaugeMetricFamily("trainlab_experiments_running", "Experiments running now.", counts.get("running", 0))
        by_status = GaugeMetricFamily("trainlab_experiments", "Experiments stored, by status.", labels=["status"])
        for status in Status:
            by_status.add_metric([status.value], counts.get(status.value, 0))
        yield by_status
        finished = CounterMetricFamily(
            "trainlab_experiments_finished", "Experiments that reached a final state, by status.", labels=["status"]
        )
        for status in FINAL_STATUSES:
            finished.add_metric([status.value], counts.get(status.value, 0))
        yield finished
        oldest = MonitoringRepository(self.session).oldest_queued_at()
        yield GaugeMetricFamily(
            "trainlab_queue_oldest_seconds",
            "Age of the oldest queued experiment (0 when none).",
            _seconds(oldest, now) if oldest else 0.0,
        )
        workers = WorkerRepository(self.session)
        alive = workers.seen_since(now - worker_timeout())
        yield GaugeMetricFamily("trainlab_workers_alive", "Workers whose heartbeat is recent.", len(alive))
        last_seen = GaugeMetricFamily(
            "trainlab_worker_last_seen_seconds", "Seconds since each known worker's last heartbeat.", labels=["worker"]
        )
        for beat in workers.seen_since(now - timedelta(days=1)):
            last_seen.add_metric([beat.name], max(0.0, _seconds(beat.seen_at, now)))
        yield last_seen
        yield GaugeMetricFamily(
            "trainlab_workers_busy",
            "Workers running an experiment now.",
            MonitoringRepository(self.session).busy_workers(),
        )
        waits: dict[str, list[float]] = {}
        runs: dict[str, list[float]] = {}
        for kind, state, created, started, finished_at in MonitoringRepository(self.session).started_rows():
            waits.setdefault(kind, []).append(max(0.0, _seconds(created, started)))
            if finished_at is not None and state in FINAL_STATUSES:
                runs.setdefault(kind, []).append(max(0.0, _seconds(started, finished_at)))
        yield _histogram("trainlab_experiment_queued_seconds", "Time from submission to start, by kind.", waits)
        yield _histogram("trainlab_experiment_run_seconds", "Run time of finished experiments, by kind.", runs)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(session: SessionDep) -> Response:
    """Prometheus text exposition of the experiment counts and durations."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExperimentCollector(session))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
