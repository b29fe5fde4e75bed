"""Prometheus `/metrics`: queue depth, running, finished by status, queue waits and run durations,
read at each scrape from counters the database keeps (the source of truth): the cost of a scrape
does not grow with the number of experiments stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from sqlalchemy.orm import Session

from api.deps import SessionDep
from core.gpus import gpu_readings
from core.models import FINAL_STATUSES, Status
from core.operations import WorkerRepository, worker_timeout
from core.repositories import MonitoringRepository
from core.repositories.monitoring import Histogram

router = APIRouter(tags=["monitoring"])


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _histogram(name: str, doc: str, histograms: dict[str, Histogram]) -> HistogramMetricFamily:
    """A histogram per kind from the stored bucket counts."""
    family = HistogramMetricFamily(name, doc, labels=["kind"])
    for kind, histogram in sorted(histograms.items()):
        buckets = [
            ("+Inf" if bound == float("inf") else str(floatToGoString(bound)), float(count))  # type: ignore[no-untyped-call]
            for bound, count in histogram.cumulative()
        ]
        family.add_metric([kind], buckets, sum_value=histogram.sum_seconds)
    return family


class ExperimentCollector:
    """Reads the numbers for one scrape."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterator[Metric]:
        monitoring = MonitoringRepository(self.session)
        monitoring.fold_changes()
        self.session.commit()
        counts = monitoring.counts_by_status()
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
        oldest = monitoring.oldest_queued_at()
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
            monitoring.busy_workers(),
        )
        yield from _gpu_gauges()
        histograms = monitoring.histograms()
        yield _histogram(
            "trainlab_experiment_queued_seconds", "Time from submission to start, by kind.", histograms["queued"]
        )
        yield _histogram(
            "trainlab_experiment_run_seconds", "Run time of finished experiments, by kind.", histograms["run"]
        )


def _gpu_gauges() -> Iterator[Metric]:
    """Per-GPU gauges of the API's host (NVML); none without nvidia-ml-py or a driver."""
    readings = gpu_readings()
    if not readings:
        return
    labels = ["gpu", "name", "uuid"]
    utilization = GaugeMetricFamily("trainlab_gpu_utilization_percent", "GPU utilization (NVML).", labels=labels)
    used = GaugeMetricFamily("trainlab_gpu_memory_used_bytes", "GPU memory in use (NVML).", labels=labels)
    total = GaugeMetricFamily("trainlab_gpu_memory_total_bytes", "GPU memory (NVML).", labels=labels)
    for r in readings:
        key = [str(r.index), r.name, r.uuid]
        utilization.add_metric(key, r.utilization_percent)
        used.add_metric(key, r.memory_used_bytes)
        total.add_metric(key, r.memory_total_bytes)
    yield from (utilization, used, total)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(session: SessionDep) -> Response:
    """Prometheus text exposition of the experiment counts and durations."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExperimentCollector(session))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
