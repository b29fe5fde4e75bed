"""Prometheus /metrics: queue depth, running, finished by status and durations, from the database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families


def store_experiments() -> None:
    """Two queued, one running, a train run that took 90 s, a failed one of 2 s, a cancelled one."""
    from core.db import session_scope
    from core.models import Experiment, Status, utcnow
    from core.repositories import ExperimentRepository, RunRepository

    with session_scope() as session:
        repo, runs = ExperimentRepository(session), RunRepository(session)
        rows = [repo.create(name=f"m{i}", kind="train" if i != 4 else "pinn", spec={}) for i in range(6)]
        for row, (status, queued, ran) in zip(
            rows[2:],
            [(Status.running, 3, None), (Status.succeeded, 10, 90), (Status.failed, 1, 2), (Status.cancelled, 0, None)],
            strict=True,
        ):
            if status == Status.cancelled:
                runs.request_cancel(row)
                continue
            runs.claim(row.id, "w1")
            if ran is not None:
                runs.finish(row.id, status)
            session.flush()
            experiment = session.get(Experiment, row.id)
            assert experiment is not None
            session.refresh(experiment)
            experiment.started_at = experiment.created_at + timedelta(seconds=queued)
            if ran is not None:
                experiment.finished_at = experiment.started_at + timedelta(seconds=ran)
        rows[0].created_at = utcnow() - timedelta(seconds=120)  # the oldest queued one
        session.commit()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_reads_counts_and_durations_from_the_database(api_env: Path) -> None:
    from api.main import create_app

    store_experiments()
    with TestClient(create_app()) as scraper:  # no token: Prometheus scrapes without one
        response = scraper.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)
    assert values[("trainlab_queue_depth", ())] == 2
    assert values[("trainlab_experiments_running", ())] == 1
    assert values[("trainlab_workers_busy", ())] == 1
    assert values[("trainlab_experiments", (("status", "queued"),))] == 2
    for status in ("succeeded", "failed", "cancelled"):
        assert values[("trainlab_experiments_finished_total", (("status", status),))] == 1
    assert 119 <= values[("trainlab_queue_oldest_seconds", ())] < 200
    assert values[("trainlab_experiment_run_seconds_count", (("kind", "train"),))] == 1
    assert values[("trainlab_experiment_run_seconds_count", (("kind", "pinn"),))] == 1
    assert values[("trainlab_experiment_run_seconds_sum", (("kind", "train"),))] == 90
    assert values[("trainlab_experiment_run_seconds_bucket", (("kind", "train"), ("le", "60.0")))] == 0
    assert values[("trainlab_experiment_run_seconds_bucket", (("kind", "train"), ("le", "120.0")))] == 1
    assert values[("trainlab_experiment_queued_seconds_count", (("kind", "train"),))] == 2  # running + succeeded
    assert values[("trainlab_experiment_queued_seconds_sum", (("kind", "train"),))] == 13
