"""Routing by resources with real worker processes on the CPU: a worker without GPUs (started
as `TRAINLAB_WORKER_GPUS=` makes it, whatever the host has) serves `cpu_only` runs and plain
ones; a run asking for a GPU is not silently queued forever: GET says why no worker can run it."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import Service, running_service, throwaway_postgres, throwaway_redis

pytestmark = pytest.mark.e2e
CPU_WORKER = {"TRAINLAB_WORKER_GPUS": ""}  # a CPU-only worker even on a GPU host
TINY = {
    "name": "tiny",
    "data": {"source": "synthetic/moons", "options": {"n_samples": 300}},
    "model": {"hidden": [8]},
    "train": {"epochs": 2, "batch_size": 64},
    "evaluate": {"plots": False},
}


@pytest.fixture(scope="module", params=["embedded", "lab_server"])
def cpu_service(request: pytest.FixtureRequest) -> Iterator[Service]:
    data_dir = Path(tempfile.mkdtemp(prefix="trainlab-e2e-"))
    if request.param == "embedded":
        with running_service(CPU_WORKER, data_dir) as service:
            yield service
        return
    with throwaway_postgres() as pg, throwaway_redis() as redis_url:
        env = {**CPU_WORKER, "TRAINLAB_DATABASE_URL": pg, "TRAINLAB_BROKER_URL": redis_url}
        with running_service(env, data_dir) as service:
            yield service


def _warning_of(service: Service, experiment_id: int, timeout: float = 60) -> dict:
    """The experiment once a worker's heartbeat is in (the warning needs the live workers)."""
    deadline = time.monotonic() + timeout
    while True:
        experiment = service.http.get(f"/api/v1/experiments/{experiment_id}").json()
        if experiment["warning"] or time.monotonic() > deadline:
            return experiment
        time.sleep(0.3)


def test_a_cpu_only_run_is_served_by_a_cpu_worker(cpu_service: Service) -> None:
    created = cpu_service.http.post("/api/v1/experiments", json={**TINY, "resources": {"cpu_only": True}})
    assert created.status_code == 201, created.text
    done = cpu_service.wait_for(created.json()["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    assert done["summary"]["device"] == "cpu" and "gpu" not in done["summary"]
    assert done["warning"] is None


def test_a_gpu_run_with_only_cpu_workers_is_flagged_with_the_reason(cpu_service: Service) -> None:
    created = cpu_service.http.post("/api/v1/experiments", json={**TINY, "resources": {"gpus": 1}})
    assert created.status_code == 201, created.text
    experiment = _warning_of(cpu_service, created.json()["id"])
    assert experiment["status"] == "queued"
    warning = experiment["warning"]
    assert warning is not None, "a run no live worker can serve must say so"
    assert "no live worker can run it" in warning and "1 GPU" in warning and "queue gpu1" in warning
    assert "the live workers consume cpu, trainlab" in warning
    # a plain run still goes through: the CPU worker is not blocked by the waiting GPU run
    plain = cpu_service.http.post("/api/v1/experiments", json=TINY).json()
    assert cpu_service.wait_for(plain["id"], ("succeeded", "failed"))["status"] == "succeeded"
    still = cpu_service.http.get(f"/api/v1/experiments/{experiment['id']}").json()
    assert still["status"] == "queued" and still["warning"] == warning
    cancelled = cpu_service.http.post(f"/api/v1/experiments/{experiment['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["warning"] is None
