"""What a lab admin operates, on both database backends: deleting experiments, collecting
garbage, disabling users, `doctor`, and a server that refuses a database at another migration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient

from tests.conftest import make_user

TRAIN = {"name": "t", "data": {"source": "builtin/iris"}, "train": {"epochs": 1}}


def finished_with_files(client: TestClient, status: str = "succeeded", days_ago: float = 0) -> tuple[int, list[str]]:
    """An experiment as a worker leaves it: final, with a checkpoint and a plot in the store."""
    from core.artifacts import get_artifact_store
    from core.db import session_scope
    from core.models import Experiment, Status, utcnow
    from core.repositories import ArtifactRepository, RunRepository

    experiment_id = client.post("/api/v1/experiments", json=TRAIN).json()["id"]
    store = get_artifact_store()
    keys = []
    with session_scope() as session:
        runs = RunRepository(session)
        assert runs.claim(experiment_id, "w")
        for name in ("checkpoint.pt", "curves.png"):
            key = store.key_for(experiment_id, name)
            store.put(key, b"bytes")
            ArtifactRepository(session).put(experiment_id, name, key, 5, "application/octet-stream")
            keys.append(key)
        assert runs.finish(experiment_id, Status(status), error=None if status == "succeeded" else "x")
        session.query(Experiment).filter_by(id=experiment_id).update(
            {"finished_at": utcnow() - timedelta(days=days_ago)}
        )
        session.commit()
    return experiment_id, keys


def test_delete_a_finished_experiment_with_its_files(client: TestClient) -> None:
    from core.artifacts import get_artifact_store

    queued = client.post("/api/v1/experiments", json=TRAIN).json()["id"]
    assert client.delete(f"/api/v1/experiments/{queued}").status_code == 409  # cancel it first
    experiment_id, keys = finished_with_files(client)
    other = {"Authorization": f"Bearer {make_user('other')}"}
    assert client.delete(f"/api/v1/experiments/{experiment_id}", headers=other).status_code == 404
    assert client.delete(f"/api/v1/experiments/{experiment_id}").status_code == 204
    assert client.get(f"/api/v1/experiments/{experiment_id}").status_code == 404
    assert not any(get_artifact_store().exists(k) for k in keys)
    assert client.get(f"/api/v1/experiments/{queued}").json()["status"] == "queued"  # untouched


def test_gc_deletes_finished_checkpoints_and_old_failures(client: TestClient) -> None:
    from core.artifacts import get_artifact_store
    from trainlab.operations import gc

    store = get_artifact_store()
    kept, kept_keys = finished_with_files(client)
    old, old_keys = finished_with_files(client, "failed", days_ago=40)
    recent, recent_keys = finished_with_files(client, "failed", days_ago=1)
    gc(checkpoints=True, failed_days=30, dry_run=True)
    assert all(store.exists(k) for k in kept_keys + old_keys)  # a dry run changes nothing
    gc(checkpoints=True, failed_days=30, dry_run=False)
    assert not store.exists(kept_keys[0]) and store.exists(kept_keys[1])  # checkpoint gone, plot kept
    assert client.get(f"/api/v1/experiments/{old}").status_code == 404 and not any(map(store.exists, old_keys))
    assert client.get(f"/api/v1/experiments/{recent}").json()["status"] == "failed"
    assert [a["name"] for a in client.get(f"/api/v1/experiments/{kept}/artifacts").json()] == ["curves.png"]


def test_a_disabled_users_tokens_are_refused(client: TestClient) -> None:
    from trainlab.admin import users_disable, users_enable

    token = make_user("leaver")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/experiments", headers=headers).status_code == 200
    users_disable("leaver")
    assert client.get("/api/v1/experiments", headers=headers).status_code == 401
    users_enable("leaver")
    assert client.get("/api/v1/experiments", headers=headers).status_code == 200


def test_doctor_names_what_needs_attention(client: TestClient) -> None:
    from core.db import session_scope
    from core.operations import WorkerRepository
    from trainlab.operations import _checks, doctor

    results: dict[str, Any] = {check: (ok, detail) for check, ok, detail in _checks()}
    assert results["database reachable"][0] and results["database schema current"][0]
    assert results["broker reachable"][0] and results["artifact store writable"][0]
    assert not results["workers alive"][0] and "trainlab worker" in results["workers alive"][1]
    with pytest.raises(typer.Exit):
        doctor()
    with session_scope() as session:
        WorkerRepository(session).beat("w1@lab", 1)
        session.commit()
    doctor()  # everything ok: no exit status


def test_the_server_refuses_a_database_at_another_migration(api_env: Path, database_url: str) -> None:
    from alembic import command

    from api.main import create_app
    from core.migrate import SchemaNotCurrent, alembic_config, upgrade_database

    command.downgrade(alembic_config(database_url), "0003")
    with pytest.raises(SchemaNotCurrent, match="trainlab migrate"), TestClient(create_app()):
        pass
    upgrade_database(database_url)
    with TestClient(create_app()) as client:
        assert client.get("/api/v1/health").status_code == 200
