"""A spec's `resources` route it to a queue; a queued experiment that no live worker can serve
carries a warning with the reason (in the answer to POST and in GET)."""

from __future__ import annotations

from core.resources import worker_queues

SPEC = {"name": "r", "data": {"source": "builtin/iris"}}


def beat(name: str, gpus: int) -> None:
    from core.db import session_scope
    from core.operations import WorkerRepository

    with session_scope() as session:  # what a worker's reconciler writes on each pass
        WorkerRepository(session).beat(name, 1, queues=worker_queues(gpus), gpus=gpus)
        session.commit()


def test_a_run_no_live_worker_can_serve_is_flagged_then_served(client) -> None:
    beat("cpu@lab", 0)
    created = client.post("/api/v1/experiments", json={**SPEC, "resources": {"gpus": 2}})
    assert created.status_code == 201
    warning = created.json()["warning"]
    assert "no live worker can run it" in warning and "2 GPUs" in warning and "queue gpu2" in warning
    assert "the live workers consume cpu, trainlab" in warning
    assert client.get(f"/api/v1/experiments/{created.json()['id']}").json()["warning"] == warning
    beat("gpus@lab", 2)  # a worker with two GPUs starts: the run can be served
    assert client.get(f"/api/v1/experiments/{created.json()['id']}").json()["warning"] is None


def test_plain_and_cpu_only_runs_are_not_flagged(client) -> None:
    beat("cpu@lab", 0)
    for spec in (SPEC, {**SPEC, "resources": {"cpu_only": True}}):
        created = client.post("/api/v1/experiments", json=spec)
        assert created.status_code == 201 and created.json()["warning"] is None
    bad = client.post("/api/v1/experiments", json={**SPEC, "resources": {"gpus": 1, "cpu_only": True}})
    assert bad.status_code == 422 and "cpu_only" in bad.text
