"""The experiment routes against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import queued_messages

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = (ROOT / "examples" / "quickstart.yaml").read_text()


def count(client) -> int:
    return client.get("/api/v1/experiments").json()["total"]


def test_create_from_yaml_stores_and_queues(client, api_env) -> None:
    response = client.post("/api/v1/experiments", content=QUICKSTART, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "queued" and body["kind"] == "train" and body["name"] == "quickstart-digits"
    assert body["spec"]["model"]["hidden"] == [128, 64]
    assert queued_messages(api_env) == 1
    again = client.get(f"/api/v1/experiments/{body['id']}").json()
    assert again["spec"] == body["spec"] and again["timings"]["run_seconds"] is None


def test_create_from_json_fills_defaults(client) -> None:
    response = client.post("/api/v1/experiments", json={"name": "m", "data": {"source": "synthetic/moons"}})
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["kind"] == "train" and spec["train"]["epochs"] == 50 and spec["preprocess"] == [{"step": "standardize"}]


def test_list_newest_first_with_filters_and_pagination(client) -> None:
    ids = [
        client.post("/api/v1/experiments", json={"name": f"run-{i}", "data": {"source": "builtin/iris"}}).json()["id"]
        for i in range(3)
    ]
    page = client.get("/api/v1/experiments", params={"limit": 2}).json()
    assert [e["id"] for e in page["items"]] == ids[::-1][:2] and page["total"] == 3
    assert client.get("/api/v1/experiments", params={"limit": 2, "offset": 2}).json()["items"][0]["id"] == ids[0]
    assert client.get("/api/v1/experiments", params={"name": "run-1"}).json()["total"] == 1
    assert client.get("/api/v1/experiments", params={"status": "queued"}).json()["total"] == 3
    assert client.get("/api/v1/experiments", params={"status": "running"}).json()["total"] == 0
    assert client.get("/api/v1/experiments", params={"kind": "pinn"}).json()["total"] == 0


def test_bad_spec_is_422_naming_field_and_allowed_values(client, api_env) -> None:
    spec = yaml.safe_load(QUICKSTART)
    spec["train"]["optimizer"]["name"] = "adamm"
    response = client.post("/api/v1/experiments", json=spec)
    assert response.status_code == 422
    detail = response.json()["detail"]
    # the path a person wrote: no union tag before it (not train.train.optimizer)
    bad = next(d for d in detail if d["loc"][:4] == ["body", "train", "optimizer", "name"])
    assert "adam" in bad["msg"] and "sgd" in bad["msg"]
    assert count(client) == 0 and queued_messages(api_env) == 0


def test_unknown_field_and_bounds_are_422(client) -> None:
    extra = client.post("/api/v1/experiments", json={"name": "x", "data": {"source": "builtin/iris"}, "colour": 1})
    assert extra.status_code == 422 and any("colour" in d["loc"] for d in extra.json()["detail"])
    huge = client.post(
        "/api/v1/experiments", json={"name": "x", "data": {"source": "builtin/iris"}, "train": {"epochs": 10**9}}
    )
    assert huge.status_code == 422 and "5000" in huge.json()["detail"][0]["msg"]
    source = client.post("/api/v1/experiments", json={"name": "x", "data": {"source": "builtin/nope"}})
    assert source.status_code == 422 and "builtin/digits" in str(source.json()["detail"])


def test_malformed_bodies_are_400_with_position(client) -> None:
    bad_yaml = client.post(
        "/api/v1/experiments", content="name: [unclosed", headers={"Content-Type": "application/yaml"}
    )
    assert bad_yaml.status_code == 400 and "line 1" in bad_yaml.json()["detail"]
    bad_json = client.post(
        "/api/v1/experiments", content='{"name": "x",}', headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400 and "column" in bad_json.json()["detail"]
    not_mapping = client.post("/api/v1/experiments", json=[1, 2])
    assert not_mapping.status_code == 422
    assert count(client) == 0


def test_unknown_ids_are_404(client) -> None:
    for path in (
        "/experiments/999",
        "/experiments/999/metrics",
        "/experiments/999/artifacts",
        "/experiments/999/artifacts/x.png",
    ):
        assert client.get(f"/api/v1{path}").status_code == 404, path
    assert client.post("/api/v1/experiments/999/cancel").status_code == 404


def test_cancel_queued_is_immediate_and_final(client) -> None:
    created = client.post("/api/v1/experiments", json={"name": "c", "data": {"source": "builtin/iris"}}).json()
    other = client.post("/api/v1/experiments", json={"name": "d", "data": {"source": "builtin/iris"}}).json()
    cancelled = client.post(f"/api/v1/experiments/{created['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    # cancelling again changes nothing; the other experiment is untouched
    assert client.post(f"/api/v1/experiments/{created['id']}/cancel").json()["status"] == "cancelled"
    assert client.get(f"/api/v1/experiments/{other['id']}").json()["status"] == "queued"


def test_oversized_body_is_413_and_stores_nothing(client, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from core.settings import get_settings

    monkeypatch.setenv("TRAINLAB_MAX_REQUEST_BYTES", "1000")
    get_settings.cache_clear()
    small = TestClient(create_app())
    response = small.post("/api/v1/experiments", content="x" * 5000, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 413
    assert count(client) == 0


def test_health_and_published_schema(client) -> None:
    from core.db import session_scope
    from core.operations import WorkerRepository

    health = client.get("/api/v1/health")  # no worker has ever started here
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["workers"]["alive"] == 0 and "no worker alive" in health.json()["problems"][0]
    with session_scope() as session:  # what a worker's reconciler writes on each pass
        WorkerRepository(session).beat("w1@lab", 2)
        session.commit()
    health = client.get("/api/v1/health").json()
    assert health["status"] == "ok" and health["problems"] == [] and health["workers"]["names"] == ["w1@lab"]
    scrape = client.get("/metrics").text
    assert "trainlab_workers_alive 1.0" in scrape and 'trainlab_worker_last_seen_seconds{worker="w1@lab"}' in scrape
    schema = client.get("/api/v1/spec/schema").json()
    assert "train" in str(schema) and "pinn" in str(schema)
    openapi = client.get("/openapi.json").json()
    assert "ExperimentSpecDocument" in openapi["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_api_process_never_imports_torch_or_sklearn() -> None:
    import subprocess
    import sys

    code = "import sys, api.main; print(sorted(m for m in ('torch', 'sklearn', 'workers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
