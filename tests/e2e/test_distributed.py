"""Data-parallel training through a real worker (PostgreSQL + Redis): a train spec with two CPU
processes (gloo) runs in the worker's pool process and the rank it starts, reports its metrics
and says so in its summary; a cancel stops both processes; impossible counts are a 422."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.services import Service

pytestmark = pytest.mark.e2e
SPEC = {
    "name": "two processes",
    "data": {"source": "synthetic/moons", "options": {"n_samples": 400}},
    "model": {"hidden": [16]},
    "train": {"epochs": 3, "batch_size": 32, "device": "cpu", "distributed": {"processes": 2}},
    "evaluate": {"plots": False},
}


def rank_processes(worker_pid: int) -> list[int]:
    """Rank processes started by a pool process of the worker whose main process is `worker_pid`."""

    def parent(pid: int) -> int:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])

    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and b"ml.training.distributed_rank" in (entry / "cmdline").read_bytes()
                and parent(parent(int(entry.name))) == worker_pid
            ):
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def test_a_two_process_run_succeeds_with_metrics_and_says_how_it_ran(lab_server: Service) -> None:
    created = lab_server.http.post("/api/v1/experiments", json=SPEC)
    assert created.status_code == 201, created.text
    done = lab_server.wait_for(created.json()["id"], ("succeeded", "failed", "cancelled"), timeout=300)
    assert done["status"] == "succeeded", done["error"]
    summary = done["summary"]
    assert summary["distributed"]["processes"] == 2 and summary["distributed"]["backend"] == "gloo"
    assert summary["distributed"]["identical_weights"] and summary["device"] == "cpu"
    assert summary["epochs_run"] == 3 and "accuracy" in summary["test"]
    metrics = lab_server.http.get(f"/api/v1/experiments/{done['id']}/metrics").json()
    losses = [m for m in metrics if (m["split"], m["name"]) == ("train", "loss")]
    assert sorted(m["step"] for m in losses) == [1, 2, 3]
    assert len([m for m in metrics if (m["split"], m["name"]) == ("validation", "accuracy")]) == 3
    names = {a["name"] for a in lab_server.http.get(f"/api/v1/experiments/{done['id']}/artifacts").json()}
    assert "model.pt" in names


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds rank processes in /proc (Linux)")
def test_a_cancel_stops_every_process_of_a_two_process_run(lab_server: Service) -> None:
    spec = {**SPEC, "name": "long", "train": {**SPEC["train"], "epochs": 2000}}
    created = lab_server.http.post("/api/v1/experiments", json=spec).json()
    deadline = time.monotonic() + 240
    while not lab_server.http.get(f"/api/v1/experiments/{created['id']}/metrics").json():
        assert time.monotonic() < deadline, "no metrics from the two-process run"
        time.sleep(0.3)
    worker = lab_server.worker_running(lab_server.http.get(f"/api/v1/experiments/{created['id']}").json())
    assert len(rank_processes(worker.pid)) == 1  # rank 1; rank 0 is the pool process itself
    assert lab_server.http.post(f"/api/v1/experiments/{created['id']}/cancel").json()["cancel_requested"]
    final = lab_server.wait_for(created["id"], ("cancelled", "failed", "succeeded"), timeout=60)
    assert final["status"] == "cancelled", final["error"]
    assert final["summary"] is None or "distributed" not in final["summary"]
    assert rank_processes(worker.pid) == []  # ended before the run's final state was written


def test_impossible_process_counts_are_a_422(lab_server: Service) -> None:
    odd = {**SPEC, "train": {**SPEC["train"], "batch_size": 33}}
    answer = lab_server.http.post("/api/v1/experiments", json=odd)
    assert answer.status_code == 422 and "not a multiple of the 2 data-parallel processes" in answer.text
    on_gpus = {**SPEC, "train": {**SPEC["train"], "device": "auto"}}
    answer = lab_server.http.post("/api/v1/experiments", json=on_gpus)
    assert answer.status_code == 422 and "say so with train.device: cpu" in answer.text
